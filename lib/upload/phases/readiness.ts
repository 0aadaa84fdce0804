// Readiness: from a started PicoShare to one that answers HTTP.
import type { TestEnvironment } from "../../backends/types.ts";
import { errorMessage } from "../../core/errors.ts";
import { waitUntilReady } from "../session.ts";
import { Failure, attempt, secondsSince, type Outcome } from "./common.ts";

export interface ReadinessFigures extends Outcome {
  seconds: number;
}

export async function readiness(env: TestEnvironment, baseUrl: string): Promise<ReadinessFigures> {
  const t0 = performance.now();
  const failure = await attempt(() =>
    waitUntilReady(env, baseUrl).catch((err) => {
      throw new Failure("startup_failed", errorMessage(err));
    }),
  );
  return { seconds: secondsSince(t0), failure };
}
