// A live A/B comparison: two PicoShare binaries over the same cells, each
// test a run-test child process, the two sides interleaved within each cell
// so that drift on the host (page cache, temperature, other load) hits both
// alike. Each side is stored as a run of its own in the results log.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { runTestChild } from "./run-test-child.ts";
import { childEnv, matrixPassedArgs, runTestArgs, type MatrixPassed } from "../upload/options.ts";
import { twinFor } from "../upload/instructions.ts";
import { recordHarnessError } from "../upload/record.ts";
import { interruptSignal, interrupted, onCleanup } from "../core/cleanup.ts";
import { UsageError } from "../core/errors.ts";
import { runFingerprint } from "../stats/fingerprint.ts";
import { hostFacts } from "../upload/host.ts";
import { log, warn } from "../core/log.ts";
import { testCellName, type Cell } from "./plan.ts";
import { displayPath } from "../core/paths.ts";
import type { PicoShareBinary } from "../upload/picoshare.ts";
import { defaultWorkDir, makeFreeDir } from "../core/files.ts";
import { fileStamp, isoTimestamp, type TestResult } from "../upload/result.ts";
import { ResultsDb } from "../store/results-db.ts";
import { MiB } from "../core/sizes.ts";
import type { SideInput } from "../stats/comparison.ts";

/** A side's key: "a" the baseline, "b" the one candidate, or "b1", "b2"... with several. */
export type SideName = string;

export interface LiveCompareOptions {
  a: PicoShareBinary;
  /** The candidates: each measured against A, all interleaved within each cell. */
  b: PicoShareBinary[];
  cells: Cell[];
  iterations: number;
  warmup: number;
  /** run-test's flags passed to each test (timeout, backend, test files, verify...), as the option table reads them. */
  passed: MatrixPassed;
  workDir: string | null;
  /** The comparison's folder goes in here (compare-STAMP/). */
  resultsDir: string;
  dbPath: string;
  /** Stored with the runs, e.g. the statistics settings. */
  extraOptions?: Record<string, unknown>;
}

export interface LiveCompareOutcome {
  dir: string;
  runA: number;
  /** Each candidate's run and side, in the order given. */
  runB: number[];
  a: SideInput;
  b: SideInput[];
}

/** The sides' keys: "a", then "b" for one candidate, "b1", "b2"... for several. */
export function sideNames(candidates: number): SideName[] {
  return ["a", ...(candidates === 1 ? ["b"] : Array.from({ length: candidates }, (_, i) => `b${i + 1}`))];
}

/** The candidates' labels as sides carry them: "B", or "B1", "B2"... */
export function candidateLabels(candidates: number): string[] {
  return sideNames(candidates).slice(1).map((n) => n.toUpperCase());
}

/**
 * The rounds of one cycle of a Williams design for n sides (a balanced Latin
 * square), as indices: within a round, each side is preceded by every other
 * side exactly once over the cycle (twice for odd n), and each side is in
 * each place equally often. Even n: n rounds, row r = r, r+1, r-1, r+2, ...
 * (mod n). Odd n has no such square of n rows: 2n rounds, each row followed
 * by its reverse (A B1 B2, B2 B1 A, B1 B2 A, A B2 B1, ...). Two sides: A B,
 * B A, i.e. A B B A A B B A: ABBA.
 */
export function williamsRounds(n: number): number[][] {
  // r, r+1, r-1, r+2, r-2, ...: the steps 1, -2, 3, -4, ... are all different mod an even n.
  const first = Array.from({ length: n }, (_, k) => (k % 2 === 1 ? (k + 1) / 2 : (n - k / 2) % n));
  const row = (r: number) => first.map((x) => (x + r) % n);
  if (n % 2 === 0) return Array.from({ length: n }, (_, r) => row(r));
  return Array.from({ length: n }, (_, r) => [row(r), row(r).reverse()]).flat();
}

/**
 * The sides' order in round `i` of a cell (warm-up or measured): the rounds
 * of a Williams design (williamsRounds), over again after each cycle. A side
 * that leaves something behind (writes still being flushed, a cache it
 * warmed) then precedes every other side equally often instead of always the
 * same one, and going first or last cancels out.
 */
