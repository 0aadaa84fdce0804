// Running the project's scripts as real processes, as a user would.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { start } from "../../lib/core/exec.ts";
import { ROOT, scriptArgv } from "../../lib/core/paths.ts";

export interface Ran {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  pid: number;
  /** stderr so far */
  stderr(): string;
  done: Promise<Ran>;
}

/**
 * Starts `bun scripts/NAME.ts args...` from the project folder; `wrap` goes
 * in front (a command that execs the rest, such as nsenter, so that the pid
 * is the script's own).
 */
export function startScript(name: string, args: string[], env: Record<string, string> = {}, wrap: string[] = []): Running {
  const argv = [...wrap, ...scriptArgv(name, args)];
  // In the test's own process group, as a command typed at a shell would be.
  const child = start(argv, { cwd: ROOT, env: { NO_COLOR: "1", ...env }, stdout: "capture", group: false });
  const done = child.exited.then(({ code, signal }): Ran => ({ code, signal, stdout: child.stdout(), stderr: child.stderr() }));
  return { pid: child.pid, stderr: () => child.stderr(), done };
}

export function runScript(name: string, args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return startScript(name, args, env).done;
}

type Maybe<T> = T | null | undefined | false;

/** Polls `check` (which may answer asynchronously) every 10 ms until it returns a value, or fails after `ms`. */
export async function waitFor<T>(what: string, check: () => Maybe<T> | Promise<Maybe<T>>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await check();
    if (v) return v;
    await Bun.sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Whether a test's upload is under way: Go's multipart spill file exists in
 * the TMPDIR of one of the test folders in `work` (beside them: the harness's
 * own folder of the test, which has no tmp).
 */
export function uploadStarted(work: string): boolean {
  return (existsSync(work) ? readdirSync(work) : []).some(
    (dir) => existsSync(join(work, dir, "tmp")) && readdirSync(join(work, dir, "tmp")).some((n) => n.startsWith("multipart-")),
  );
}
