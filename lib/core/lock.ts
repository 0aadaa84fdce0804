// A lock file naming its holder: created atomically (O_EXCL) with the holder's
// pid, the process's start time (so that a reused pid is not mistaken for the
// holder) and host name. A lock whose holder is gone is stale and taken over;
// a live holder is waited for, with a bound, then reported by pid.
import { linkSync, openSync, closeSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { log } from "./log.ts";

export interface LockHolder {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot), "" where unknown. */
  start: string;
  host: string;
  since: string;
  command: string;
}

export interface Lock {
  readonly path: string;
  release(): void;
}

/** Thrown when the lock stayed held for the whole wait. */
export class LockHeldError extends Error {
  constructor(
    message: string,
    readonly holder: LockHolder | null,
  ) {
    super(message);
    this.name = "LockHeldError";
  }
}

export function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "";
  } catch {
    return "";
  }
}

function readHolder(path: string): LockHolder | null | "missing" {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    throw err;
  }
  try {
    const h = JSON.parse(text) as LockHolder;
    return Number.isInteger(h.pid) ? h : null;
  } catch {
    return null;
  }
}

/** Whether the holder still runs: same host, pid alive and started at the recorded time. */
export function holderAlive(h: LockHolder): boolean {
  if (h.host !== hostname()) return true; // cannot tell: assume it runs
  const start = processStart(h.pid);
  if (start === "") return false;
  if (!/^State:\s+[^Z]/m.test(safeRead(`/proc/${h.pid}/status`))) return false;
  return h.start === "" || h.start === start;
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

export function describeHolder(h: LockHolder): string {
  return `pid ${h.pid}${h.host !== hostname() ? ` on ${h.host}` : ""}, since ${h.since}: ${h.command}`;
}

/** Whether the holder is this process's parent, grandparent... (e.g. the matrix that started this run-test). */
export function holderIsAncestor(h: LockHolder): boolean {
  if (h.host !== hostname()) return false;
  let pid = process.ppid;
  for (let depth = 0; pid > 1 && depth < 64; depth++) {
    if (pid === h.pid) return h.start === "" || processStart(pid) === h.start;
    const stat = safeRead(`/proc/${pid}/stat`);
    if (!stat) return false;
    pid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  }
  return false;
}

function tryCreate(path: string, me: LockHolder): boolean {
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
  try {
    writeSync(fd, `${JSON.stringify(me)}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Removes a stale lock without racing another taker: the file is renamed
 * aside first, and put back if it turns out not to be the stale one.
 */
function removeStale(path: string, stale: string): void {
  const aside = `${path}.stale-${process.pid}`;
  try {
    renameSync(path, aside);
  } catch {
    return; // someone else took it meanwhile
  }
  if (safeRead(aside) !== stale) {
    try {
      linkSync(aside, path);
    } catch {}
  }
  rmSync(aside, { force: true });
}

/**
 * Takes the lock at `path`, waiting up to `waitMs` for a live holder.
 * `what` names the guarded thing in messages. With `shareWithAncestors`, a
 * lock held by an ancestor of this process counts as this process's own
 * (nothing is written, and release leaves it to the ancestor).
 */
export async function acquireLock(path: string, what: string, waitMs: number, opts: { shareWithAncestors?: boolean } = {}): Promise<Lock> {
  const me: LockHolder = {
    pid: process.pid,
    start: processStart(process.pid),
    host: hostname(),
    since: new Date().toISOString(),
    command: process.argv.slice(1).join(" ").slice(0, 300),
  };
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    if (tryCreate(path, me)) break;
    const text = safeRead(path);
    const holder = readHolder(path);
    if (holder === "missing") continue;
    if (holder === null || !holderAlive(holder)) {
      // An unreadable lock may be one being written this instant: give it a moment.
      if (holder === null) await Bun.sleep(100);
      if (safeRead(path) === text) {
        log(`Removing a stale lock on ${what} (${holder ? `pid ${holder.pid} is gone or is another process now` : "unreadable"}): ${path}`);
        removeStale(path, text);
      }
      continue;
    }
    // Held by this very process (taken earlier, e.g. in a preflight) or, when allowed, by its ancestor.
    if ((holder.pid === me.pid && holder.start === me.start && holder.host === me.host) || (opts.shareWithAncestors && holderIsAncestor(holder))) {
      return { path, release() {} };
    }
    if (Date.now() >= deadline) {
      throw new LockHeldError(
        `${what} is in use by another harness (${describeHolder(holder)}); ` +
          `wait for it to finish, or give this run another folder (lock: ${path})`,
        holder,
      );
    }
    if (!told) {
      log(`${what} is in use by another harness (pid ${holder.pid}): waiting up to ${+(waitMs / 1000).toFixed(1)} s`);
      told = true;
    }
    await Bun.sleep(Math.min(250, Math.max(10, deadline - Date.now())));
  }
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      const h = readHolder(path);
      if (h && h !== "missing" && h.pid === me.pid && h.start === me.start) rmSync(path, { force: true });
    },
  };
}
