// Where the project keeps things, relative to its own folder so that the
// scripts work from any current directory.
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "..", "..");
export const TEST_FILES_DIR = join(ROOT, "test-files");
export const RESULTS_DIR = join(ROOT, "results");
export const CACHE_DIR = process.env.PERF_CACHE_DIR ?? join(ROOT, ".cache");

/**
 * The Bun that runs this process. Whatever starts Bun again (one of the
 * scripts, a benchmark's client) starts this one, not whichever `bun` PATH
 * finds first, if any: run as ./node_modules/.bin/bun, PATH may have none.
 */
export const BUN = process.execPath;

/** The command line that runs one of the project's scripts with this Bun. */
export function scriptArgv(script: string, args: string[] = []): string[] {
  return [BUN, join(ROOT, "scripts", `${script}.ts`), ...args];
}

/** How a user runs one of the project's scripts, for messages that say what to do. */
export function command(script: string, args = ""): string {
  return `bun scripts/${script}.ts${args ? ` ${args}` : ""}`;
}

/** A path as users like to read it: ./relative when under the current folder, else absolute. */
export function displayPath(path: string): string {
  const abs = resolve(path);
  const cwd = process.cwd();
  if (abs === cwd) return ".";
  if (abs.startsWith(`${cwd}/`)) return `./${abs.slice(cwd.length + 1)}`;
  return abs;
}
