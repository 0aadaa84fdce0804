// A matrix run: its folder and lock, its state (matrix.json), its run in the
// results log, and each session's time. The script decides what to run; this
// records what came of it, test by test, and rewrites the folder's outputs
// after each. Each (RAM, size) cell runs its warm-up tests and then its
// measured ones, each a run-test of its own and recorded on its own; warm-ups
// are kept but never counted (CSV, counts, exit status).
import { harnessErrorRow, rowFromResult } from "../store/csv.ts";
import { warn } from "../core/log.ts";
import type { Lock } from "../core/lock.ts";
import { takeMatrixLock } from "./lock.ts";
import { testCellName, type Cell } from "./plan.ts";
import { cellLogPath, type CellOutcome } from "./cell.ts";
import {
  claimedFiles, findRecord, isRepeated, matrixTests, overheadPerTest, pendingTests, readState, recordCell, testCount,
  testCounts, testSuffix, totalSeconds, writeState, STATE_VERSION, type CellRecord, type MatrixOptions, type MatrixState,
  type Session,
} from "./state.ts";
import { makeFreeDir } from "../core/files.ts";
import { fileStamp, isoTimestamp, type TestResult } from "../upload/result.ts";
import { ResultsDb } from "../store/results-db.ts";
import { MatrixDbRun } from "./db-run.ts";
import { MatrixOutputs, csvPath, summaryPath } from "./outputs.ts";
import { orphanResults } from "./orphans.ts";
import type { CellSummary } from "../stats/cells.ts";
import type { ControlRecord } from "./sentinel.ts";

export type EndStatus = "complete" | "interrupted" | "stopped on failure" | "stopped on drift";

export class MatrixRun {
  private readonly t0 = performance.now();
  private loopT0: number | null = null;
  private readonly session: Session;
  private readonly sessionPrep: number;
  private finished = false;
  private readonly outputs: MatrixOutputs;
  private readonly driftWarned = new Set<string>();

  private constructor(
    readonly dir: string,
    readonly state: MatrixState,
    private readonly db: MatrixDbRun,
    readonly lock: Lock,
    prepSeconds: number,
  ) {
    this.session = { started: isoTimestamp(new Date()), finished: null, status: "running", wall_seconds: prepSeconds, loop_seconds: 0 };
    state.sessions.push(this.session);
    this.sessionPrep = prepSeconds;
    this.outputs = new MatrixOutputs(dir);
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
    const dir = makeFreeDir(p.resultsDir, `matrix-${fileStamp(started)}`);
    const lock = takeMatrixLock(dir);
    const dbRun = MatrixDbRun.begin(db, p.dbPath, { started, dir, options: p.options, host: p.host });
    const state: MatrixState = {
      version: STATE_VERSION,
      created: isoTimestamp(started),
      run_id: dbRun.runId,
      db: p.dbPath,
      options: p.options,
      cells: [],
      sessions: [],
      totals: { tests_run: 0, upload_seconds: 0 },
    };
    const run = new MatrixRun(dir, state, dbRun, lock, p.prepSeconds);
    run.writeOutputs();
    return run;
  }

  /** Reads a matrix folder's state and takes its lock (exit 2 when it cannot be resumed). */
  static load(dir: string): { state: MatrixState; lock: Lock } {
    const state = readState(dir);
    return { state, lock: takeMatrixLock(dir) };
  }

  /** Continues a matrix: its database run goes back to running. */
  static resume(dir: string, state: MatrixState, lock: Lock, prepSeconds: number): MatrixRun {
    let dbRun: MatrixDbRun;
    try {
      dbRun = MatrixDbRun.reopen(dir, state);
    } catch (err) {
      lock.release();
      throw err;
    }
    const run = new MatrixRun(dir, state, dbRun, lock, prepSeconds);
    run.writeState();
    return run;
  }

  get runId(): number {
    return this.state.run_id;
  }

  /** Every test of the matrix: cells x (warm-ups + iterations). */
  get totalTests(): number {
    return testCount(this.state.options);
  }

  /** Whether a cell runs more than one test (iteration and warm-up labels, the statistics table). */
  get repeated(): boolean {
    return isRepeated(this.state.options);
  }

  /** Every test of the matrix in order: each cell's warm-ups, then its measured iterations. */
  cells(): Cell[] {
    return matrixTests(this.state.options);
  }

  /** " (iteration 2/5)", " (warm-up 1/1)", or "" when each cell runs once. */
  suffix(cell: Pick<Cell, "iteration" | "warmup">): string {
    return testSuffix(this.state.options, cell);
  }

