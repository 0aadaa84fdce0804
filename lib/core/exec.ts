// The harness's long-lived processes, in one module: start() for a process
// whose output goes to a file or is kept (PicoShare, qemu, an ssh master, a
// build step, a run-test child), which zx does not cover; stopGroup() to end
// it. A command that ends by itself goes through lib/core/shell.ts's `$`.
// Each runs in a process group of its own (unless asked not to), so that it
// and whatever it starts are ended together, by id, never by name.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";

/** Quotes a string for a POSIX shell. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** How a process ended: its exit code, or the signal that ended it. */
export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

/** The environment a command gets: `env` on top of this process's (undefined removes a variable), or `env` alone with `cleanEnv`. */
export function environment(opts: { env?: Record<string, string | undefined>; cleanEnv?: boolean }): Record<string, string> {
  const merged = opts.cleanEnv ? { ...opts.env } : { ...process.env, ...opts.env };
  return Object.fromEntries(Object.entries(merged).filter((e): e is [string, string] => e[1] !== undefined));
}

/** Sends a signal to a process group; false when the group is gone. */
export function signalGroup(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Where a started process's output goes: nowhere, this process's own, kept in memory, a pipe the caller reads (child.stdout), or appended to a file. */
export type Sink = "ignore" | "inherit" | "capture" | "pipe" | { file: string; /** for a new file; default 0600 */ mode?: number };

export interface StartOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  cleanEnv?: boolean;
  input?: string;
  stdout?: Sink;
  /** Default: the same as stdout. */
  stderr?: Sink;
  /** Its own process group (default true); false keeps it in this one (a test that signals it as a terminal would). */
  group?: boolean;
}

export interface Started {
  child: ChildProcess;
  pid: number;
  exited: Promise<ExitInfo>;
  running(): boolean;
  /** What a "capture" sink has kept so far (all of it). */
  stdout(): string;
  stderr(): string;
}

/** Starts a long-lived process; end it with stopGroup() (or let it end). */
export function start(argv: string[], opts: StartOptions = {}): Started {
  const outSink = opts.stdout ?? "ignore";
  const errSink = opts.stderr ?? outSink;
  const fds: number[] = [];
  const open = (s: Sink): "ignore" | "inherit" | "pipe" | number => {
    if (typeof s === "object") {
      const fd = openSync(s.file, "a", s.mode ?? 0o600);
      fds.push(fd);
      return fd;
    }
    return s === "capture" ? "pipe" : s;
  };
  let child: ChildProcess;
  try {
    const out = open(outSink);
    const err = typeof errSink === "object" && typeof outSink === "object" && errSink.file === outSink.file ? out : open(errSink);
    child = spawn(argv[0], argv.slice(1), {
      cwd: opts.cwd,
      env: environment(opts),
      detached: opts.group !== false,
      stdio: [opts.input === undefined ? "ignore" : "pipe", out, err],
    });
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  let done = false;
  let stdout = "";
  let stderr = "";
  if (outSink === "capture") {
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (d: string) => (stdout += d));
  }
  if (errSink === "capture") {
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => (stderr += d));
  }
  if (opts.input !== undefined) {
    child.stdin!.on("error", () => {});
    child.stdin!.end(opts.input);
  }
  const exited = new Promise<ExitInfo>((resolve) => {
    // "close" waits for captured output to be read to its end.
    child.once(child.stdout || child.stderr ? "close" : "exit", (code: number | null, signal: string | null) => {
      done = true;
      resolve({ code, signal });
    });
    child.once("error", (e) => {
      done = true;
      stderr += String(e);
      resolve({ code: 127, signal: null });
    });
  });
  if (child.pid === undefined) throw new Error(`could not start ${argv[0]}`);
  return { child, pid: child.pid, exited, running: () => !done, stdout: () => stdout, stderr: () => stderr };
}

/**
 * Ends a started process's group: SIGTERM, then SIGKILL after `graceMs`
 * (PicoShare shuts down within 5 s of a SIGTERM); anything it left in its
 * group goes too.
 */
export async function stopGroup(started: Started, graceMs = 5000, sig: NodeJS.Signals = "SIGTERM"): Promise<ExitInfo> {
  if (started.running()) {
    signalGroup(started.pid, sig);
    const timer = setTimeout(() => signalGroup(started.pid, "SIGKILL"), graceMs);
    await started.exited;
    clearTimeout(timer);
  }
  signalGroup(started.pid, "SIGKILL");
  return started.exited;
}
