// One VM test's folders and run-test arguments, shared by the qemu and the
// real-Vagrant tests.
import { expect } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { Ran, Running } from "./run.ts";

export interface VmCase {
  results: string;
  work: string;
  /** TMPDIR of the run: the ssh control folder goes here. */
  tmp: string;
}

export function newVmCase(root: string): VmCase {
  const base = mkdtempSync(join(root, "case-"));
  const c = { results: join(base, "results"), work: join(base, "work"), tmp: join(base, "tmp") };
  mkdirSync(c.work);
  mkdirSync(c.tmp);
  return c;
}

/** run-test's arguments for `backend` with the case's folders, the test files and the binary. */
export function vmRunArgs(backend: string, c: VmCase, files: string, picoshare: string, ...extra: string[]): string[] {
  return ["--backend", backend, "--test-files", files, "--results-dir", c.results, "--work-dir", c.work, "--picoshare", picoshare, ...extra];
}

/** The result file whose path run-test printed. */
export function readResult(ran: Ran) {
  return JSON.parse(readFileSync(ran.stdout.trim(), "utf8"));
}

/** Ctrl-C to a running run-test: exit 130, no result path printed, no result file written. */
export async function interruptRun(run: Running, c: VmCase): Promise<Ran> {
  process.kill(run.pid, "SIGINT");
  const ran = await run.done;
  expect(ran.code).toBe(130);
  expect(ran.stderr).toContain("Caught SIGINT");
  expect(ran.stdout).toBe("");
  expect(existsSync(c.results) ? readdirSync(c.results).filter((n) => n.endsWith(".json")) : []).toEqual([]);
  return ran;
}
