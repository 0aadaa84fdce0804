// A live A/B comparison: two PicoShare binaries over the same cells, each
// test a run-test child process, the two sides interleaved within each cell
// so that drift on the host (page cache, temperature, other load) hits both
// alike. Each side is stored as a run of its own in the results log, and the
// comparison's progress in its folder (compare.json), so that one that was
// interrupted continues where it stopped (compare --resume DIR).
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { readResultFile, runTestChild } from "./run-test-child.ts";
import { childEnv, matrixPassedArgs, runTestArgs, type MatrixPassed } from "../upload/options.ts";
import { twinChoice, twinFor } from "../upload/instructions.ts";
import { interruptSignal, interrupted, onCleanup } from "../core/cleanup.ts";
import { UsageError } from "../core/errors.ts";
import { runFingerprint } from "../stats/fingerprint.ts";
import { hostFacts, type HostFacts } from "../upload/host.ts";
import { log, warn } from "../core/log.ts";
import { testCellName, type Cell } from "./plan.ts";
import { displayPath } from "../core/paths.ts";
import type { PicoShareBinary } from "../upload/picoshare.ts";
import { defaultWorkDir, makeFreeDir } from "../core/files.ts";
import { fileStamp, isoTimestamp } from "../upload/result.ts";
import { ResultsDb } from "../store/results-db.ts";
import { MiB } from "../core/sizes.ts";
import type { SideInput } from "../stats/comparison.ts";
import type { Lock } from "../core/lock.ts";
import { takeMatrixLock } from "./lock.ts";
import { MatrixDbRun } from "./db-run.ts";
import { orphanOf, orphanResults } from "./orphans.ts";
import { harnessErrorRow, rowFromResult } from "../store/csv.ts";
import { claimedFiles, findRecord, hasResult, measuredCells, recordCell, type CellRecord, type MatrixOptions } from "./state.ts";
import {
  COMPARE_STATE_VERSION, compareCells, compareCounts, readCompareState, resumeCompareCommand, sideState, writeCompareState,
  type CompareState, type SideName,
} from "./compare-state.ts";

export type { SideName } from "./compare-state.ts";

/** A side's label as candidateLabels spells it: "A", "B", "B1"... */
const label = (s: SideName) => s.toUpperCase();

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
  const dir = makeFreeDir(resolve(opts.resultsDir), `compare-${fileStamp(started)}`);
  const lock = takeMatrixLock(dir, "comparison");
  const names = sideNames(opts.b.length);
  const host = hostFacts(opts.workDir ?? defaultWorkDir());
  const binaries: Record<SideName, PicoShareBinary> = Object.fromEntries(names.map((n, i) => [n, i === 0 ? opts.a : opts.b[i - 1]]));
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
      resultsDir: join(dir, side),
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
  const created = isoTimestamp(started);
  const state: CompareState = {
    version: COMPARE_STATE_VERSION, created, db: opts.dbPath, sides: names, host,
    runs: Object.fromEntries(names.map((n) => [
      n, sideState(created, opts.dbPath, runIds[n], { ...sharedOptions, side: n, picoshare: described(binaries[n]), stop_on_failure: false } as MatrixOptions),
    ])),
  };
  writeCompareState(dir, state);
  log(`Comparison in ${displayPath(dir)}: ${names.map((n) => `${label(n)} is run ${runIds[n]}`).join(", ")} in ${displayPath(opts.dbPath)}`);
  return continueLiveCompare(dir, state, lock);
}

/** A comparison's folder, its state read and its lock taken, to be continued (exit 2 when it cannot be). */
export function loadLiveCompare(dir: string): { state: CompareState; lock: Lock } {
  const state = readCompareState(dir);
  return { state, lock: takeMatrixLock(dir, "comparison") };
}

/**
 * Runs the comparison's tests not yet recorded in its state (all of them the
 * first time), in the order a whole run has: cell by cell, warm-up rounds
 * then measured rounds, the sides of each round in the Williams order. Each
 * test is recorded in compare.json (and a measured one in its side's run)
 * as soon as it ends; a test that was under way when the comparison died has
 * no result and is run again; a result run-test wrote that the state missed
 * is taken from the side's folder, never run twice.
 */