  /** The tests with no result yet (never run, interrupted, or run-test crashed). */
  pending(): Cell[] {
    return pendingTests(this.state);
  }

  /** Result files already counted for a test. */
  claimed(): Set<string> {
    return claimedFiles(this.state);
  }

  /**
   * Results of this run that the folder holds but matrix.json does not (the
   * matrix died between run-test writing one and recording it): counted as
   * done, each for the test of its cell and iteration. Returns the tests adopted.
   */
  adoptOrphanResults(): string[] {
    const adopted: string[] = [];
    for (const { cell, path, result } of orphanResults(this.dir, this.state)) {
      this.recordResult(cell, result, path, null, 0);
      adopted.push(`${testCellName(cell)}${this.suffix(cell)}`);
    }
    if (adopted.length > 0) this.writeOutputs();
    return adopted;
  }

  startLoop(): void {
    this.loopT0 = performance.now();
  }

  /** Adds or replaces the test's record in matrix.json. */
  private recordTest(cell: Cell, r: Pick<CellRecord, "row" | "error" | "log_file" | "wall_seconds">): void {
    recordCell(this.state, {
      ram_mb: cell.ram,
      file_size: cell.size.label,
      concurrency: cell.concurrency,
      iteration: cell.iteration,
      warmup: cell.warmup,
      row: r.row,
      error: r.error,
      log_file: r.log_file,
      finished: isoTimestamp(new Date()),
      wall_seconds: r.wall_seconds,
      bytes: cell.size.bytes,
    });
  }

  private recordResult(cell: Cell, result: TestResult, resultFile: string, logFile: string | null, wallSeconds: number): void {
    const log_file = logFile ?? cellLogPath(this.dir, cell);
    this.recordTest(cell, { row: rowFromResult(result, resultFile), error: null, log_file, wall_seconds: wallSeconds });
    this.db.recordResult(cell, result, resultFile);
  }

  /** Records what a run-test process came to, counts it (warm-ups too), and rewrites the outputs. */
  recordOutcome(cell: Cell, o: CellOutcome): CellRecord {
    this.state.totals.tests_run++;
    if (o.result && o.resultFile) {
      this.state.totals.upload_seconds += o.result.duration_seconds;
      this.recordResult(cell, o.result, o.resultFile, o.logFile, o.wallSeconds);
    } else {
      const error = o.error ?? "run-test wrote no result";
      this.recordTest(cell, { row: harnessErrorRow(cell.ram, cell.size.label, cell.concurrency), error, log_file: o.logFile, wall_seconds: o.wallSeconds });
      this.db.recordHarnessError(cell, { error, exitCode: o.exitCode, signal: o.signal, logFile: o.logFile });
    }
    this.writeOutputs();
    // Said as soon as it happens, once each; summary.txt keeps them.
    for (const w of this.outputs.driftWarnings(this.state)) {
      if (!this.driftWarned.has(w)) warn(w);
      this.driftWarned.add(w);
    }
    return findRecord(this.state, cell)!;
  }

  /**
   * done: tests run (warm-ups included, as in totalTests); warmups: of them
   * warm-ups; passed and failed: the measured tests only.
   */
  counts() {
    return testCounts(this.state);
  }

  /** Per-cell statistics over the measured tests (warm-ups left out), for the cells that have run one. */
  cellStatistics(): CellSummary[] {
    return this.outputs.cellStatistics(this.state);
  }

  overheadPerTest(): number | null {
    return overheadPerTest(this.state);
  }

  totalSeconds(): number {
    return totalSeconds(this.state);
  }

  get csvPath(): string {
    return csvPath(this.dir);
  }

  get summaryPath(): string {
    return summaryPath(this.dir);
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

  /** matrix.json, the CSV and summary.txt, each written atomically. */
  private writeOutputs(): void {
    this.writeState();
    this.outputs.write(this.state, this.session);
  }

  /** The control cell's results-log run (kind "control", naming the matrix's run), made at its first control test. */
  controlRunId(): number {
    this.state.control_run_id ??= this.db.startControlRun(this.state.options);
    return this.state.control_run_id;
  }

  /** The control runs so far, oldest first. */
  get controls(): ControlRecord[] {
    return (this.state.controls ??= []);
  }

  /** Adds a control run's record; matrix.json and the summary are rewritten. */
  recordControl(c: ControlRecord): void {
    this.controls.push(c);
    this.writeOutputs();
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
      this.db.finish(status === "complete" ? "complete" : "interrupted", this.state.control_run_id ?? null);
      this.lock.release();
    }
  }
}
