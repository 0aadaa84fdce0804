// What the harness leaves in the cgroup tree and the process table: the
// tests check that it is nothing.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { processRuns } from "../../lib/core/proc.ts";

/** The harness's own memory cgroup folder (v1 here), as the local backend finds it. */
export function ownMemoryCgroup(): string {
  const line = readFileSync("/proc/self/cgroup", "utf8")
    .split("\n")
    .find((l) => l.split(":")[1]?.split(",").includes("memory"));
  if (!line) throw new Error("no v1 memory cgroup");
  return join("/sys/fs/cgroup/memory", line.split(":")[2]);
}

/** Test cgroups made by a harness process with this pid (or by any, when pid is omitted). */
export function testCgroups(pid?: number): string[] {
  const dir = ownMemoryCgroup();
  const prefix = pid === undefined ? "picoshare-perf-" : `picoshare-perf-${pid}-`;
  return readdirSync(dir)
    .filter((n) => n.startsWith(prefix))
    .map((n) => join(dir, n));
}

export function cgroupPids(path: string): number[] {
  if (!existsSync(path)) return [];
  return readFileSync(join(path, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
}

/** Whether the process runs (a zombie has ended). */
export const alive = (pid: number): boolean => processRuns(pid);
