// What could explain a change that is not PicoShare's, recorded with every
// result: the harness's own version (its git commit, dirty when modified),
// and the Go runtime settings PicoShare runs with. GOGC, GOMEMLIMIT, GOMAXPROCS and
// GODEBUG are passed from the harness's environment to PicoShare on every
// backend (and nothing else of it): set them to test their effect. The
// result records them as PicoShare's process received them (each backend
// reads its /proc/PID/environ), not as the harness meant to give them.
import { $ } from "../core/shell.ts";
import { ROOT } from "../core/paths.ts";
import { parseEnviron } from "../core/proc.ts";

/** The Go runtime variables PicoShare gets from the harness's environment. */
export const GO_RUNTIME_VARS = ["GOGC", "GOMEMLIMIT", "GODEBUG", "GOMAXPROCS"] as const;
export type GoRuntimeEnv = Record<(typeof GO_RUNTIME_VARS)[number], string | null>;

/** GOGC / GOMEMLIMIT / GODEBUG / GOMAXPROCS in a set of variables (by default the harness's own), null when unset. */
export function goRuntimeEnv(env: NodeJS.ProcessEnv = process.env): GoRuntimeEnv {
  const out = {} as GoRuntimeEnv;
  for (const k of GO_RUNTIME_VARS) out[k] = env[k] === undefined || env[k] === "" ? null : env[k]!;
  return out;
}

/** The Go runtime variables in a process's /proc/PID/environ text: what it really runs with. */
export function goRuntimeEnvOf(environ: string): GoRuntimeEnv {
  return goRuntimeEnv(parseEnviron(environ));
}

/** The variables that are set, for a child's environment. */
export function goRuntimeVarsSet(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return Object.fromEntries(Object.entries(goRuntimeEnv(env)).filter((e): e is [string, string] => e[1] !== null));
}

export interface HarnessVersion {
  /** The harness checkout's commit, or null outside git. */
  commit: string | null;
  /** true when its tracked files differ from that commit; null outside git. */
  dirty: boolean | null;
}

let harness: Promise<HarnessVersion> | null = null;

/** The harness's own version, read once per process. */
export function harnessVersion(): Promise<HarnessVersion> {
  harness ??= (async () => {
    const head = await $`git -C ${ROOT} rev-parse --verify --quiet HEAD`.nothrow();
    if (head.exitCode !== 0) return { commit: null, dirty: null };
    // Tracked files only: results/, test-files/ and .cache/ are the harness's output, not its code.
    const status = await $`git -C ${ROOT} status --porcelain --untracked-files=no`.nothrow();
    return { commit: head.stdout.trim(), dirty: status.exitCode === 0 ? status.stdout.trim() !== "" : null };
  })();
  return harness;
}
