// A matrix run's bookkeeping: its folder, matrix.json, the CSV and summary
// (rewritten atomically after every test, so a crash keeps the partial
// picture) and its row in the results database. The script decides what to
// run; this records what came of it. Each (RAM, size) cell runs its warm-up
// tests and then its measured ones, each a run-test of its own and recorded
// on its own; warm-ups are kept but never counted (CSV, counts, exit status).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { harnessErrorRow, matrixCsv, rowFromResult } from "../store/csv.ts";
import { errorMessage, UsageError } from "../core/errors.ts";
import { writeFileAtomic } from "../core/files.ts";
import { MatrixLock } from "./lock.ts";
import { warn } from "../core/log.ts";
import { cellName, iterationSuffix, matrixCells, type Cell } from "./plan.ts";
import { resultsOfRun, type CellOutcome } from "./cell.ts";
import {
  hasResult, measuredCells, orderedCells, overheadPerTest, readState, recordCell, totalSeconds, writeState,
  STATE_VERSION, type CellRecord, type MatrixOptions, type MatrixState, type Session,
} from "./state.ts";
import { command, displayPath } from "../core/paths.ts";
import { fileStamp, HARNESS_ERROR, isoTimestamp, iterationOf, type TestResult } from "../upload/result.ts";
import { ResultsDb } from "../store/results-db.ts";
import { readResultFile } from "./run-test-child.ts";
import { parseSize } from "../core/sizes.ts";
import { summarizeRuns, type CellSummary } from "../stats/cells.ts";
import { cellStatsTable } from "../stats/text.ts";
import { summaryText } from "../output/summary.ts";

export const CSV_FILE = "matrix-results.csv";
export const SUMMARY_FILE = "summary.txt";

export type EndStatus = "complete" | "interrupted" | "stopped on failure";

export function resumeCommand(dir: string): string {
  return command("run-test-matrix", `--resume ${displayPath(dir)}`);
}

