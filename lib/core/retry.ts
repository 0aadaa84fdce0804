// Bounded retries with exponential backoff (p-retry); every retry is logged
// with its reason so that flakiness shows in the log instead of hiding.
import pRetry, { AbortError } from "p-retry";
import { log } from "./log.ts";
import { errorMessage } from "./errors.ts";

export interface RetryOptions {
  /** Retries after the first attempt. */
  retries: number;
  /** First delay in ms; doubles each time (factor) up to maxDelay. */
  minDelay: number;
  maxDelay?: number;
  factor?: number;
  /** Stops retrying at once when aborted (e.g. on Ctrl-C). */
  signal?: AbortSignal;
  /** Don't log the first N failures (for polls where early failures are expected). */
  quietAttempts?: number;
}

/** Runs `fn` until it succeeds or the retries are spent; `what` names it in the log. */
export function retry<T>(
  what: string,
  fn: (attempt: number) => Promise<T>,
  opts: RetryOptions,
): Promise<T> {
  // p-retry never retries a TypeError, and fetch reports a refused connection
  // as one: hand it on as a plain Error so that it is retried like the rest.
  const attempt = async (n: number) => {
    try {
      return await fn(n);
    } catch (err) {
      if (err instanceof TypeError) throw new Error(err.message, { cause: err });
      throw err;
    }
  };
  return pRetry(attempt, {
    retries: opts.retries,
    minTimeout: opts.minDelay,
    maxTimeout: opts.maxDelay ?? opts.minDelay * 16,
    factor: opts.factor ?? 2,
    signal: opts.signal,
    onFailedAttempt: ({ error, attemptNumber, retriesLeft, retryDelay }) => {
      if (retriesLeft === 0 || attemptNumber <= (opts.quietAttempts ?? 0)) return;
      log(
        `${what}: attempt ${attemptNumber} failed (${errorMessage(error)}); ` +
          `retrying in ${retryDelay} ms, ${retriesLeft} left`,
      );
    },
  });
}

/** Thrown inside a retried function to stop retrying at once. */
export { AbortError as StopRetrying };
