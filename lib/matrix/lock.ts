// One matrix process per matrix folder: matrix.lock names the process running
// it and the run-test it has started, so that --resume refuses while either
// is still alive (a matrix killed with SIGKILL leaves its run-test running).
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../core/errors.ts";
import { writeFileAtomic } from "../core/files.ts";

export const LOCK_FILE = "matrix.lock";

interface LockInfo {
  pid: number;
  child_pid: number | null;
}

/** Whether `pid` is alive and its command line mentions `marker` (a reused pid is not mistaken for it). */
function runs(pid: number | null, marker: string): boolean {
  if (!pid) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(marker);
  } catch {
    return false;
  }
}

export class MatrixLock {
  private released = false;
  private constructor(
    private readonly path: string,
    private readonly info: LockInfo,
  ) {}

  /** Takes the folder's lock; exit 2 naming the holder when a live process has it. */
  static acquire(dir: string): MatrixLock {
    const path = join(dir, LOCK_FILE);
    const info: LockInfo = { pid: process.pid, child_pid: null };
    for (let attempt = 0; ; attempt++) {
      try {
        writeFileSync(path, JSON.stringify(info), { flag: "wx", mode: 0o644 });
        return new MatrixLock(path, info);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw err;
      }
      let held: LockInfo | null = null;
      try {
        held = JSON.parse(readFileSync(path, "utf8")) as LockInfo;
      } catch {
        // unreadable: left half-written by a crash, so stale
      }
      if (held && runs(held.pid, "run-test-matrix")) {
        throw new UsageError(
          `${dir} is being run by another matrix (pid ${held.pid}): wait for it to end, or stop it with kill -INT ${held.pid}`,
        );
      }
      if (held && runs(held.child_pid, "run-test")) {
        throw new UsageError(
          `a run-test for ${dir} (pid ${held.child_pid}), started by a matrix that is gone, is still running: ` +
            `wait for it to end (or stop it with kill -INT ${held.child_pid}), then resume`,
        );
      }
      rmSync(path, { force: true });
    }
  }

  /** Notes the run-test now running (or none). */
  setChild(pid: number | null): void {
    if (this.released) return;
    this.info.child_pid = pid;
    writeFileAtomic(this.path, JSON.stringify(this.info));
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    rmSync(this.path, { force: true });
  }
}