export function runOrder(i: number, sides: SideName[] = ["a", "b"]): SideName[] {
  const rounds = williamsRounds(sides.length);
  return rounds[i % rounds.length].map((k) => sides[k]);
}

/** The order as the runs' options keep it (`order`). */
export function orderText(sides: string[]): string {
  if (sides.length === 2) return `ABBA (${sides.join(" ")}, ${[...sides].reverse().join(" ")}, ...) within each cell`;
  const cycle = williamsRounds(sides.length).length;
  return `Williams design (${runOrder(0, sides).join(" ")}, ${runOrder(1, sides).join(" ")}, ...: a balanced Latin square over ${cycle} rounds, each build preceded by every other equally often) within each cell`;
}

export async function runLiveCompare(opts: LiveCompareOptions): Promise<LiveCompareOutcome> {
  const started = new Date();
  const parent = resolve(opts.resultsDir);
  const dir = makeFreeDir(parent, `compare-${fileStamp(started)}`);
  const names = sideNames(opts.b.length);
  const dirs: Record<string, string> = { warmup: join(dir, "warmup"), ...Object.fromEntries(names.map((n) => [n, join(dir, n)])) };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  const warmupDb = join(dirs.warmup, "results.db");
  const host = hostFacts(opts.workDir ?? defaultWorkDir());
  const binaries: Record<SideName, PicoShareBinary> = Object.fromEntries(names.map((n, i) => [n, i === 0 ? opts.a : opts.b[i - 1]]));
  const label = (s: SideName) => s.toUpperCase(); // as candidateLabels spells them
  const described = (bin: PicoShareBinary) => ({ path: bin.path, version: bin.version, sha256: bin.sha256 });

  const db = ResultsDb.open(opts.dbPath);
  const sharedOptions = {
    memory_limits: [...new Set(opts.cells.map((c) => c.ram))],
    file_sizes: [...new Set(opts.cells.map((c) => c.size.label))],
    iterations: opts.iterations,
    warmup: opts.warmup,
    order: orderText(names.map(label)),
    ...opts.passed,
    work_dir: opts.workDir,
    dir,
    ...Object.fromEntries(names.map((n) => [n, described(binaries[n])])),
    ...opts.extraOptions,
  };
  const startRun = (side: SideName) =>
    db.startRun({
      kind: side === "a" ? "compare-a" : "compare-b",
      startedAt: isoTimestamp(started),
      backend: opts.passed.backend,
      resultsDir: dirs[side],
      picoshareVersion: binaries[side].version,
      picoshareSha256: binaries[side].sha256,
      options: { ...sharedOptions, side },
      host,
    });
  const runIds: Record<SideName, number> = Object.fromEntries(names.map((n) => [n, startRun(n)]));
  // A is paired with the first candidate (a report of A shows that pair); every candidate names A as its pair.
  db.pairRuns({ id: runIds.a, label: "A" }, { id: runIds[names[1]], label: label(names[1]) });
  for (const n of names.slice(2)) db.labelRun(runIds[n], label(n), runIds.a);
  db.close();
  log(`Comparison in ${displayPath(dir)}: ${names.map((n) => `${label(n)} is run ${runIds[n]}`).join(", ")} in ${displayPath(opts.dbPath)}`);

  const withDb = (write: (store: ResultsDb) => void) => {
    const store = ResultsDb.open(opts.dbPath);
    try {
      write(store);
    } finally {
      store.close();
    }
  };
  const setStatus = (status: "complete" | "interrupted") =>
    withDb((store) => {
      for (const id of Object.values(runIds)) store.setRunStatus(id, status, isoTimestamp(new Date()));
    });
  const forget = onCleanup("mark the comparison's runs interrupted", () => setStatus("interrupted"));

  const results: Record<SideName, TestResult[]> = Object.fromEntries(names.map((n) => [n, []]));
  const harnessErrors: Record<SideName, { ram_mb: number; file_size: string }[]> = Object.fromEntries(names.map((n) => [n, []]));

  // Measured tests so far per side and cell: which get an instrumented twin (--instruction-twins).
  const measuredSoFar = new Map<string, number>();
  // `round`: the measured round (1-based) the test runs in, recorded as its iteration (warm-ups first, as the matrix counts them):
  // the sides' tests of one round are what a paired analysis pairs.
  const runOne = async (side: SideName, cell: Cell, what: string, warm: boolean, prefix: string, round?: number) => {
    const iteration = round === undefined ? undefined : opts.warmup + round;
    const seen = `${side} ${testCellName(cell)}`;
    if (!warm) measuredSoFar.set(seen, (measuredSoFar.get(seen) ?? 0) + 1);
    // A warm-up counts for nothing: no instrumented twin.
    const twin = !warm && twinFor(measuredSoFar.get(seen)!, opts.passed.count_instructions, opts.passed.instruction_twins);
    const outDir = warm ? dirs.warmup : dirs[side];
    const logFile = join(outDir, warm ? "run-test.log" : `run-test-${cell.ram}MB-${cell.size.label}.log`);
    const args = runTestArgs({
      ...matrixPassedArgs(opts.passed),
      countInstructions: twin,
      instructionTwins: null,
      ram: cell.ram, size: cell.size, resultsDir: outDir,
      db: warm ? warmupDb : opts.dbPath, picoshare: binaries[side].path, workDir: opts.workDir,
    });
    const child = await runTestChild(args, {
      logFile,
      timeoutSec: opts.passed.timeout,
      twin,
      // Warm-up runs belong to no run of the log: their results stay in warmup/.
      env: childEnv({ runId: warm ? null : runIds[side], iteration }),
      header: (pid) => `--- ${isoTimestamp(new Date())} ${side.toUpperCase()} ${what} run-test (pid ${pid}): ${args.join(" ")}`,
    });
    if (interrupted()) throw interruptSignal.reason;
    const { ran, result } = child;
    const name = `${prefix} ${side.toUpperCase()} ${what}`;
    if (result) {
      if (!warm) results[side].push(result);
      log(
        result.success
          ? `${name}: passed, ${result.throughput_mbps.toFixed(2)} MiB/s, peak ${(result.peak_memory_bytes / MiB).toFixed(1)} MiB`
          : `${name}: FAILED (${result.exit_reason})`,
      );
      return;
    }
    if (ran.code === 2) {
      setStatus("interrupted");
      forget();
      throw new UsageError(`run-test refused to run (${name}): ${child.lastError ?? "see its log"}; its log: ${displayPath(logFile)}`);
    }
    const error = child.failure;
    warn(`${name}: ${error}`);
    if (warm) return;
    harnessErrors[side].push({ ram_mb: cell.ram, file_size: cell.size.label });
    withDb((store) =>
      recordHarnessError(store, {
        runId: runIds[side], ram: cell.ram, fileSize: cell.size.label, error, exitCode: ran.code, signal: ran.signal,
        logFile: displayPath(logFile), iteration,
      }),
    );
  };

  for (const [ci, cell] of opts.cells.entries()) {
    const prefix = `[${ci + 1}/${opts.cells.length} ${testCellName(cell)}]`;
    for (let w = 0; w < opts.warmup; w++) {
      for (const side of runOrder(w, names)) await runOne(side, cell, `warm-up ${w + 1}/${opts.warmup}`, true, prefix);
    }
    for (let i = 0; i < opts.iterations; i++) {
      for (const side of runOrder(i, names)) await runOne(side, cell, `${i + 1}/${opts.iterations}`, false, prefix, i + 1);
    }
  }

  forget();
  setStatus("complete");
  const side = (s: SideName): SideInput => ({
    label: label(s),
    run_id: runIds[s],
    picoshare_version: binaries[s].version,
    picoshare_sha256: binaries[s].sha256,
    picoshare_path: binaries[s].path,
    fingerprint: runFingerprint(host, opts.passed.backend, results[s]),
    results: results[s],
    harness_errors: harnessErrors[s],
    live_compare: dir,
  });
  return { dir, runA: runIds.a, runB: names.slice(1).map((n) => runIds[n]), a: side("a"), b: names.slice(1).map(side) };
}
