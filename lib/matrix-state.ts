// A matrix folder's own record, matrix.json: the options it was started with,
// its database run, the cells done so far and the time each session took.
// Rewritten atomically after every cell, so --resume always finds a whole file.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { BackendName } from "./backends/types.ts";
import type { MatrixRow } from "./csv.ts";
import { UsageError, errorMessage } from "./errors.ts";
import { writeFileAtomic } from "./files.ts";
import { HARNESS_ERROR } from "./result.ts";

export const STATE_FILE = "matrix.json";
export const STATE_VERSION = 1;

export interface MatrixOptions {
  memory_limits: number[];
  file_sizes: string[];
  timeout: number;
  stop_on_failure: boolean;
  backend: BackendName;
  picoshare: { path: string; version: string; sha256: string };
  /** --work-dir as given (absolute), or null for run-test's default. */
  work_dir: string | null;
  test_files: string;
  verify: boolean;
}

export interface CellRecord {
  ram_mb: number;
  file_size: string;
  /** The CSV row; result_file is absolute. */
  row: MatrixRow;
  /** What went wrong when run-test wrote no result; null otherwise. */
  error: string | null;
  /** run-test's output for this cell (absolute). */
  log_file: string;
  finished: string;
  /** Wall time of the run-test process; 0 for a result found after a crash. */
  wall_seconds: number;
  bytes: number;
}

export interface Session {
  started: string;
  finished: string | null;
  status: "running" | "complete" | "interrupted" | "stopped on failure";
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
    state?.version === STATE_VERSION &&
    Number.isInteger(state.run_id) &&
    typeof state.db === "string" &&
    Array.isArray(state.cells) &&
    Array.isArray(state.sessions) &&
    Array.isArray(o?.memory_limits) &&
    Array.isArray(o?.file_sizes) &&
    typeof o?.picoshare?.path === "string" &&
    typeof o?.test_files === "string";
  if (!ok) throw new UsageError(`--resume ${dir}: ${STATE_FILE} is not a matrix state this harness can read (version ${state?.version})`);
  return state;
}

export function cellKey(ram: number, sizeLabel: string): string {
  return `${ram}/${sizeLabel}`;
}

/** A cell counts as done once it has a result; a harness error is run again on resume. */
export function hasResult(record: CellRecord | undefined): boolean {
  return record !== undefined && record.row.exit_reason !== HARNESS_ERROR;
}

/** Adds or replaces the record for its cell. */
export function recordCell(state: MatrixState, record: CellRecord): void {
  const key = cellKey(record.ram_mb, record.file_size);
  state.cells = state.cells.filter((c) => cellKey(c.ram_mb, c.file_size) !== key);
  state.cells.push(record);
}

/** The cells' records in matrix order. */
export function orderedCells(state: MatrixState): CellRecord[] {
  const rank = (c: CellRecord) =>
    state.options.memory_limits.indexOf(c.ram_mb) * state.options.file_sizes.length + state.options.file_sizes.indexOf(c.file_size);
  return [...state.cells].sort((a, b) => rank(a) - rank(b));
}

/** Wall time of the test loops less upload time, per test run; null before any test. */
export function overheadPerTest(state: MatrixState): number | null {
  if (state.totals.tests_run === 0) return null;
  const loop = state.sessions.reduce((s, x) => s + x.loop_seconds, 0);
  return Math.max(0, loop - state.totals.upload_seconds) / state.totals.tests_run;
}

export function totalSeconds(state: MatrixState): number {
  return state.sessions.reduce((s, x) => s + x.wall_seconds, 0);
}
