// What a test leaves behind: its result file with PicoShare's log beside it
// and its row in the results log; or, for a run-test that ended without a
// result, the harness error its parent records in its place.
import { linkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../core/errors.ts";
import { partialPath, writeFileAtomic } from "../core/files.ts";
import { warn } from "../core/log.ts";
import { displayPath } from "../core/paths.ts";
import { ResultsDb } from "../store/results-db.ts";
import { timelineCsv, type TimelineSample } from "./timeline.ts";
import { fileStamp, freeStem, HARNESS_ERROR, isoTimestamp, type TestResult } from "./result.ts";

/** A measured test, not yet recorded. */
export interface Measurement {
  /** Its result; log_file is set when PicoShare's log is written. */
  result: TestResult;
  startedAt: Date;
  /** PicoShare's output, or null when no environment was made. */
  picoshareLog: string | null;
  /** The memory samples of the upload and the download, by phase; null when none were taken. */
  timeline: TimelineSample[] | null;
}

export interface TestOutcome {
  result: TestResult;
  resultPath: string;
}

/**
 * Writes a test's result file and PicoShare's log under names not yet taken
 * in `resultsDir`, then adds the result to the results log (a failure there
 * is a warning: the file has it).
 */
export function recordResult(m: Measurement, to: { resultsDir: string; dbPath: string | null }): TestOutcome {
  const stem = freeStem(to.resultsDir, resultStem(m.result.ram_mb, m.result.file_size, m.startedAt), (s) => [
    `result-${s}.json`,
    `picoshare-${s}.log`,
    `timeline-${s}.csv`,
  ]);
  const logPath = join(to.resultsDir, `picoshare-${stem}.log`);
  if (m.picoshareLog !== null) writeFileAtomic(logPath, m.picoshareLog);
  const timelinePath = join(to.resultsDir, `timeline-${stem}.csv`);
  if (m.timeline !== null) writeFileAtomic(timelinePath, timelineCsv(m.timeline));
  const result: TestResult = {
    ...m.result,
    log_file: m.picoshareLog === null ? null : displayPath(logPath),
    timeline_file: m.timeline === null ? null : displayPath(timelinePath),
  };
  const resultPath = join(to.resultsDir, `result-${stem}.json`);
  writeNewFile(resultPath, resultJson(result));
  if (to.dbPath) {
    try {
      const db = ResultsDb.open(to.dbPath);
      try {
        recordResultRow(db, result, resultPath);
      } finally {
        db.close();
      }
    } catch (err) {
      warn(`could not record the result in ${to.dbPath}: ${errorMessage(err)}`);
    }
  }
  return { result, resultPath };
}

/** The result file's and log's name: test, then start time. */
function resultStem(ramMiB: number, sizeLabel: string, started: Date): string {
  return `${ramMiB}MB-${sizeLabel}-${fileStamp(started)}`;
}

/**
 * Writes a new file that must not replace another: written under a temporary
 * name, then hard-linked into place (atomic; fails with EEXIST if taken).
 */
function writeNewFile(path: string, content: string): void {
  const tmp = partialPath(path);
  writeFileSync(tmp, content, { mode: 0o644 });
  try {
    linkSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

function resultJson(result: TestResult): string {
  return `${JSON.stringify(result, null, 2)}\n`;
}

/**
 * A result file's row in the results log, unless its run has it already:
 * the matrix calls it too, for a run-test that was killed or could not reach
 * the database before it recorded its own.
 */
export function recordResultRow(db: ResultsDb, result: TestResult, resultFile: string): void {
  if (result.run_id !== null && db.hasResultFile(result.run_id, resultFile)) return;
  db.addResult(result, resultFile);
}

/** A test for which run-test wrote no result, and how that run-test ended. */
export interface HarnessError {
  runId: number;
  ram: number;
  fileSize: string;
  /** Which of the cell's tests (default 1), and whether a warm-up (default not). */
  iteration?: number;
  warmup?: boolean;
  /** The cell's uploads at once (default 1). */
  concurrency?: number;
  error: string;
  exitCode: number | null;
  signal: string | null;
  logFile: string | null;
}

/** Records a harness error in the results log, so that a run's record is as complete as its CSV. */
export function recordHarnessError(db: ResultsDb, e: HarnessError): void {
  db.addHarnessError({
    run_id: e.runId, timestamp: isoTimestamp(new Date()), ram_mb: e.ram, file_size: e.fileSize, exit_reason: HARNESS_ERROR,
    error: e.error, exit_code: e.exitCode, signal: e.signal, log_file: e.logFile, iteration: e.iteration, warmup: e.warmup,
    concurrency: e.concurrency,
  });
}
