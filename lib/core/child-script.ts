// Runs one of the project's scripts as a child process in a process group of
// its own, so that exactly one signal reaches it: when this process is
// interrupted (a terminal's Ctrl-C reaches only this process's group), the
// child gets one SIGINT, cleans up as its trap does, and is waited for. Had it
// shared the terminal's group, it would get the terminal's SIGINT and a
// forwarded one (for the case where only this pid was signalled), and a second
// signal makes its trap exit without cleaning up. A child left running when
// this process dies without cleaning up (SIGKILL, SIGHUP) finishes its own
// test and exits.
import { interrupted, onCleanup } from "./cleanup.ts";
import { start } from "./exec.ts";
import { scriptArgv } from "./paths.ts";
export interface ChildOptions {
  /** Extra environment on top of this process's own. */
  env?: Record<string, string>;
  /** Append the child's stderr to this file; otherwise it shares this process's stderr. */
  stderrPath?: string;
  /** Capture stdout (returned); otherwise it shares this process's stdout. */
  captureStdout?: boolean;
  /** Stop the child (SIGTERM, then SIGKILL) if it runs longer than this. */
  deadlineMs?: number;
  /** Called once the child has started. */
  onStart?: (pid: number) => void;
}

export interface ChildRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  seconds: number;
  /** The deadline passed and the child was stopped. */
  timedOut: boolean;
}

/** How long a child may take to clean up once asked to stop, before it is killed. */
export const STOP_GRACE_MS = 60_000;

export async function runProjectScript(script: string, args: string[], opts: ChildOptions = {}): Promise<ChildRun> {
  if (interrupted()) throw new Error(`not starting ${script}: interrupted`);
  const t0 = performance.now();
  const child = start(scriptArgv(script, args), {
    cwd: process.cwd(),
    env: opts.env,
    stdout: opts.captureStdout ? "capture" : "inherit",
    stderr: opts.stderrPath ? { file: opts.stderrPath, mode: 0o644 } : "inherit",
  });
  opts.onStart?.(child.pid);
  let exit: { code: number | null; signal: string | null } | null = null;
  const done = child.exited.then((e) => {
    exit = e;
  });
  /** Asks the child to stop (SIGINT when interrupted, as a Ctrl-C would; SIGTERM at the deadline), then waits. */
  const stop = async (sig: "SIGINT" | "SIGTERM") => {
    if (exit) return;
    // The child alone, not its group: its own trap ends what it started.
    child.child.kill(sig);
    const timer = setTimeout(() => child.child.kill("SIGKILL"), STOP_GRACE_MS);
    await done;
    clearTimeout(timer);
  };
  const forget = onCleanup(`stop ${script} (pid ${child.pid})`, () => stop("SIGINT"));
  let timedOut = false;
  const deadline =
    opts.deadlineMs === undefined
      ? null
      : setTimeout(() => {
          timedOut = true;
          void stop("SIGTERM");
        }, opts.deadlineMs);
  await done;
  if (deadline) clearTimeout(deadline);
  forget();
  return {
    code: exit!.code,
    signal: exit!.signal,
    stdout: child.stdout(),
    seconds: (performance.now() - t0) / 1000,
    timedOut,
  };
}
