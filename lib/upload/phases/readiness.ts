// Readiness: from a started PicoShare to one that answers HTTP, and the Go
// runtime settings its process received.
import type { TestEnvironment } from "../../backends/types.ts";
import { errorMessage } from "../../core/errors.ts";
import type { GoRuntimeEnv } from "../provenance.ts";
import { waitUntilReady } from "../session.ts";
import { Failure, attempt, optional, secondsSince, type Outcome } from "./common.ts";

export interface ReadinessFigures extends Outcome {
  seconds: number;
  /** GOGC / GOMEMLIMIT / GODEBUG / GOMAXPROCS from PicoShare's own environment; null where the backend could not read it. */
  goRuntimeEnv: GoRuntimeEnv | null;
}

export async function readiness(env: TestEnvironment, baseUrl: string): Promise<ReadinessFigures> {
  const t0 = performance.now();
  const failure = await attempt(() =>
    waitUntilReady(env, baseUrl).catch((err) => {
      throw new Failure("startup_failed", errorMessage(err));
    }),
  );
  const seconds = secondsSince(t0);
  // Read from the process once it answers (before, it may not have exec'd PicoShare yet), outside the phase's time.
  const goRuntimeEnv = await optional(() => env.goRuntimeEnv());
  return { seconds, goRuntimeEnv, failure };
}
