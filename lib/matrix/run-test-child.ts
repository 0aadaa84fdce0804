// run-test as a child process, as the matrix and compare run it (its command
// line and PERF_* variables are made by lib/upload/options.ts): its stderr
// appended to a log, the result it wrote read back, or why there is none.
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { runProjectScript, type ChildRun } from "../core/child-script.ts";
import type { TestResult } from "../upload/result.ts";
import { TWIN_TIMEOUT_FACTOR } from "../upload/instructions.ts";

/**
 * A hard stop for a run-test that hangs: the upload's own timeout, the same
 * again for --verify's download, and room for start-up and teardown; with
 * --count-instructions, the same again for the slower instrumented twin.
 */
export function runTestDeadlineMs(timeoutSec: number, twin = false): number {
  const one = 2 * timeoutSec + 300;
  return (one + (twin ? 2 * TWIN_TIMEOUT_FACTOR * timeoutSec + 300 : 0)) * 1000;
}

/** A result file's record, or null when it is missing or not a result. */
export function readResultFile(path: string): TestResult | null {
  try {
    const r = JSON.parse(readFileSync(path, "utf8")) as TestResult;
    return typeof r.ram_mb === "number" && typeof r.file_size === "string" ? r : null;
  } catch {
    return null;
  }
}

/** The last `ERROR:` line in a log, without its timestamp. */
export function lastError(logText: string): string | null {
  const last = logText.split("\n").filter((l) => l.includes("ERROR:")).at(-1);
  return last ? last.replace(/^\[[^\]]*\]\s*/, "").replace(/^ERROR:\s*/, "") : null;
}

export interface RunTestChild {
  ran: ChildRun;
  /** The path run-test printed (absolute), and what it holds; null when it printed none. */
  resultFile: string | null;
  result: TestResult | null;
  /** Why there is no result, in a sentence (how run-test ended and its last ERROR line). */
  failure: string;
  /** run-test's last ERROR line in this run, if any. */
  lastError: string | null;
}

export async function runTestChild(
  args: string[],
  opts: { logFile: string; timeoutSec: number; env?: Record<string, string>; header: (pid: number) => string; twin?: boolean },
): Promise<RunTestChild> {
  const deadlineMs = runTestDeadlineMs(opts.timeoutSec, opts.twin);
  const before = existsSync(opts.logFile) ? readFileSync(opts.logFile).length : 0;
  const ran = await runProjectScript("run-test", args, {
    env: opts.env,
    stderrPath: opts.logFile,
    captureStdout: true,
    deadlineMs,
    onStart: (pid) => appendFileSync(opts.logFile, `${opts.header(pid)}\n`),
  });
  const printed = ran.stdout.trim().split("\n").filter(Boolean).at(-1);
  if (printed) appendFileSync(opts.logFile, `${printed}\n`);
  const resultFile = printed ? resolve(printed) : null;
  const result = resultFile && existsSync(resultFile) ? readResultFile(resultFile) : null;
  const how = ran.timedOut
    ? `run-test did not end within ${deadlineMs / 1000} s and was stopped`
    : ran.signal
      ? `run-test was killed by ${ran.signal}`
      : `run-test exited with code ${ran.code}`;
  const why = lastError(readFileSync(opts.logFile).subarray(before).toString("utf8"));
  return { ran, resultFile, result, failure: `${how} without writing a result${why ? `: ${why}` : ""}`, lastError: why };
}
