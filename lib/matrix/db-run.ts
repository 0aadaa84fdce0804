// A matrix's run in the results log: begun with its folder, back to running
// on resume, each test's row (the result run-test recorded, made sure of, or
// the harness error when there is none) and marked complete or interrupted at
// the end. The log is the matrix's second record: a write that fails is a
// warning, as the CSV and matrix.json still have it.
import { errorMessage, UsageError } from "../core/errors.ts";
import { warn } from "../core/log.ts";
import { ResultsDb, type RunStatus } from "../store/results-db.ts";
import { recordHarnessError, recordResultRow } from "../upload/record.ts";
import { isoTimestamp, type TestResult } from "../upload/result.ts";
import type { Cell } from "./plan.ts";
import { CONTROL_KIND } from "./sentinel.ts";
import type { MatrixOptions, MatrixState } from "./state.ts";

/** Why a test has no result, as the matrix saw its run-test end. */
export interface NoResult {
  error: string;
  exitCode: number | null;
  signal: string | null;
  logFile: string;
}

export class MatrixDbRun {
  private constructor(
    private readonly db: ResultsDb,
    /** The log's path, as warnings name it. */
    private readonly path: string,
    readonly runId: number,
  ) {}

  /** A new matrix's run in `db` (opened before its folder is made, so that a bad log stops first). */
  static begin(db: ResultsDb, path: string, m: { started: Date; dir: string; options: MatrixOptions; host: unknown }): MatrixDbRun {
    const runId = db.startRun({
      kind: "matrix",
      startedAt: isoTimestamp(m.started),
      backend: m.options.backend,
      resultsDir: m.dir,
      picoshareVersion: m.options.picoshare.version,
      picoshareSha256: m.options.picoshare.sha256,
      options: m.options,
      host: m.host,
    });
    return new MatrixDbRun(db, path, runId);
  }

  /** The control cell's run: kind "control", labelled and naming the matrix's run, so it is never one of its cells. */
  startControlRun(options: MatrixOptions): number {
    let id = 0;
    this.write("start the control run", (db) => {
      id = db.startRun({
        kind: CONTROL_KIND, startedAt: isoTimestamp(new Date()), backend: options.backend, resultsDir: null,
        picoshareVersion: options.picoshare.version, picoshareSha256: options.picoshare.sha256, options: { control: options.control, matrix_run_id: this.runId }, host: {},
      });
      db.labelRun(id, CONTROL_KIND, this.runId);
    });
    return id;
  }

  /** A resumed matrix's run, back to running; exit 2 when the log no longer has it. */
  static reopen(dir: string, state: MatrixState): MatrixDbRun {
    const db = ResultsDb.open(state.db);
    if (!db.run(state.run_id)) {
      db.close();
      throw new UsageError(
        `--resume ${dir}: run ${state.run_id} is not in ${state.db}; the database was replaced or removed, so this matrix cannot be continued`,
      );
    }
    db.setRunStatus(state.run_id, "running", null);
    return new MatrixDbRun(db, state.db, state.run_id);
  }

  /** A test's result: its earlier harness errors go, and its row is there. */
  recordResult(cell: Cell, result: TestResult, resultFile: string): void {
    this.write("record the result", (db) => {
      db.clearHarnessErrors(this.runId, cell.ram, cell.size.label, cell.iteration, cell.concurrency);
      // run-test records its own result; make sure, in case it could not.
      recordResultRow(db, { ...result, run_id: this.runId, iteration: cell.iteration, warmup: cell.warmup }, resultFile);
    });
  }

  /** A test with no result: its harness error replaces the earlier ones. */
  recordHarnessError(cell: Cell, why: NoResult): void {
    this.write("record the harness error", (db) => {
      db.clearHarnessErrors(this.runId, cell.ram, cell.size.label, cell.iteration, cell.concurrency);
      recordHarnessError(db, {
        runId: this.runId, ram: cell.ram, fileSize: cell.size.label, iteration: cell.iteration, warmup: cell.warmup,
        concurrency: cell.concurrency, ...why,
      });
    });
  }

  /** Marks the run and closes the log. */
  finish(status: Exclude<RunStatus, "running">, controlRunId: number | null = null): void {
    this.write("mark the run", (db) => {
      db.setRunStatus(this.runId, status, isoTimestamp(new Date()));
      if (controlRunId !== null) db.setRunStatus(controlRunId, status, isoTimestamp(new Date()));
    });
    try {
      this.db.close();
    } catch {}
  }

  private write(what: string, fn: (db: ResultsDb) => void): void {
    try {
      fn(this.db);
    } catch (err) {
      warn(`could not ${what} in ${this.path}: ${errorMessage(err)} (the CSV and matrix.json still have it)`);
    }
  }
}
