// Getting from a started PicoShare to a logged-in session: wait until it
// answers, then log in, each with bounded retries.
import type { TestEnvironment } from "../backends/types.ts";
import { authenticate, ping } from "./api.ts";
import { interruptSignal } from "../core/cleanup.ts";
import { errorMessage } from "../core/errors.ts";
import { retry, StopRetrying } from "../core/retry.ts";

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True until the environment reports that PicoShare has exited. */
export async function isRunning(env: TestEnvironment): Promise<boolean> {
  return Promise.race([env.exited.then(() => false), sleep(0).then(() => true)]);
}

/**
 * Polls until PicoShare answers HTTP. Starts polling every few ms (start-up
 * takes tens of ms) and backs off; gives up at once if the process exits.
 */
export async function waitUntilReady(env: TestEnvironment, baseUrl: string): Promise<void> {
  try {
    await retry(
      "PicoShare readiness",
      async () => {
        if (!(await isRunning(env))) {
          const how = await env.exited;
          throw new StopRetrying(`PicoShare exited during start-up (${how.signal ?? `exit code ${how.code}`})`);
        }
        await ping(baseUrl, AbortSignal.timeout(2000));
      },
      { retries: 80, minDelay: 5, factor: 1.5, maxDelay: 500, quietAttempts: 8, signal: interruptSignal },
    );
  } catch (err) {
    const msg = errorMessage(err);
    throw new Error(msg.startsWith("PicoShare exited") ? msg : `PicoShare never answered: ${msg}`);
  }
}

/** Logs in with the shared secret; resolves with the session cookie. */
export function login(baseUrl: string, secret: string): Promise<string> {
  return retry("auth", () => authenticate(baseUrl, secret, AbortSignal.timeout(5000)), {
    retries: 3,
    minDelay: 100,
    signal: interruptSignal,
  });
}
