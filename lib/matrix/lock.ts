// One matrix process per matrix folder: matrix.lock (a lock of lib/core/lock.ts)
// names the process running it and the run-test it has started, so that
// --resume refuses while either is still alive (a matrix killed with SIGKILL
// leaves its run-test running).
import { join } from "node:path";
import { UsageError } from "../core/errors.ts";
import { takeLock, type Lock } from "../core/lock.ts";

export const LOCK_FILE = "matrix.lock";

/** Takes the folder's lock; exit 2 naming the holder when a live process has it. */
export function takeMatrixLock(dir: string): Lock {
  return takeLock(join(dir, LOCK_FILE), `matrix folder ${dir}`, {
    heldError: (h, by) =>
      by === "holder"
        ? new UsageError(`${dir} is being run by another matrix (pid ${h.pid}): wait for it to end, or stop it with kill -INT ${h.pid}`)
        : new UsageError(
            `a run-test for ${dir} (pid ${h.child_pid}), started by a matrix that is gone, is still running: ` +
              `wait for it to end (or stop it with kill -INT ${h.child_pid}), then resume`,
          ),
  });
}
