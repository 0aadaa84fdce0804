// What /proc says of a process: whether it runs (a reused pid is told apart
// by its start time), when it started, its peak resident set.
import { readText } from "./files.ts";

/** Field 22 of /proc/<pid>/stat (clock ticks after boot), "" when the process is gone. */
export function processStart(pid: number): string {
  const stat = readText(`/proc/${pid}/stat`);
  return stat ? (stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "") : "";
}

/** The parent's pid, or 0 when the process is gone. */
export function parentPid(pid: number): number {
  const stat = readText(`/proc/${pid}/stat`);
  return stat ? Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) : 0;
}

/** Whether a process runs: it exists, is not a zombie and, when `recorded` is known, started then. */
export function processRuns(pid: number, recorded = ""): boolean {
  const start = processStart(pid);
  if (start === "") return false;
  if (!/^State:\s+[^Z]/m.test(readText(`/proc/${pid}/status`))) return false;
  return recorded === "" || recorded === start;
}

/** A process's peak resident set (VmHWM) in bytes, or null once it is gone. */
export function peakRss(pid: number): number | null {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readText(`/proc/${pid}/status`));
  return m ? Number(m[1]) * 1024 : null;
}