/** Makes results/matrix-YYYYMMDD-HHMMSS (with -2, -3... if that name is taken). */
function makeMatrixDir(resultsDir: string, started: Date): string {
  const stem = `matrix-${fileStamp(started)}`;
  for (let n = 1; ; n++) {
    const dir = join(resultsDir, n === 1 ? stem : `${stem}-${n}`);
    try {
      mkdirSync(dir);
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
}

export class MatrixRun {
  private readonly t0 = performance.now();
  private loopT0: number | null = null;
  private readonly session: Session;
  private readonly sessionPrep: number;
  private finished = false;
  /** Result records read back for the statistics, by path. */
  private readonly resultCache = new Map<string, TestResult | null>();
  /** Each cell's statistics, with what they were computed from. */
  private readonly statsCache = new Map<string, { from: string; summary: CellSummary }>();

  private constructor(
    readonly dir: string,
    readonly state: MatrixState,
    private readonly db: ResultsDb,
    readonly lock: MatrixLock,
    prepSeconds: number,
  ) {
    this.session = { started: isoTimestamp(new Date()), finished: null, status: "running", wall_seconds: prepSeconds, loop_seconds: 0 };
    state.sessions.push(this.session);
    this.sessionPrep = prepSeconds;
  }

  /** A new matrix: its folder, its database run and its matrix.json. */
  static create(p: {
    resultsDir: string;
    dbPath: string;
    options: MatrixOptions;
    host: unknown;
    prepSeconds: number;
  }): MatrixRun {
    const started = new Date();
    const db = ResultsDb.open(p.dbPath);
    const dir = makeMatrixDir(p.resultsDir, started);
    const lock = MatrixLock.acquire(dir);
    const runId = db.startRun({
      kind: "matrix",
      startedAt: isoTimestamp(started),
      backend: p.options.backend,
      resultsDir: dir,
      picoshareVersion: p.options.picoshare.version,
      picoshareSha256: p.options.picoshare.sha256,
      options: p.options,
      host: p.host,
    });
    const state: MatrixState = {
      version: STATE_VERSION,
      created: isoTimestamp(started),
      run_id: runId,
      db: p.dbPath,
      options: p.options,
      cells: [],
      sessions: [],
      totals: { tests_run: 0, upload_seconds: 0 },
    };
    const run = new MatrixRun(dir, state, db, lock, p.prepSeconds);
    run.writeOutputs();
    return run;
  }

  /** Reads a matrix folder's state and takes its lock (exit 2 when it cannot be resumed). */
  static load(dir: string): { state: MatrixState; lock: MatrixLock } {
    const state = readState(dir);
    return { state, lock: MatrixLock.acquire(dir) };
  }

  /** Continues a matrix: its database run goes back to running. */
  static resume(dir: string, state: MatrixState, lock: MatrixLock, prepSeconds: number): MatrixRun {
    const db = ResultsDb.open(state.db);
    if (!db.run(state.run_id)) {
      db.close();
      lock.release();
      throw new UsageError(
        `--resume ${dir}: run ${state.run_id} is not in ${state.db}; the database was replaced or removed, so this matrix cannot be continued`,
      );
    }
    db.setRunStatus(state.run_id, "running", null);
    const run = new MatrixRun(dir, state, db, lock, prepSeconds);
    run.writeState();
    return run;
  }

  get runId(): number {
    return this.state.run_id;
  }

  /** Every test of the matrix: cells x (warm-ups + iterations). */
  get totalTests(): number {
    const o = this.state.options;
    return o.memory_limits.length * o.file_sizes.length * (o.warmup + o.iterations);
  }

  /** Whether a cell runs more than one test (iteration and warm-up labels, the statistics table). */
  get repeated(): boolean {
    return this.state.options.iterations > 1 || this.state.options.warmup > 0;
  }

  /** Every test of the matrix in order: each cell's warm-ups, then its measured iterations. */
  cells(): Cell[] {
    const o = this.state.options;
    return matrixCells(o.memory_limits, o.file_sizes.map((s) => parseSize(s)), o.iterations, o.warmup);
  }

  /** " (iteration 2/5)", " (warm-up 1/1)", or "" when each cell runs once. */
  suffix(cell: Pick<Cell, "iteration" | "warmup">): string {
    return iterationSuffix(cell, this.state.options.iterations, this.state.options.warmup);
  }

  record(cell: Cell): CellRecord | undefined {
    return this.state.cells.find((c) => c.ram_mb === cell.ram && c.file_size === cell.size.label && c.iteration === cell.iteration);
  }

  /** The tests with no result yet (never run, interrupted, or run-test crashed). */
  pending(): Cell[] {
    return this.cells().filter((c) => !hasResult(this.record(c)));
  }

  /** Result files already counted for a cell. */
  claimed(): Set<string> {
    return new Set(this.state.cells.map((c) => c.row.result_file).filter((f): f is string => f !== null));
  }

  /**
   * Results of this run that the folder holds but matrix.json does not (the
   * matrix died between run-test writing one and recording it): counted as
   * done, each for the test of its cell and iteration. Returns the tests adopted.
   */
  adoptOrphanResults(): string[] {
    const claimed = this.claimed();
    const adopted: string[] = [];
    for (const { path, result } of resultsOfRun(this.dir, this.runId)) {
      if (claimed.has(path)) continue;
      const cell = this.cells().find(
        (c) => c.ram === result.ram_mb && c.size.label === result.file_size && c.iteration === iterationOf(result),
      );
      if (!cell || hasResult(this.record(cell))) continue;
      this.recordResult(cell, result, path, null, 0);
      claimed.add(path);
      adopted.push(`${cellName(cell.ram, cell.size.label)}${this.suffix(cell)}`);
    }
    if (adopted.length > 0) this.writeOutputs();
    return adopted;
  }

  startLoop(): void {
    this.loopT0 = performance.now();
  }

  private recordResult(cell: Cell, result: TestResult, resultFile: string, logFile: string | null, wallSeconds: number): void {
    recordCell(this.state, {
      ram_mb: cell.ram,
      file_size: cell.size.label,
      iteration: cell.iteration,
      warmup: cell.warmup,
      row: rowFromResult(result, resultFile),
      error: null,
      log_file: logFile ?? join(this.dir, `test-${cell.ram}MB-${cell.size.label}.log`),
      finished: isoTimestamp(new Date()),
      wall_seconds: wallSeconds,
      bytes: cell.size.bytes,
    });
    this.dbWrite("record the result", (db) => {
      db.clearHarnessErrors(this.runId, cell.ram, cell.size.label, cell.iteration);
      // run-test records its own result; make sure, in case it could not.
      if (!db.hasResultFile(this.runId, resultFile)) {
        db.addResult({ ...result, run_id: this.runId, iteration: cell.iteration, warmup: cell.warmup }, resultFile);
      }
    });
  }

  /** Records what a run-test process came to, counts it (warm-ups too), and rewrites the outputs. */
  recordOutcome(cell: Cell, o: CellOutcome): CellRecord {
    this.state.totals.tests_run++;
    if (o.result && o.resultFile) {
      this.state.totals.upload_seconds += o.result.duration_seconds;
      this.recordResult(cell, o.result, o.resultFile, o.logFile, o.wallSeconds);
    } else {
      const error = o.error ?? "run-test wrote no result";
      recordCell(this.state, {
        ram_mb: cell.ram,
        file_size: cell.size.label,
        iteration: cell.iteration,
        warmup: cell.warmup,
        row: harnessErrorRow(cell.ram, cell.size.label),
        error,
        log_file: o.logFile,
        finished: isoTimestamp(new Date()),
        wall_seconds: o.wallSeconds,
        bytes: cell.size.bytes,
      });
      this.dbWrite("record the harness error", (db) => {
        db.clearHarnessErrors(this.runId, cell.ram, cell.size.label, cell.iteration);
        db.addHarnessError({
          run_id: this.runId, timestamp: isoTimestamp(new Date()), ram_mb: cell.ram, file_size: cell.size.label,
          exit_reason: HARNESS_ERROR, error, exit_code: o.exitCode, signal: o.signal, log_file: o.logFile,
          iteration: cell.iteration, warmup: cell.warmup,
        });
      });
    }
    this.writeOutputs();
    return this.record(cell)!;
  }

  private dbWrite(what: string, fn: (db: ResultsDb) => void): void {
    try {
      fn(this.db);
    } catch (err) {
      warn(`could not ${what} in ${this.state.db}: ${errorMessage(err)} (the CSV and matrix.json still have it)`);
    }
  }

  /**
   * done: tests run (warm-ups included, as in totalTests); warmups: of them
   * warm-ups; passed and failed: the measured tests only.
   */
  counts() {
    const done = orderedCells(this.state);
    const measured = done.filter((c) => !c.warmup);
    const passed = measured.filter((c) => c.row.success).length;
    return {
      done: done.length,
      warmups: done.length - measured.length,
      withResult: done.filter(hasResult).length,
      passed,
      failed: measured.length - passed,
    };
  }

  /**
   * Per-cell statistics over the measured tests (warm-ups left out), in
   * matrix order, for the cells that have run at least one measured test.
   */
  cellStatistics(): CellSummary[] {
    const o = this.state.options;
    const measured = measuredCells(this.state);
    const out: CellSummary[] = [];
    for (const ram of o.memory_limits) {
      for (const label of o.file_sizes) {
        const records = measured.filter((c) => c.ram_mb === ram && c.file_size === label);
        if (records.length === 0) continue;
        const files = records.map((c) => c.row.result_file).filter((f): f is string => f !== null);
        const errors = records.length - files.length;
        const key = `${ram}/${label}`;
        const from = `${errors}|${files.join("|")}`;
        const cached = this.statsCache.get(key);
        if (cached?.from === from) {
          out.push(cached.summary);
          continue;
        }
        const results = files.map((f) => this.readResult(f)).filter((r): r is TestResult => r !== null);
        const summary = summarizeRuns({ ram_mb: ram, file_size: label, file_size_bytes: parseSize(label).bytes }, results, {
          harnessErrors: errors,
        });
        this.statsCache.set(key, { from, summary });
        out.push(summary);
      }
    }
    return out;
  }

  private readResult(path: string): TestResult | null {
    if (!this.resultCache.has(path)) this.resultCache.set(path, readResultFile(path));
    return this.resultCache.get(path) ?? null;
  }

  overheadPerTest(): number | null {
    return overheadPerTest(this.state);
  }

  totalSeconds(): number {
    return totalSeconds(this.state);
  }

  private tick(): void {
    const now = performance.now();
    this.session.wall_seconds = this.sessionPrep + (now - this.t0) / 1000;
    this.session.loop_seconds = this.loopT0 === null ? 0 : (now - this.loopT0) / 1000;
  }

  private writeState(): void {
    this.tick();
    writeState(this.dir, this.state);
  }

  get csvPath(): string {
    return join(this.dir, CSV_FILE);
  }

  get summaryPath(): string {
    return join(this.dir, SUMMARY_FILE);
  }

  /** matrix.json, the CSV (measured tests only) and summary.txt, each written atomically. */
  writeOutputs(): void {
    this.writeState();
    const cells = orderedCells(this.state);
    const rows = measuredCells(this.state).map((c) => c.row);
    writeFileAtomic(this.csvPath, matrixCsv(rows));
    const c = this.counts();
    const status = this.session.status;
    const pending = this.pending();
    const o = this.state.options;
    const stats = o.iterations > 1 ? this.cellStatistics() : null;
    writeFileAtomic(
      this.summaryPath,
      summaryText(
        {
          started: this.state.created,
          finished: this.session.finished ?? isoTimestamp(new Date()),
          status,
          totalSeconds: this.totalSeconds(),
          testsRun: c.done,
          totalTests: this.totalTests,
          warmupsRun: c.warmups,
          iterations: o.iterations,
          warmup: o.warmup,
          passed: c.passed,
          failed: c.failed,
          overheadPerTest: this.overheadPerTest(),
          memoryLimits: o.memory_limits,
          fileSizes: o.file_sizes,
          backend: o.backend,
          picoshare: `${o.picoshare.version} (${o.picoshare.path}, sha256 ${o.picoshare.sha256})`,
          database: `${displayPath(this.state.db)} (run ${this.runId})`,
          notRun: this.notRun(pending.filter((p) => !this.record(p))),
          errors: cells
            .filter((x) => x.error)
            .map((x) => `${cellName(x.ram_mb, x.file_size)}${this.suffix(x)}: ${x.error} (log: ${displayPath(x.log_file)})`),
          resume: status === "complete" || pending.length === 0 ? null : resumeCommand(this.dir),
          cellStats: stats && stats.length > 0 ? cellStatsTable(stats) : null,
          warnings: stats ? stats.flatMap((s) => s.warnings) : [],
        },
        rows,
      ),
    );
  }

  /** "256MB 1G", one per cell, with the tests not run named when a cell runs more than one. */
  private notRun(tests: Cell[]): string[] {
    const byCell = new Map<string, Cell[]>();
    for (const t of tests) {
      const name = cellName(t.ram, t.size.label);
      byCell.set(name, [...(byCell.get(name) ?? []), t]);
    }
    return [...byCell].map(([name, ts]) => (this.repeated ? `${name} (${ts.map((t) => this.suffix(t).slice(2, -1)).join(", ")})` : name));
  }

  /** Ends this session: outputs written, the database run marked, the lock released. Once. */
  finish(status: EndStatus): void {
    if (this.finished) return;
    this.finished = true;
    if (status === "interrupted") this.adoptOrphanResults();
    this.session.status = status;
    this.session.finished = isoTimestamp(new Date());
    try {
      this.writeOutputs();
    } finally {
      this.dbWrite("mark the run", (db) =>
        db.setRunStatus(this.runId, status === "complete" ? "complete" : "interrupted", isoTimestamp(new Date())),
      );
      try {
        this.db.close();
      } catch {}
      this.lock.release();
    }
  }
}
