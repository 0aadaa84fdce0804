// The harness's process model, in one module: every program the harness and
// its tests run is started here, nowhere else.
// - run() / command(): a command that ends on its own, output captured, with
//   input, a timeout and an abort signal. Built on zx's `$` (which quotes
//   every argument).
// - start(): a long-lived process whose output goes to a file or is kept
//   (PicoShare, qemu, an ssh master, a build step, a run-test child), which
//   zx does not cover.
// Each runs in a process group of its own (unless asked not to), so that it
// and whatever it starts are ended together, by id, never by name.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { $ } from "zx";
import { onCleanup } from "./cleanup.ts";

/** Quotes a string for a POSIX shell. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** How a process ended: its exit code, or the signal that ended it. */
export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

export interface RunResult extends ExitInfo {
  stdout: string;
  /** The last 32-64 KiB of stderr. */
  stderr: string;
  seconds: number;
  /** Why the harness stopped it ("timed out after N ms", "aborted", ...); null when it ended by itself. */
  stopped: string | null;
}

export interface RunOptions {
  cwd?: string;
  /** Variables on top of this process's environment (all of it with `cleanEnv`). */
  env?: Record<string, string | undefined>;
  /** `env` is the whole environment: nothing is inherited. */
  cleanEnv?: boolean;
  input?: string | Uint8Array;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Each piece of stdout as it arrives. */
  onStdout?: (chunk: string) => void;
  /** Each piece of stderr as it arrives. */
  onStderr?: (chunk: string) => void;
  /** Once it has ended, SIGKILL whatever it left in its process group. */
  endGroupAtExit?: boolean;
  /** Keep stdout for the result (default true; false for a stream that onStdout consumes). */
  keepStdout?: boolean;
  /** End it when the script's cleanup trap runs (e.g. Ctrl-C); the text names it in the trap. */
  stopOnCleanup?: string;
  /** ms between SIGTERM and SIGKILL when it is stopped (default 2000). */
  graceMs?: number;
  /** Its own process group (default true); false leaves it in this one, where a terminal's Ctrl-C reaches it too. */
  group?: boolean;
}

export interface Command {
  done: Promise<RunResult>;
  /** Its pid (the program's own: the shell execs it); undefined until it has started. */
  readonly pid: number | undefined;
  /** Whether it has not ended yet. */
  running(): boolean;
  /** Ends it (its group): SIGTERM, then SIGKILL after the grace time. */
  stop(reason?: string): void;
}

const STDERR_KEEP = 32768;

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

function signalProcess(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Starts a command that ends on its own; see run(). */
export function command(argv: string[], opts: RunOptions = {}): Command {
  const t0 = performance.now();
  const p = $({
    cwd: opts.cwd,
    env: environment(opts),
    input: typeof opts.input === "string" || opts.input === undefined ? opts.input : Buffer.from(opts.input),
    quiet: true,
    nothrow: true,
    detached: opts.group !== false,
    // No input: stdin is /dev/null (an open pipe would keep a reader such as ssh waiting).
    stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    // sh, not zx's default bash: bash reads ~/.bashrc when its stdin is a
    // socket (Bun's pipes are) and SHLVL is unset, as in a clean environment.
    // (and so POSIX quoting: zx's own uses bash's $'...').
    shell: "/bin/sh",
    prefix: "",
    postfix: "",
    quote: shq,
  })`exec ${argv}`;
  let stopped: string | null = null;
  let ended = false;
  const grace = opts.graceMs ?? 2000;
  const stop = (reason = "stopped") => {
    if (ended) return;
    stopped ??= reason;
    const pid = p.pid;
    if (pid === undefined) return;
    const signal = (sig: NodeJS.Signals) => (opts.group === false ? signalProcess(pid, sig) : signalGroup(pid, sig));
    signal("SIGTERM");
    setTimeout(() => {
      if (!ended) signal("SIGKILL");
    }, grace).unref();
  };
  if (opts.onStdout) {
    const decoder = new StringDecoder("utf8");
    const onStdout = opts.onStdout;
    p.stdout.on("data", (d: Buffer) => onStdout(decoder.write(d)));
  }
  if (opts.onStderr) {
    const decoder = new StringDecoder("utf8");
    const onStderr = opts.onStderr;
    p.stderr.on("data", (d: Buffer) => onStderr(decoder.write(d)));
  }
  const timer = opts.timeoutMs ? setTimeout(() => stop(`timed out after ${opts.timeoutMs} ms`), opts.timeoutMs) : null;
  const onAbort = () => stop("aborted");
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  if (opts.signal?.aborted) queueMicrotask(onAbort);
  const forget = opts.stopOnCleanup ? onCleanup(`stop ${opts.stopOnCleanup}`, () => stop("interrupted")) : () => {};
  const done = (async (): Promise<RunResult> => {
    const out = await p;
    ended = true;
    if (opts.endGroupAtExit && opts.group !== false && p.pid !== undefined) signalGroup(p.pid, "SIGKILL");
    if (timer) clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
    forget();
    const stderr = out.stderr;
    return {
      code: out.exitCode,
      signal: out.signal,
      stdout: opts.keepStdout === false ? "" : out.stdout,
      stderr: stderr.length > 2 * STDERR_KEEP ? stderr.slice(-STDERR_KEEP) : stderr,
      seconds: (performance.now() - t0) / 1000,
      stopped,
    };
  })();
  return {
    done,
    get pid() {
      return p.pid;
    },
    running: () => !ended,
    stop,
  };
}

/** Runs a command to its end and returns its output; never throws for a non-zero exit. */
export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  return command(argv, opts).done;
}

/** The same, blocking: for short queries in code that cannot wait (a test's host snapshot). */
export function runSync(
  argv: string[],
  opts: { cwd?: string; env?: Record<string, string>; input?: string; /** Descriptors of this process passed on as 3, 4, ... */ fds?: number[] } = {},
): ExitInfo & { stdout: string; stderr: string } {
  const r = spawnSync(argv[0], argv.slice(1), {
    cwd: opts.cwd,
    env: environment(opts),
    input: opts.input,
    encoding: "utf8",
    stdio: ["pipe", "pipe", "pipe", ...(opts.fds ?? [])],
  });
  return { code: r.error ? 127 : r.status, signal: r.signal, stdout: r.stdout ?? "", stderr: r.stderr ?? (r.error ? String(r.error) : "") };
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
