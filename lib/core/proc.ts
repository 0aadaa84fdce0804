// What /proc says of a process: whether it runs (a reused pid is told apart
// by its start time), when it started, its peak resident set, the environment
// it was started with.
import { readFileSync, writeFileSync } from "node:fs";
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

/**
 * The environment a process was started with, as the kernel keeps it
 * (/proc/PID/environ: NAME=VALUE entries, each ended by a NUL); null when it
 * cannot be read (the process is gone, or is not ours) or is empty (a zombie).
 */
export function processEnviron(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8") || null;
  } catch {
    return null;
  }
}

/** /proc/PID/environ text (this host's, or a guest's read over ssh) as variables; the first of a repeated name wins, as getenv finds it. */
export function parseEnviron(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const entry of text.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq <= 0) continue;
    const name = entry.slice(0, eq);
    if (!Object.hasOwn(vars, name)) vars[name] = entry.slice(eq + 1);
  }
  return vars;
}

/** A process's peak resident set (VmHWM) in bytes, or null once it is gone. */
export function peakRss(pid: number): number | null {
  return vmHwmBytes(readText(`/proc/${pid}/status`));
}

/** The shell command that prints a process's VmHWM line, then resets the mark to its resident set now (a guest's, over ssh). */
export function resetPeakRssCommand(pid: number): string {
  return `grep '^VmHWM:' /proc/${pid}/status && echo 5 > /proc/${pid}/clear_refs`;
}

/**
 * A process's peak resident set (VmHWM) so far, in bytes, then the mark reset
 * to its resident set now (5 into /proc/PID/clear_refs), so that the next
 * reading is the peak from here on; null (nothing reset) when either fails.
 */
export function resetPeakRss(pid: number): number | null {
  const before = peakRss(pid);
  if (before === null) return null;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return before;
  } catch {
    return null;
  }
}

/** VmHWM (peak resident set) in bytes from /proc/PID/status text (this host's, or a guest's read over ssh). */
export function vmHwmBytes(status: string): number | null {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : null;
}

/** What the kernel counts for one process (all its threads, and its reaped children). */
export interface CounterReading {
  userSeconds: number;
  systemSeconds: number;
  minorFaults: number;
  majorFaults: number;
  readSyscalls: number;
  writeSyscalls: number;
  /** Bytes it caused to be read from storage (read_bytes: page-cache hits are not in it). */
  storageReadBytes: number;
  /** Bytes it caused to be written to storage, counted when it dirtied them (write_bytes). */
  storageWriteBytes: number;
  /** Of those, bytes of files truncated or deleted before writeback (cancelled_write_bytes): they never reached the disk. */
  cancelledWriteBytes: number;
}

/** A reading of a process on this host, with its start time (processStart): a reused pid is another process. */
export interface ProcessCounters extends CounterReading {
  start: string;
}

// /proc reports CPU time in USER_HZ ticks, 100 a second on every Linux ABI.
const USER_HZ = 100;

function ioField(text: string, key: string): number {
  const m = new RegExp(`^${key}: (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

/** /proc/PID/stat and /proc/PID/io of a process, or null once it is gone (or not readable by this user). */
export function processCounters(pid: number): ProcessCounters | null {
  const stat = readText(`/proc/${pid}/stat`);
  const io = readText(`/proc/${pid}/io`);
  if (!stat || !io) return null;
  // Fields after the command's closing parenthesis, from field 3 (state) on.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  const [minflt, cminflt, majflt, cmajflt, utime, stime, cutime, cstime] = f.slice(7, 15);
  return {
    start: String(f[19]),
    userSeconds: (utime + cutime) / USER_HZ,
    systemSeconds: (stime + cstime) / USER_HZ,
    minorFaults: minflt + cminflt,
    majorFaults: majflt + cmajflt,
    readSyscalls: ioField(io, "syscr"),
    writeSyscalls: ioField(io, "syscw"),
    storageReadBytes: ioField(io, "read_bytes"),
    storageWriteBytes: ioField(io, "write_bytes"),
    cancelledWriteBytes: ioField(io, "cancelled_write_bytes"),
  };
}
