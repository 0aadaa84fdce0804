// One process per matrix or comparison folder: matrix.lock (compare.lock) (a
// lock of lib/core/lock.ts) names the process running it and the run-test it
// has started, so that --resume refuses while either is still alive (a matrix
// killed with SIGKILL leaves its run-test running).
import { join } from "node:path";
import { UsageError } from "../core/errors.ts";
import { takeLock, type Lock } from "../core/lock.ts";

export const LOCK_FILE = "matrix.lock";
export const COMPARE_LOCK_FILE = "compare.lock";

/** Takes the folder's lock; exit 2 naming the holder when a live process has it. */
export function takeMatrixLock(dir: string, what: "matrix" | "comparison" = "matrix"): Lock {
  return takeLock(join(dir, what === "matrix" ? LOCK_FILE : COMPARE_LOCK_FILE), `${what} folder ${dir}`, {
    heldError: (h, by) =>
      by === "holder"
        ? new UsageError(`${dir} is being run by another ${what} (pid ${h.pid}): wait for it to end, or stop it with kill -INT ${h.pid}`)
        : new UsageError(
            `a run-test for ${dir} (pid ${h.child_pid}), started by a ${what} that is gone, is still running: ` +
              `wait for it to end (or stop it with kill -INT ${h.child_pid}), then resume`,
          ),
  });
}