export async function continueLiveCompare(dir: string, state: CompareState, lock: Lock): Promise<LiveCompareOutcome> {
  const names = state.sides;
  const o = state.runs[names[0]].options;
  const dirs: Record<string, string> = { warmup: join(dir, "warmup"), ...Object.fromEntries(names.map((n) => [n, join(dir, n)])) };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  const warmupDb = join(dirs.warmup, "results.db");
  const dbRuns: Record<SideName, MatrixDbRun> = {};
  try {
    for (const n of names) dbRuns[n] = MatrixDbRun.reopen(dir, state.runs[n]);
  } catch (err) {
    for (const r of Object.values(dbRuns)) r.finish("interrupted");
    lock.release();
    throw err;
  }
  let ended = false;
  const end = (status: "complete" | "interrupted") => {
    if (ended) return;
    ended = true;
    for (const r of Object.values(dbRuns)) r.finish(status);
    lock.release();
  };
  const forget = onCleanup("mark the comparison's runs interrupted", () => {
    end("interrupted");
    if (compareCounts(state).pending > 0) log(`Resume with: ${resumeCompareCommand(dir)}`);
  });
  const save = () => writeCompareState(dir, state);
  const record = (side: SideName, test: Cell, r: Pick<CellRecord, "row" | "error" | "log_file" | "wall_seconds">) =>
    recordCell(state.runs[side], {
      ram_mb: test.ram, file_size: test.size.label, concurrency: test.concurrency, iteration: test.iteration, warmup: test.warmup,
      ...r, finished: isoTimestamp(new Date()), bytes: test.size.bytes,
    });

  // Results written by a run-test whose end the state missed: counted, not run again.
  for (const n of names) {
    for (const { cell, path, result } of orphanResults(dirs[n], state.runs[n])) {
      record(n, cell, { row: rowFromResult(result, path), error: null, log_file: logPath(dirs[n], cell), wall_seconds: 0 });
      dbRuns[n].recordResult(cell, result, path);
    }
  }
  save();
  const counts = compareCounts(state);
  if (counts.pending < counts.total) log(`Resuming ${displayPath(dir)}: ${counts.total - counts.pending} of ${counts.total} tests recorded, ${counts.pending} to run`);

  const runOne = async (side: SideName, test: Cell, what: string, prefix: string) => {
    const mine = state.runs[side];
    if (hasResult(findRecord(mine, test))) return;
    const warm = test.warmup;
    // A warm-up counts for nothing: no instrumented twin.
    const twin = !warm && twinFor(test.iteration - o.warmup, test.size.label, twinChoice(o));
    const outDir = warm ? dirs.warmup : dirs[side];
    const logFile = warm ? join(outDir, "run-test.log") : logPath(outDir, test);
    const args = runTestArgs({
      ...matrixPassedArgs(o),
      countInstructions: twin,
      instructionTwins: null,
      instructionSizes: null,
      ram: test.ram, size: test.size, resultsDir: outDir,
      db: warm ? warmupDb : state.db, picoshare: mine.options.picoshare.path, workDir: o.work_dir,
    });
    const child = await runTestChild(args, {
      logFile,
      timeoutSec: o.timeout,
      twin,
      // Warm-up runs belong to no run of the log: their results stay in warmup/.
      env: childEnv({ runId: warm ? null : mine.run_id, iteration: test.iteration, warmup: warm, picoshare: mine.options.picoshare }),
      header: (pid) => {
        lock.setChild(pid);
        return `--- ${isoTimestamp(new Date())} ${side.toUpperCase()} ${what} run-test (pid ${pid}): ${args.join(" ")}`;
      },
    });
    lock.setChild(null);
    if (interrupted()) throw interruptSignal.reason;
    const { ran } = child;
    let { result, resultFile } = child;
    if (!result && !warm) {
      // Killed between writing its result and printing the path: the file is still there.
      const orphan = orphanOf(test, outDir, mine.run_id, claimedFiles(mine));
      [result, resultFile] = [orphan?.result ?? null, orphan?.path ?? null];
    }
    const name = `${prefix} ${side.toUpperCase()} ${what}`;
    if (result && resultFile) {
      record(side, test, { row: rowFromResult(result, resultFile), error: null, log_file: logFile, wall_seconds: ran.seconds });
      if (!warm) dbRuns[side].recordResult(test, result, resultFile);
      save();
      log(
        result.success
          ? `${name}: passed, ${result.throughput_mbps.toFixed(2)} MiB/s, peak ${(result.peak_memory_bytes / MiB).toFixed(1)} MiB`
          : `${name}: FAILED (${result.exit_reason})`,
      );
      return;
    }
    if (ran.code === 2) {
      end("interrupted");
      forget();
      throw new UsageError(`run-test refused to run (${name}): ${child.lastError ?? "see its log"}; its log: ${displayPath(logFile)}`);
    }
    const error = child.failure;
    warn(`${name}: ${error}`);
    record(side, test, { row: harnessErrorRow(test.ram, test.size.label, test.concurrency), error, log_file: logFile, wall_seconds: ran.seconds });
    if (!warm) dbRuns[side].recordHarnessError(test, { error, exitCode: ran.code, signal: ran.signal, logFile: displayPath(logFile) });
    save();
  };

  const cells = compareCells(o);
  for (const [ci, cell] of cells.entries()) {
    const prefix = `[${ci + 1}/${cells.length} ${testCellName(cell)}]`;
    for (let w = 0; w < o.warmup; w++) {
      const test = { ...cell, iteration: w + 1, warmup: true };
      for (const side of runOrder(w, names)) await runOne(side, test, `warm-up ${w + 1}/${o.warmup}`, prefix);
    }
    for (let i = 0; i < o.iterations; i++) {
      const test = { ...cell, iteration: o.warmup + i + 1, warmup: false };
      for (const side of runOrder(i, names)) await runOne(side, test, `${i + 1}/${o.iterations}`, prefix);
    }
  }

  forget();
  end("complete");
  const side = (s: SideName): SideInput => {
    const measured = measuredCells(state.runs[s]);
    const results = measured.flatMap((c) => (c.error === null && c.row.result_file ? (readResultFile(c.row.result_file) ?? []) : []));
    return {
      label: label(s),
      run_id: state.runs[s].run_id,
      picoshare_version: state.runs[s].options.picoshare.version,
      picoshare_sha256: state.runs[s].options.picoshare.sha256,
      picoshare_path: state.runs[s].options.picoshare.path,
      fingerprint: runFingerprint(state.host as HostFacts, o.backend, results),
      results,
      harness_errors: measured.filter((c) => !hasResult(c)).map((c) => ({ ram_mb: c.ram_mb, file_size: c.file_size })),
      live_compare: dir,
    };
  };
  return { dir, runA: state.runs.a.run_id, runB: names.slice(1).map((n) => state.runs[n].run_id), a: side("a"), b: names.slice(1).map(side) };
}

/** A side's run-test log for a cell. */
function logPath(dir: string, cell: Pick<Cell, "ram" | "size">): string {
  return join(dir, `run-test-${cell.ram}MB-${cell.size.label}.log`);
}
