// The result record of one test: its fields are declared once in
// lib/result/ (the original harness's JSON fields, same names and types,
// then this harness's extras); here the values some of them take, and the
// helpers every script uses on a record.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { TestResult } from "../result/fields.ts";
export {
  NO_DOWNLOAD, NO_REQUESTS, NO_VALUES, readResult,
  type DownloadFields, type RequestFields, type SyscallFields, type TestResult, type UploadBreakdown,
} from "../result/fields.ts";

export const EXIT_REASONS = [
  "success",
  "http_error",
  "timeout",
  "process_died",
  "oom_killed",
  "setup_failed",
  "startup_failed",
  "entry_missing",
  "corrupt",
] as const;
export type ExitReason = (typeof EXIT_REASONS)[number];

/**
 * The exit_reason a matrix reports for a cell where run-test wrote no result
 * (it crashed, was killed, or refused with exit 2): never in a result file.
 */
export const HARNESS_ERROR = "harness_error";

/** Seconds spent in each phase of a test. */
export interface Phases {
  setup: number;
  readiness: number;
  auth: number;
  upload: number;
  /** The measured download after a successful upload (0 with --no-download). */
  download: number;
  verify: number;
  /** The requests phase after them (0 when it did not run; absent in a record from before it). */
  requests?: number;
  teardown: number;
}

/** Recovery after a failed upload: PicoShare started again on the same data dir, under the same limit. */
export interface Recovery {
  /** PicoShare answered again after the restart. */
  started: boolean;
  /** PRAGMA integrity_check on a copy of the database as the failure left it: "ok", or the first problems it names; null when it could not be run. */
  integrity_check: string | null;
  /** The small entry uploaded before the big one is served whole (length and SHA-256) after the restart; null when there was none to check. */
  earlier_entry_intact: boolean | null;
  /** Go's multipart-* temp files, and their bytes, left in PicoShare's TMPDIR by the failed upload. */
  temp_files_left: number | null;
  temp_bytes_left: number | null;
  /** Seconds from the restart until PicoShare answered. */
  restart_seconds: number | null;
  /** What went wrong in the recovery itself; null when it all ran. */
  error: string | null;
}

/** A result's iteration; 1 for a record written before iterations existed. */
export function iterationOf(r: Pick<TestResult, "iteration">): number {
  return Number.isInteger(r.iteration) && r.iteration >= 1 ? r.iteration : 1;
}

/** Whether a result is a warm-up run (false for a record written before warm-ups existed). */
export function isWarmup(r: Pick<TestResult, "warmup">): boolean {
  return r.warmup === true;
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, "0");
}

/** ISO 8601 local time with offset, as the original wrote (2026-01-29T12:00:00+00:00). */
export function isoTimestamp(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` +
    `${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`
  );
}

/** YYYYMMDD-HHMMSS, as in result and matrix folder names. */
export function fileStamp(d: Date): string {
  return (
    `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-` +
    `${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`
  );
}

/** `stem`, or `stem-2`, `stem-3`... : the first for which no file `names(stem)` exists in `dir`. */
export function freeStem(dir: string, stem: string, names: (stem: string) => string[]): string {
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? stem : `${stem}-${n}`;
    if (!names(candidate).some((name) => existsSync(join(dir, name)))) return candidate;
  }
}
