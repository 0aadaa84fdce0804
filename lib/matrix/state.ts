// A matrix folder's own record, matrix.json: the options it was started with,
// its database run, the tests done so far (one record per iteration of each
// cell) and the time each session took. Rewritten atomically after every
// test, so --resume always finds a whole file. And what it says: the tests
// of the matrix, those still to run, and the counts.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { MatrixPassed } from "../upload/options.ts";
import type { MatrixRow } from "../store/csv.ts";
import { UsageError, errorMessage } from "../core/errors.ts";
import { writeFileAtomic } from "../core/files.ts";
import { HARNESS_ERROR } from "../upload/result.ts";
import { parseSize } from "../core/sizes.ts";
import { iterationSuffix, matrixCells, type Cell } from "./plan.ts";
import { cellName } from "../stats/cells.ts";
import { shardTests, type Shard } from "./shard.ts";
import type { ControlOptions, ControlRecord } from "./sentinel.ts";

export const STATE_FILE = "matrix.json";
/** 2: repeated tests (options.iterations and .warmup, one record per iteration). 1 is read as 1 iteration, no warm-up. */
export const STATE_VERSION = 2;

/**
 * The matrix's options as matrix.json stores them: its own, and the run-test
 * flags it passes on to each test (timeout, backend, test_files, verify,
 * reuse_vm: see lib/upload/options.ts; reuse_vm is absent in older states).
 */
export interface MatrixOptions extends MatrixPassed {
  memory_limits: number[];
  file_sizes: string[];
  stop_on_failure: boolean;
  picoshare: { path: string; version: string; sha256: string };
  /** --work-dir as given (absolute), or null for run-test's default. */
  work_dir: string | null;
  /** Measured tests per cell (--iterations). */
  iterations: number;
  /** Warm-up tests per cell, run before the measured ones and never counted (--warmup). */
  warmup: number;
  /** Uploads at once, a cell's third axis (--concurrency-levels); absent in older states: [1]. */
  concurrency_levels?: number[];
  /** This folder runs only shard `index` of `count` of the matrix's cells (--shard); absent: all of them. */
  shard?: Shard;
  /** The drift sentinel (--control-cell, --control-every, --stop-on-drift); absent: none. */
  control?: ControlOptions;
}

/** What came of one test of the matrix: one iteration of a (RAM, size) cell. */
export interface CellRecord {
  ram_mb: number;
  file_size: string;
  /** The cell's uploads at once; absent in older states: 1. */
  concurrency?: number;
  /** Which of the cell's tests, 1-based, warm-ups first. */
  iteration: number;
  /** A warm-up test: kept here, never in the CSV or the counts. */
  warmup: boolean;
  /** The CSV row; result_file is absolute. */
  row: MatrixRow;
  /** What went wrong when run-test wrote no result; null otherwise. */
  error: string | null;
  /** run-test's output for this cell, every iteration appended (absolute). */
  log_file: string;
  finished: string;
  /** Wall time of the run-test process; 0 for a result found after a crash. */
  wall_seconds: number;
  bytes: number;
}

export interface Session {
  started: string;
  finished: string | null;
  status: "running" | "complete" | "interrupted" | "stopped on failure" | "stopped on drift";
  /** The whole session, preparation included. */
  wall_seconds: number;
  /** Only the part spent running tests. */
  loop_seconds: number;
}

export interface MatrixState {
  version: number;
  created: string;
  run_id: number;
  /** The SQLite results log (absolute). */
  db: string;
  options: MatrixOptions;
  cells: CellRecord[];
  sessions: Session[];
  /** The control cell's runs (--control-cell), oldest first, and their results-log run. */
  controls?: ControlRecord[];
  control_run_id?: number;
  /** run-test processes that ended (interrupted ones excluded) and their upload seconds. */
  totals: { tests_run: number; upload_seconds: number };
}

export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

export function writeState(dir: string, state: MatrixState): void {
  writeFileAtomic(statePath(dir), `${JSON.stringify(state, null, 2)}\n`);
}

/** Reads a matrix folder's state; exit 2 with the reason when it is not one. */
export function readState(dir: string): MatrixState {
  const path = statePath(dir);
  if (!existsSync(path)) {
    throw new UsageError(
      `--resume ${dir}: no ${STATE_FILE} there; give a folder made by run-test-matrix (results/matrix-YYYYMMDD-HHMMSS)`,
    );
  }
  let state: MatrixState;
  try {
    state = JSON.parse(readFileSync(path, "utf8")) as MatrixState;
  } catch (err) {
    throw new UsageError(`--resume ${dir}: ${STATE_FILE} cannot be read (${errorMessage(err)})`);
  }
  const o = state?.options;
  const ok =
    (state?.version === 1 || state?.version === STATE_VERSION) &&
    Number.isInteger(state.run_id) &&
    typeof state.db === "string" &&
    Array.isArray(state.cells) &&
    Array.isArray(state.sessions) &&
    Array.isArray(o?.memory_limits) &&
    Array.isArray(o?.file_sizes) &&
    typeof o?.picoshare?.path === "string" &&
    typeof o?.test_files === "string";
  if (!ok) throw new UsageError(`--resume ${dir}: ${STATE_FILE} is not a matrix state this harness can read (version ${state?.version})`);
  return upgradeState(state, dir);
}

