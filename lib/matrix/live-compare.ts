// A live A/B comparison: two PicoShare binaries over the same cells, each
// test a run-test child process, the two sides interleaved within each cell
// so that drift on the host (page cache, temperature, other load) hits both
// alike. Each side is stored as a run of its own in the results log.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { runTestChild } from "./run-test-child.ts";
import { childEnv, matrixPassedArgs, runTestArgs, type MatrixPassed } from "../upload/options.ts";
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

export type SideName = "a" | "b";

export interface LiveCompareOptions {
  a: PicoShareBinary;
  b: PicoShareBinary;
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
  runB: number;
  a: SideInput;
  b: SideInput;
}

/**
 * Which side runs first in round `i` (warm-up or measured): A B, then B A,
 * then A B... Each side runs first equally often, so an effect of going
 * first or second (a cache the other side warmed) cancels out.
 */
export function runOrder(i: number): [SideName, SideName] {
  return i % 2 === 0 ? ["a", "b"] : ["b", "a"];
}

export async function runLiveCompare(opts: LiveCompareOptions): Promise<LiveCompareOutcome> {
  const started = new Date();
  const parent = resolve(opts.resultsDir);
  const dir = makeFreeDir(parent, `compare-${fileStamp(started)}`);
  const dirs = { a: join(dir, "a"), b: join(dir, "b"), warmup: join(dir, "warmup") };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  const warmupDb = join(dirs.warmup, "results.db");
  const host = hostFacts(opts.workDir ?? defaultWorkDir());
  const binaries = { a: opts.a, b: opts.b };

  const db = ResultsDb.open(opts.dbPath);
  const sharedOptions = {
    memory_limits: [...new Set(opts.cells.map((c) => c.ram))],
    file_sizes: [...new Set(opts.cells.map((c) => c.size.label))],
    iterations: opts.iterations,
    warmup: opts.warmup,
    order: "alternating (A B, B A, ...) within each cell",
    ...opts.passed,
    work_dir: opts.workDir,
    dir,
    a: { path: opts.a.path, version: opts.a.version, sha256: opts.a.sha256 },
    b: { path: opts.b.path, version: opts.b.version, sha256: opts.b.sha256 },
    ...opts.extraOptions,
  };
  const startRun = (side: SideName) =>
    db.startRun({
      kind: `compare-${side}`,
      startedAt: isoTimestamp(started),
      backend: opts.passed.backend,
      resultsDir: dirs[side],
      picoshareVersion: binaries[side].version,
      picoshareSha256: binaries[side].sha256,
      options: { ...sharedOptions, side },
      host,
    });
  const runIds = { a: startRun("a"), b: startRun("b") };
  db.pairRuns({ id: runIds.a, label: "A" }, { id: runIds.b, label: "B" });
  db.close();
  log(`Comparison in ${displayPath(dir)}: A is run ${runIds.a}, B is run ${runIds.b} in ${displayPath(opts.dbPath)}`);

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
      for (const id of [runIds.a, runIds.b]) store.setRunStatus(id, status, isoTimestamp(new Date()));
    });
  const forget = onCleanup("mark the comparison's runs interrupted", () => setStatus("interrupted"));

  const results: Record<SideName, TestResult[]> = { a: [], b: [] };
  const harnessErrors: Record<SideName, { ram_mb: number; file_size: string }[]> = { a: [], b: [] };

  const runOne = async (side: SideName, cell: Cell, what: string, warm: boolean, prefix: string) => {
    const outDir = warm ? dirs.warmup : dirs[side];
    const logFile = join(outDir, warm ? "run-test.log" : `run-test-${cell.ram}MB-${cell.size.label}.log`);
    const args = runTestArgs({
      ...matrixPassedArgs(opts.passed),
      ram: cell.ram, size: cell.size, resultsDir: outDir,
      db: warm ? warmupDb : opts.dbPath, picoshare: binaries[side].path, workDir: opts.workDir,
    });
    const child = await runTestChild(args, {
      logFile,
      timeoutSec: opts.passed.timeout,
      // Warm-up runs belong to no run of the log: their results stay in warmup/.
      env: childEnv({ runId: warm ? null : runIds[side] }),
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
        logFile: displayPath(logFile),
      }),
    );
  };

  for (const [ci, cell] of opts.cells.entries()) {
    const prefix = `[${ci + 1}/${opts.cells.length} ${testCellName(cell)}]`;
    for (let w = 0; w < opts.warmup; w++) {
      for (const side of runOrder(w)) await runOne(side, cell, `warm-up ${w + 1}/${opts.warmup}`, true, prefix);
    }
    for (let i = 0; i < opts.iterations; i++) {
      for (const side of runOrder(i)) await runOne(side, cell, `${i + 1}/${opts.iterations}`, false, prefix);
    }
  }

  forget();
  setStatus("complete");
  const side = (s: SideName): SideInput => ({
    label: s.toUpperCase(),
    run_id: runIds[s],
    picoshare_version: binaries[s].version,
    picoshare_sha256: binaries[s].sha256,
    picoshare_path: binaries[s].path,
    fingerprint: runFingerprint(host, opts.passed.backend, results[s]),
    results: results[s],
    harness_errors: harnessErrors[s],
  });
  return { dir, runA: runIds.a, runB: runIds.b, a: side("a"), b: side("b") };
}
