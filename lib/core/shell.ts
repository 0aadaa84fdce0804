// The project's `$`: zx's, configured once, for every command that ends by
// itself (go, git, nginx -t, qemu-img, cpio, ssh, scp, vagrant, perf ...):
//   const out = await $`git -C ${dir} rev-parse HEAD`;
//   const r = await $({ cwd, timeout: 10_000 })`nginx -t -c ${conf}`.nothrow();
// Long-lived processes whose output goes to a file stay on exec.ts's start().
// The settings, and why:
// - /bin/sh, not bash: bash reads ~/.bashrc when its stdin is a socket (Bun's
//   pipes are) and SHLVL is unset, as in a clean environment.
// - quoting: shq (POSIX single quotes), as sh reads them (zx's own quoting
//   uses bash's $'...'). Each ${value} reaches the program as one argument
//   however many spaces, quotes or $ it holds; an array as one per element.
// - "exec " before each command: a template is one command, and the shell
//   replaces itself by it, so its pid and the signal that ended it are the
//   program's own.
// - quiet: the log says what the harness does in its own words; a command's
//   output is kept (ProcessOutput) and named in errors where it matters.
// - stdin is /dev/null unless `input` is given: an open pipe would keep a
//   reader such as ssh waiting.
// - a process group of its own (unless `group: false`): a terminal's Ctrl-C
//   reaches the harness alone, which ends the command's group, and with it
//   whatever the command started, by id, never by name.
// - `timeout` (ms, per call; none by default, as a build may take minutes),
//   the abort `signal` and the trap (lib/core/cleanup.ts: an interrupt runs
//   the cleanups) each end the group: SIGTERM, then SIGKILL after `grace` ms.
//   Why it was stopped stays readable with stopReason().
// - a non-zero exit throws (zx's default); a caller that reads exitCode asks
//   for `nothrow`.
// - env: variables on top of this process's environment, or (cleanEnv) the
//   whole environment; cwd per call.
import { $ as zx, type Options, type ProcessOutput, type ProcessPromise } from "zx";
import { onCleanup } from "./cleanup.ts";
import { environment, shq, signalGroup } from "./exec.ts";

export type { ProcessOutput, ProcessPromise };

export interface ShellOptions {
  cwd?: string;
  /** Variables on top of this process's environment (all of it with `cleanEnv`); undefined removes one. */
  env?: Record<string, string | undefined>;
  /** `env` is the whole environment: nothing is inherited. */
  cleanEnv?: boolean;
  input?: string | Uint8Array;
  /** ms until the command's group is stopped. */
  timeout?: number;
  signal?: AbortSignal;
  /** Resolve whatever the exit status (the caller reads exitCode). */
  nothrow?: boolean;
  /** ms between SIGTERM and SIGKILL when it is stopped (default 2000). */
  grace?: number;
  /** Its own process group (default true); false leaves it in this one, where a terminal's Ctrl-C reaches it too (ssh, as typed at a terminal). */
  group?: boolean;
  /** Once it has ended, SIGKILL whatever it left in its process group. */
  endGroupAtExit?: boolean;
  /** Descriptors of this process passed on as 3, 4, ... (synchronous calls). */
  fds?: number[];
}

export interface Shell {
  (pieces: TemplateStringsArray, ...args: unknown[]): ProcessPromise;
  /** The same `$` with these options on top (they replace, not merge, the ones given before). */
  (opts: ShellOptions): Shell;
  /** Blocking: for short queries in code that cannot wait; no timeout, signal or trap. */
  sync(pieces: TemplateStringsArray, ...args: unknown[]): ProcessOutput;
}

const DEFAULT_GRACE_MS = 2000;
const reasons = new WeakMap<ProcessOutput, string>();

/** Why the harness stopped the command ("timed out after N ms", "aborted", "interrupted"); null when it ended by itself. */
export function stopReason(out: ProcessOutput): string | null {
  return reasons.get(out) ?? null;
}

function settings(o: ShellOptions, sync: boolean): Partial<Options> {
  return {
    shell: "/bin/sh",
    prefix: "exec ",
    postfix: "",
    quote: shq,
    quiet: true,
    verbose: false,
    nothrow: o.nothrow ?? false,
    cwd: o.cwd,
    env: environment(o),
    input: o.input === undefined || typeof o.input === "string" ? o.input : Buffer.from(o.input),
    detached: o.group !== false,
    stdio: [o.input === undefined ? "ignore" : "pipe", "pipe", "pipe", ...(o.fds ?? [])],
    sync,
  };
}

function launch(o: ShellOptions, pieces: TemplateStringsArray, args: unknown[]): ProcessPromise {
  const p = zx(settings(o, false))(pieces, ...args) as ProcessPromise;
  const pid = p.pid;
  let stopped: string | null = null;
  let ended = false;
  const grace = o.grace ?? DEFAULT_GRACE_MS;
  const signal = (sig: NodeJS.Signals) => {
    if (pid === undefined) return;
    if (o.group !== false) signalGroup(pid, sig);
    else {
      try {
        process.kill(pid, sig);
      } catch {}
    }
  };
  const stop = (reason: string) => {
    if (ended) return;
    stopped ??= reason;
    signal("SIGTERM");
    setTimeout(() => {
      if (!ended) signal("SIGKILL");
    }, grace).unref();
  };
  const timer = o.timeout ? setTimeout(() => stop(`timed out after ${o.timeout} ms`), o.timeout) : null;
  const onAbort = () => stop("aborted");
  o.signal?.addEventListener("abort", onAbort, { once: true });
  if (o.signal?.aborted) queueMicrotask(onAbort);
  // On an interrupt the trap stops it and waits (a bounded time) for it to go.
  const forget = onCleanup(`stop ${p.cmd.slice(0, 80)}`, async () => {
    stop("interrupted");
    await Promise.race([p.catch(() => {}), new Promise((r) => setTimeout(r, grace + 1000).unref())]);
  });
  const settle = (out: ProcessOutput) => {
    ended = true;
    if (o.endGroupAtExit && o.group !== false && pid !== undefined) signalGroup(pid, "SIGKILL");
    if (timer) clearTimeout(timer);
    o.signal?.removeEventListener("abort", onAbort);
    forget();
    if (stopped) reasons.set(out, stopped);
  };
  // Registered first, so it has run before any caller's await resumes.
  p.then(settle, settle);
  return p;
}

function shell(o: ShellOptions): Shell {
  const fn = (first: TemplateStringsArray | ShellOptions, ...args: unknown[]) =>
    Array.isArray(first) ? launch(o, first as TemplateStringsArray, args) : shell({ ...o, ...(first as ShellOptions) });
  return Object.assign(fn, {
    sync: (pieces: TemplateStringsArray, ...args: unknown[]) => zx(settings(o, true))(pieces, ...args) as unknown as ProcessOutput,
  }) as Shell;
}

/** The one configured zx `$` of the project (see the header for its settings). */
export const $: Shell = shell({});