/** A version-1 state (before repeated tests) as version 2: one measured test per cell, no warm-up. */
function upgradeState(state: MatrixState, dir: string): MatrixState {
  const o = state.options;
  if (state.version === 1) {
    o.iterations = 1;
    o.warmup = 0;
    for (const c of state.cells) {
      c.iteration = 1;
      c.warmup = false;
    }
    state.version = STATE_VERSION;
  }
  const bad =
    !Number.isInteger(o.iterations) || o.iterations < 1 || !Number.isInteger(o.warmup) || o.warmup < 0 ||
    state.cells.some((c) => !Number.isInteger(c.iteration) || c.iteration < 1 || typeof c.warmup !== "boolean");
  if (bad) throw new UsageError(`--resume ${dir}: ${STATE_FILE} has unreadable iterations or warm-ups (version ${state.version})`);
  return state;
}

/** The matrix's concurrency levels ([1] for a state from before them). */
export function levelsOf(o: MatrixOptions): number[] {
  return o.concurrency_levels ?? [1];
}

/** One test's key: its cell and its iteration. */
function recordKey(c: CellRecord): string {
  return `${cellName(c)}#${c.iteration}`;
}

/** A cell counts as done once it has a result; a harness error is run again on resume. */
export function hasResult(record: CellRecord | undefined): boolean {
  return record !== undefined && record.row.exit_reason !== HARNESS_ERROR;
}

/** Adds or replaces the record for its test (cell and iteration). */
export function recordCell(state: MatrixState, record: CellRecord): void {
  const key = recordKey(record);
  state.cells = state.cells.filter((c) => recordKey(c) !== key);
  state.cells.push(record);
}

/** The tests' records in matrix order (cells in order, each cell's iterations in order), warm-ups included. */
export function orderedCells(state: MatrixState): CellRecord[] {
  const o = state.options;
  const levels = levelsOf(o);
  const rank = (c: CellRecord) =>
    (o.memory_limits.indexOf(c.ram_mb) * o.file_sizes.length + o.file_sizes.indexOf(c.file_size)) * levels.length +
    levels.indexOf(c.concurrency ?? 1);
  return [...state.cells].sort((a, b) => rank(a) - rank(b) || a.iteration - b.iteration);
}

/** The measured tests' records in matrix order: what the CSV, the counts and the exit status go by. */
export function measuredCells(state: MatrixState): CellRecord[] {
  return orderedCells(state).filter((c) => !c.warmup);
}

/** Wall time of the test loops less upload time, per test run (warm-ups included); null before any test. */
export function overheadPerTest(state: MatrixState): number | null {
  if (state.totals.tests_run === 0) return null;
  const loop = state.sessions.reduce((s, x) => s + x.loop_seconds, 0);
  return Math.max(0, loop - state.totals.upload_seconds) / state.totals.tests_run;
}

export function totalSeconds(state: MatrixState): number {
  return state.sessions.reduce((s, x) => s + x.wall_seconds, 0);
}

/** Every test of the matrix in order: each cell's warm-ups, then its measured iterations. */
export function matrixTests(o: MatrixOptions): Cell[] {
  const all = matrixCells(o.memory_limits, o.file_sizes.map((s) => parseSize(s)), o.iterations, o.warmup, levelsOf(o));
  if (!o.shard) return all;
  // A shard's tests keep their places in the whole matrix's numbering of cells, renumbered for its own log.
  return shardTests(all, o.shard).map((c, i) => ({ ...c, index: i + 1 }));
}

/** How many tests the matrix (or its shard) has: cells x (warm-ups + iterations). */
export function testCount(o: MatrixOptions): number {
  if (o.shard) return matrixTests(o).length;
  return o.memory_limits.length * o.file_sizes.length * levelsOf(o).length * (o.warmup + o.iterations);
}

/** Whether a cell runs more than one test (iteration and warm-up labels, the statistics table). */
export function isRepeated(o: MatrixOptions): boolean {
  return o.iterations > 1 || o.warmup > 0;
}

/** " (iteration 2/5)", " (warm-up 1/1)", or "" when each cell runs once. */
export function testSuffix(o: MatrixOptions, cell: Pick<Cell, "iteration" | "warmup">): string {
  return iterationSuffix(cell, o.iterations, o.warmup);
}

export function findRecord(state: MatrixState, cell: Cell): CellRecord | undefined {
  return state.cells.find(
    (c) => c.ram_mb === cell.ram && c.file_size === cell.size.label && (c.concurrency ?? 1) === cell.concurrency && c.iteration === cell.iteration,
  );
}

/** The tests with no result yet (never run, interrupted, or run-test crashed). */
export function pendingTests(state: MatrixState): Cell[] {
  return matrixTests(state.options).filter((c) => !hasResult(findRecord(state, c)));
}

/** Result files already counted for a test. */
export function claimedFiles(state: MatrixState): Set<string> {
  return new Set(state.cells.map((c) => c.row.result_file).filter((f): f is string => f !== null));
}

/**
 * done: tests run (warm-ups included, as in testCount); warmups: of them
 * warm-ups; passed and failed: the measured tests only.
 */
export function testCounts(state: MatrixState) {
  const done = orderedCells(state);
  const measured = done.filter((c) => !c.warmup);
  const passed = measured.filter((c) => c.row.success).length;
  return {
    done: done.length,
    warmups: done.length - measured.length,
    passed,
    failed: measured.length - passed,
  };
}
