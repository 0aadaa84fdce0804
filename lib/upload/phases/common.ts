// What the phases of a test share: how a phase says the test ends in it (a
// Failure, returned with the phase's figures, not thrown past them), how
// the test's ending is told from it, and the small readings' helpers.
import { readFileSync } from "node:fs";
import type { TestEnvironment } from "../../backends/types.ts";
import { interrupted } from "../../core/cleanup.ts";
import { UsageError, errorMessage } from "../../core/errors.ts";
import type { ExitReason } from "../result.ts";

/** How often the working set is sampled during the upload and the download. */
export const SAMPLE_INTERVAL_MS = 50;
/** How often PicoShare's temp files are looked at for the end of the transfer (a stat per file: cheap). */
export const TRANSFER_POLL_MS = 10;

/** What ended the test in a phase, and how to say it. */
export class Failure extends Error {
  constructor(
    readonly reason: ExitReason,
    message: string,
  ) {
    super(message);
  }
}

/** Whether a phase let the test go on. */
export interface Outcome {
  failure: Failure | null;
}

/** How the test ended, as the result says it. */
export interface Ending {
  reason: ExitReason;
  error: string | null;
}

/**
 * Runs a phase's steps: the Failure one throws is returned, any other error
 * becomes one with the reason `otherwise` (after PicoShare's start: its
 * process died). An interrupt and a usage error (exit 2) are thrown on.
 */
export async function attempt(steps: () => Promise<void>, otherwise: ExitReason = "process_died"): Promise<Failure | null> {
  try {
    await steps();
    return null;
  } catch (err) {
    if (interrupted() || err instanceof UsageError) throw err;
    return err instanceof Failure ? err : new Failure(otherwise, errorMessage(err));
  }
}

/** The next phase, run only when the one before it let the test go on (null: not reached). */
export async function after<F>(before: Outcome | null, phase: () => Promise<F>): Promise<F | null> {
  return before && !before.failure ? phase() : null;
}

/**
 * How the test ended: success, or the phase's failure, with an OOM kill in
 * the environment named as the cause whatever the symptom (a refused
 * connection, a failed start), and the end of PicoShare's log.
 */
export async function endingOf(failure: Failure | null, env: TestEnvironment | null): Promise<Ending> {
  if (!failure) return { reason: "success", error: null };
  let { reason, message: error } = failure;
  if (env && (await env.oomKills().catch(() => 0)) > 0 && reason !== "oom_killed") {
    error = `the kernel's OOM killer ended PicoShare (${error})`;
    reason = "oom_killed";
  }
  if (env) {
    const tail = logTail(env.logPath);
    if (tail) error += `; PicoShare's log ends: ${tail}`;
  }
  return { reason, error };
}

function logTail(path: string, lines = 5): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join(" | ");
  } catch {
    return "";
  }
}

/** One of the environment's optional readings: null where the backend has none, or it failed. */
export async function optional<T>(read: () => Promise<T | null> | undefined): Promise<T | null> {
  try {
    return (await read()) ?? null;
  } catch {
    return null;
  }
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Seconds since `t0` (performance.now()), to the millisecond: a phase's time. */
export function secondsSince(t0: number): number {
  return round((performance.now() - t0) / 1000, 3);
}
