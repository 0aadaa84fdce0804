// The harness's locks, in one module.
// - A lock file naming its holder (acquireLock): created atomically (O_EXCL)
//   with the holder's pid, the process's start time (so that a reused pid is
//   not mistaken for the holder) and host name, and optionally the child it
//   runs (a matrix's current run-test, which outlives a matrix killed with
//   SIGKILL). A lock whose holder (and child) are gone is stale and taken
//   over; a live holder is waited for, with a bound, then reported by pid.
// - A build lock (flockWait / tryFlock): flock(2) on a file, for work whose
//   lock must go when its process dies however it dies, with nothing to
//   clean up. util-linux's flock takes it on a descriptor of this process.
import { linkSync, openSync, closeSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { $ } from "./shell.ts";
import { parentPid, processRuns, processStart } from "./proc.ts";
import { readText, writeFileAtomic } from "./files.ts";
import { log } from "./log.ts";

export interface LockHolder {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot), "" where unknown. */
  start: string;
  host: string;
  since: string;
  command: string;
  /** The child the holder runs now (see Lock.setChild), with its start time. */
  child_pid?: number | null;
  child_start?: string;
}

export interface Lock {
  readonly path: string;
  /** Records the child the holder runs now (or none), so that the lock stays held while it lives. */
  setChild(pid: number | null): void;
  release(): void;
}

/** Why a lock is held: by its holder, or only by the child of a holder that is gone. */
export type HeldBy = "holder" | "child";

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
    // Files written before start and host were recorded: this host, start unknown.
    return Number.isInteger(h.pid) ? { ...h, start: h.start ?? "", host: h.host ?? hostname() } : null;
  } catch {
    return null;
  }
}

/** Whether the holder still runs: same host, pid alive and started at the recorded time. */
export function holderAlive(h: LockHolder): boolean {
  if (h.host !== hostname()) return true; // cannot tell: assume it runs
  return processRuns(h.pid, h.start);
}

/** What keeps a lock held: its holder, the child of a holder that is gone, or nothing (stale). */
export function heldBy(h: LockHolder): HeldBy | null {
  if (holderAlive(h)) return "holder";
  if (h.child_pid && h.host === hostname() && processRuns(h.child_pid, h.child_start ?? "")) return "child";
  return null;
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
    pid = parentPid(pid);
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
  if (readText(aside) !== stale) {
    try {
      linkSync(aside, path);
    } catch {}
  }
  rmSync(aside, { force: true });
}

export interface LockOptions {
  /** A lock held by an ancestor of this process counts as this process's own (nothing is written, and release leaves it to the ancestor). */
  shareWithAncestors?: boolean;
  /** The error thrown when the lock stays held (default: LockHeldError). */
  heldError?: (holder: LockHolder, by: HeldBy) => Error;
}

function holderRecord(): LockHolder {
  return {
    pid: process.pid,
    start: processStart(process.pid),
    host: hostname(),
    since: new Date().toISOString(),
    command: process.argv.slice(1).join(" ").slice(0, 300),
  };
}

function held(path: string, me: LockHolder): Lock {
  let released = false;
  return {
    path,
    setChild(pid) {
      if (released) return;
      me.child_pid = pid;
      me.child_start = pid === null ? "" : processStart(pid);
      writeFileAtomic(path, `${JSON.stringify(me)}\n`);
    },
    release() {
      if (released) return;
      released = true;
      const h = readHolder(path);
      if (h && h !== "missing" && h.pid === me.pid && h.start === me.start) rmSync(path, { force: true });
    },
  };
}

/** One attempt: the lock, or its live holder. A stale lock is removed and the attempt repeated. */
function attempt(path: string, what: string, me: LockHolder, opts: LockOptions): Lock | { holder: LockHolder; by: HeldBy } {
  for (;;) {
    if (tryCreate(path, me)) return held(path, me);
    const text = readText(path);
    const holder = readHolder(path);
    if (holder === "missing") continue;
    const by = holder === null ? null : heldBy(holder);
    if (holder === null || by === null) {
      // An unreadable lock may be one being written this instant: give it a moment.
      if (holder === null) Bun.sleepSync(100);
      if (readText(path) === text) {
        log(`Removing a stale lock on ${what} (${holder ? `pid ${holder.pid} is gone or is another process now` : "unreadable"}): ${path}`);
        removeStale(path, text);
      }
      continue;
    }
    // Held by this very process (taken earlier, e.g. in a preflight) or, when allowed, by its ancestor.
    if ((holder.pid === me.pid && holder.start === me.start && holder.host === me.host) || (opts.shareWithAncestors && holderIsAncestor(holder))) {
      return { path, setChild() {}, release() {} };
    }
    return { holder, by };
  }
}

function heldFailure(path: string, what: string, holder: LockHolder, by: HeldBy, opts: LockOptions): Error {
  if (opts.heldError) return opts.heldError(holder, by);
  return new LockHeldError(
    `${what} is in use by another harness (${describeHolder(holder)}); ` + `wait for it to finish, or give this run another folder (lock: ${path})`,
    holder,
  );
}

/** Takes the lock at `path` now, or throws naming its live holder. `what` names the guarded thing in messages. */
export function takeLock(path: string, what: string, opts: LockOptions = {}): Lock {
  const r = attempt(path, what, holderRecord(), opts);
  if ("release" in r) return r;
  throw heldFailure(path, what, r.holder, r.by, opts);
}

/** Takes the lock at `path`, waiting up to `waitMs` for a live holder. */
export async function acquireLock(path: string, what: string, waitMs: number, opts: LockOptions = {}): Promise<Lock> {
  const me = holderRecord();
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    const r = attempt(path, what, me, opts);
    if ("release" in r) return r;
    if (Date.now() >= deadline) throw heldFailure(path, what, r.holder, r.by, opts);
    if (!told) {
      log(`${what} is in use by another harness (pid ${r.holder.pid}): waiting up to ${+(waitMs / 1000).toFixed(1)} s`);
      told = true;
    }
    await Bun.sleep(Math.min(250, Math.max(10, deadline - Date.now())));
  }
}

// ---------------------------------------------------------------- build lock

/** Tries flock(2) on an open descriptor, through util-linux's flock. */
function flockFd(fd: number): boolean {
  const r = $({ fds: [fd], nothrow: true }).sync`flock --exclusive --nonblock 3`;
  if (r.exitCode === 0) return true;
  if (r.exitCode === 1) return false;
  throw new Error(`flock failed (${r.signal ?? `exit ${r.exitCode}`}): ${r.stderr.trim() || "is util-linux installed?"}`);
}

/** Takes the flock on `path` only if nobody holds it: its release, or null when someone does. */
export function tryFlock(path: string): (() => void) | null {
  const fd = openSync(path, "a", 0o644);
  try {
    if (flockFd(fd)) return () => closeSync(fd);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  closeSync(fd);
  return null;
}

/**
 * Takes the flock on `path`, waiting while another process holds it (`waiting`
 * is logged once); `signal` ends the wait. The kernel drops the lock when
 * this process ends, however it ends.
 */
export async function flockWait(path: string, waiting: string, signal?: AbortSignal): Promise<() => void> {
  let said = false;
  for (;;) {
    const release = tryFlock(path);
    if (release) return release;
    if (!said) {
      log(waiting);
      said = true;
    }
    if (signal?.aborted) throw signal.reason;
    await Bun.sleep(500);
  }
}
