// Recovery: a small entry uploaded before the big one; after an OOM kill, a
// timeout or a dead process, PicoShare started again on the same data to
// see what survived (see ../recovery.ts).
import type { TestEnvironment } from "../../backends/types.ts";
import { interruptSignal, interrupted } from "../../core/cleanup.ts";
import { errorMessage } from "../../core/errors.ts";
import { log } from "../../core/log.ts";
import { RECOVERED_AFTER, recover, uploadCanary, type Canary } from "../recovery.ts";
import type { Recovery } from "../result.ts";
import type { TestOptions } from "../runner.ts";
import { Failure, attempt, type Ending, type Outcome } from "./common.ts";

export interface CanaryFigures extends Outcome {
  /** The small entry, where a restart can read it back; null otherwise. */
  canary: Canary | null;
}

export async function plantCanary(env: TestEnvironment, baseUrl: string, cookie: string, scratch: string, opts: TestOptions): Promise<CanaryFigures> {
  let canary: Canary | null = null;
  const failure = await attempt(async () => {
    // Only where a restart can read it back.
    if (opts.recovery === false || !env.restartPicoShare) return;
    canary = await uploadCanary(baseUrl, cookie, scratch, AbortSignal.any([AbortSignal.timeout(30_000), interruptSignal])).catch((err) => {
      throw new Failure("http_error", `the small entry before the upload failed: ${errorMessage(err)}`);
    });
  });
  return { canary, failure };
}

/** After a failed test's own readings: what a restart finds (null when the ending asks for none). */
export async function recovery(
  env: TestEnvironment,
  ending: Ending,
  o: { secret: string; canary: Canary | null; scratch: string; backendName: string },
  opts: TestOptions,
): Promise<Recovery | null> {
  if (opts.recovery === false || !RECOVERED_AFTER.includes(ending.reason)) return null;
  let found: Recovery | null = null;
  if (env.restartPicoShare) {
    found = await recover(env, o);
    logRecovery(found);
  } else {
    log(`Recovery: not checked: the ${o.backendName} backend cannot restart PicoShare on the same data`);
  }
  if (interrupted()) throw interruptSignal.reason;
  return found;
}

function logRecovery(r: Recovery): void {
  const entry = r.earlier_entry_intact === null ? "not checked" : r.earlier_entry_intact ? "served whole" : "LOST or damaged";
  log(
    `Recovery: restart ${r.started ? `answered in ${r.restart_seconds} s` : "FAILED"}, integrity_check ${r.integrity_check ?? "not run"}, ` +
      `earlier entry ${entry}, ${r.temp_files_left ?? "?"} temp file(s) left (${r.temp_bytes_left ?? "?"} bytes)${r.error ? `; ${r.error}` : ""}`,
  );
}
