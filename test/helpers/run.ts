// Running the project's scripts as real processes, as a user would.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "../../lib/core/paths.ts";

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
  const argv = [...wrap, process.execPath, join(ROOT, "scripts", `${name}.ts`), ...args];
  const child = spawn(argv[0], argv.slice(1), {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const done = new Promise<Ran>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { pid: child.pid!, stderr: () => stderr, done };
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
