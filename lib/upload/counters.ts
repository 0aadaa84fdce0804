// Kernel counters of PicoShare's processes, for one test: CPU time, what
// they caused to be read from and written to storage, syscalls and page
// faults. They count what PicoShare's code controls and barely vary from run
// to run (unlike wall time, which the rest of the host disturbs).
// Each process's last reading is kept, so a process that is gone (an OOM
// kill) still counts with what it had done.
import { processCounters, type CounterReading } from "../core/proc.ts";

export interface Counters {
  cpu_user_seconds: number;
  cpu_system_seconds: number;
  /**
   * All CPU time: the scheduler's exact account where the cgroup has one (v1
   * cpuacct.usage, v2 cpu.stat usage_usec), which the user/system split is not
   * (the kernel divides it by tick samples: 4 ms steps here); else user + system.
   */
  cpu_seconds: number;
  disk_write_bytes: number;
  disk_write_cancelled_bytes: number;
  disk_read_bytes: number;
  write_syscalls: number;
  read_syscalls: number;
  major_faults: number;
  minor_faults: number;
}

const FROM_PROCESS: [keyof Counters, keyof CounterReading][] = [
  ["cpu_user_seconds", "userSeconds"],
  ["cpu_system_seconds", "systemSeconds"],
  ["disk_write_bytes", "storageWriteBytes"],
  ["disk_write_cancelled_bytes", "cancelledWriteBytes"],
  ["disk_read_bytes", "storageReadBytes"],
  ["write_syscalls", "writeSyscalls"],
  ["read_syscalls", "readSyscalls"],
  ["major_faults", "majorFaults"],
  ["minor_faults", "minorFaults"],
];

export const COUNTER_NAMES: (keyof Counters)[] = ["cpu_seconds", ...FROM_PROCESS.map(([name]) => name)];

/** CPU seconds to the microsecond (a cgroup's account; ticks stay exact), counts whole. */
export function roundCounter(name: keyof Counters, v: number): number {
  return name.startsWith("cpu_") ? Math.round(v * 1e6) / 1e6 : Math.round(v);
}

/**
 * The counters of the processes `pids()` lists on this host (or that readings
 * from elsewhere, a VM's guest, report), summed over every process seen since
 * the tracker was made.
 */
export class CounterTracker {
  private readonly last = new Map<string, CounterReading>();
  constructor(private readonly pids: () => number[] = () => []) {}

  /** A reading of one process (`key` tells processes apart), replacing its earlier one. */
  record(key: string, c: CounterReading): void {
    this.last.set(key, c);
  }

  /** Reads each listed process now. */
  sample(): void {
    let pids: number[] = [];
    try {
      pids = this.pids();
    } catch {
      return; // the cgroup is being removed
    }
    for (const pid of pids) {
      const c = processCounters(pid);
      if (c) this.record(`${pid}:${c.start}`, c);
    }
  }

  /** The sums so far (a sample is taken first); null while no process has been read. */
  total(): Counters | null {
    this.sample();
    if (this.last.size === 0) return null;
    const sum = Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0])) as unknown as Counters;
    for (const c of this.last.values()) for (const [name, key] of FROM_PROCESS) sum[name] += c[key];
    sum.cpu_seconds = sum.cpu_user_seconds + sum.cpu_system_seconds;
    return Object.fromEntries(COUNTER_NAMES.map((n) => [n, roundCounter(n, sum[n])])) as unknown as Counters;
  }
}

/** What happened between two readings. */
export function counterDelta(before: Counters, after: Counters): Counters {
  return Object.fromEntries(COUNTER_NAMES.map((n) => [n, roundCounter(n, after[n] - before[n])])) as unknown as Counters;
}

/** Each counter null: a result's counters where the backend has none. */
export const NO_COUNTER_VALUES = Object.fromEntries(COUNTER_NAMES.map((n) => [n, null])) as { [K in keyof Counters]: null };
