// Memory cgroups for the local backend: a fresh cgroup per test, made where
// cgroup-place.ts found the harness may make them, with a hard limit and swap
// excluded. cgroup v1 and v2 are both read through the same small interface.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../core/errors.ts";
import { MiB } from "../core/sizes.ts";
import { cgroupProcs, type CgroupSupport } from "./cgroup-place.ts";

/** What the cgroup's memory is made of at one moment (memory.stat), bytes; null where the version does not say. */
export interface MemoryBreakdown {
  anon: number;
  file: number;
  active_file: number;
  shmem: number;
  kernel: number | null;
  sock: number | null;
}

export interface MemoryCgroup {
  readonly version: 1 | 2;
  /** The cgroup's folder. */
  readonly path: string;
  readonly limitBytes: number;
  /** argv that starts `command` inside the cgroup. */
  launch(command: string[]): string[];
  usage(): number;
  /** Usage less the inactive file cache: what the environment really needs. */
  workingSet(): number;
  /** The working set and what the memory is made of, from one reading of memory.stat. */
  snapshot(): { workingSet: number; breakdown: MemoryBreakdown };
  /** cgroup v2's pressure stall totals for memory (seconds some / all tasks waited); null on v1. */
  pressure(): { some_seconds: number; full_seconds: number } | null;
  kernelPeak(): number | null;
  oomKills(): number;
  pids(): number[];
  /** CPU seconds of everything that ran in the cgroup (the kernel keeps an ended process's), or null where not accounted. */
  cpuSeconds(): { user: number; system: number; total: number } | null;
  /** Where cpuSeconds comes from, for the result's settings. */
  readonly cpuSource: string;
  remove(): void;
}

function read(path: string): string {
  return readFileSync(path, "utf8");
}

function statField(text: string, key: string): number {
  const m = new RegExp(`^${key} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

/** A shell that joins the cgroups (one per hierarchy), then becomes the command: nothing else runs inside. */
function joinThenExec(procsFiles: string[], command: string[]): string[] {
  const joins = procsFiles.map((_, i) => `echo $$ > "$${i + 1}"`).join(" && ");
  return ["/bin/sh", "-c", `${joins} && shift ${procsFiles.length} && exec "$@"`, "sh", ...procsFiles, ...command];
}

/** What both versions share: the folder, the launch, the processes, the removal, the working set. */
abstract class CgroupBase implements MemoryCgroup {
  abstract readonly version: 1 | 2;
  /** memory.stat's key for the inactive file cache (v1 counts the subtree as total_*). */
  protected abstract readonly inactiveFileKey: string;
  constructor(
    readonly path: string,
    readonly limitBytes: number,
  ) {}
  /** The cgroup.procs files the test's processes join (v1: one per hierarchy). */
  protected procsFiles(): string[] {
    return [join(this.path, "cgroup.procs")];
  }
  launch(command: string[]) {
    return joinThenExec(this.procsFiles(), command);
  }
  abstract cpuSeconds(): { user: number; system: number; total: number } | null;
  abstract readonly cpuSource: string;
  abstract usage(): number;
  abstract kernelPeak(): number | null;
  abstract oomKills(): number;
  workingSet() {
    return this.snapshot().workingSet;
  }
  snapshot() {
    const stat = read(join(this.path, "memory.stat"));
    return { workingSet: Math.max(0, this.usage() - statField(stat, this.inactiveFileKey)), breakdown: this.breakdown(stat) };
  }
  protected abstract breakdown(stat: string): MemoryBreakdown;
  abstract pressure(): { some_seconds: number; full_seconds: number } | null;
  pids() {
    return existsSync(this.path) ? cgroupProcs(this.path) : [];
  }
  remove() {
    rmdirQuietly(this.path);
  }
}

class V1Cgroup extends CgroupBase {
  readonly version = 1 as const;
  protected readonly inactiveFileKey = "total_inactive_file";
  constructor(
    path: string,
    limitBytes: number,
    /** The test's cgroup in the cpuacct hierarchy, or null where there is none to make. */
    private readonly cpuacct: string | null,
  ) {
    super(path, limitBytes);
  }
  get cpuSource() {
    return this.cpuacct ? "cpuacct" : "none";
  }
  protected procsFiles() {
    return this.cpuacct ? [...super.procsFiles(), join(this.cpuacct, "cgroup.procs")] : super.procsFiles();
  }
  cpuSeconds() {
    if (!this.cpuacct || !existsSync(this.cpuacct)) return null;
    // Nanoseconds where the kernel splits them (4.7 and later); else USER_HZ ticks of cpuacct.stat.
    // The total (cpuacct.usage) is the scheduler's exact account in nanoseconds; the split is sampled per tick.
    const total = Number(read(join(this.cpuacct, "cpuacct.usage"))) / 1e9;
    const user = join(this.cpuacct, "cpuacct.usage_user");
    if (existsSync(user)) {
      return { user: Number(read(user)) / 1e9, system: Number(read(join(this.cpuacct, "cpuacct.usage_sys"))) / 1e9, total };
    }
    const stat = read(join(this.cpuacct, "cpuacct.stat"));
    return { user: statField(stat, "user") / 100, system: statField(stat, "system") / 100, total };
  }
  remove() {
    super.remove();
    if (this.cpuacct) rmdirQuietly(this.cpuacct);
  }
  // v1 counts the subtree as total_*; kernel memory is its own counter (with sockets in kmem.tcp).
  protected breakdown(stat: string) {
    const kmem = join(this.path, "memory.kmem.usage_in_bytes");
    const tcp = join(this.path, "memory.kmem.tcp.usage_in_bytes");
    return {
      anon: statField(stat, "total_rss"),
      file: statField(stat, "total_cache"),
      active_file: statField(stat, "total_active_file"),
      shmem: statField(stat, "total_shmem"),
      kernel: existsSync(kmem) ? Number(read(kmem)) : null,
      sock: existsSync(tcp) ? Number(read(tcp)) : null,
    };
  }
  pressure() {
    return null;
  }
  usage() {
    return Number(read(join(this.path, "memory.usage_in_bytes")));
  }
  kernelPeak() {
    return Number(read(join(this.path, "memory.max_usage_in_bytes")));
  }
  oomKills() {
    return statField(read(join(this.path, "memory.oom_control")), "oom_kill");
  }
}

class V2Cgroup extends CgroupBase {
  readonly version = 2 as const;
  protected readonly inactiveFileKey = "inactive_file";
  // cpu.stat is in every v2 cgroup, with or without the cpu controller.
  readonly cpuSource = "cpu.stat";
  protected breakdown(stat: string) {
    const has = (key: string) => new RegExp(`^${key} `, "m").test(stat);
    return {
      anon: statField(stat, "anon"),
      file: statField(stat, "file"),
      active_file: statField(stat, "active_file"),
      shmem: statField(stat, "shmem"),
      kernel: has("kernel") ? statField(stat, "kernel") : null,
      sock: has("sock") ? statField(stat, "sock") : null,
    };
  }
  pressure() {
    const file = join(this.path, "memory.pressure");
    if (!existsSync(file)) return null;
    const text = read(file);
    const total = (kind: string) => Number(new RegExp(`^${kind} .*total=(\\d+)`, "m").exec(text)?.[1] ?? 0) / 1e6;
    return { some_seconds: total("some"), full_seconds: total("full") };
  }
  cpuSeconds() {
    const file = join(this.path, "cpu.stat");
    if (!existsSync(file)) return null;
    const stat = read(file);
    return { user: statField(stat, "user_usec") / 1e6, system: statField(stat, "system_usec") / 1e6, total: statField(stat, "usage_usec") / 1e6 };
  }
  usage() {
    return Number(read(join(this.path, "memory.current")));
  }
  kernelPeak() {
    const file = join(this.path, "memory.peak");
    return existsSync(file) ? Number(read(file)) : null;
  }
  oomKills() {
    return statField(read(join(this.path, "memory.events")), "oom_kill");
  }
}

function rmdirQuietly(path: string): void {
  if (!existsSync(path)) return;
  // A cgroup can be removed only once its last task is gone; the kernel may
  // take a moment to notice an exit that was just reaped.
  for (let i = 0; ; i++) {
    try {
      rmdirSync(path);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EBUSY" || i >= 50) throw err;
      Bun.sleepSync(10);
    }
  }
}

/** Makes the cgroup for one test, limited to `ramMiB` MiB of memory with no swap. */
export function createMemoryCgroup(support: CgroupSupport, name: string, ramMiB: number): MemoryCgroup {
  const limit = ramMiB * MiB;
  const path = join(support.parent, name);
  mkdirSync(path);
  try {
    if (support.kind === 1) {
      writeFileSync(join(path, "memory.limit_in_bytes"), String(limit));
      // memsw is usage + swap: equal to the limit means no swap at all.
      if (existsSync(join(path, "memory.memsw.limit_in_bytes"))) {
        writeFileSync(join(path, "memory.memsw.limit_in_bytes"), String(limit));
      } else {
        writeFileSync(join(path, "memory.swappiness"), "0");
      }
      let cpuacct: string | null = null;
      if (support.cpuacctParent) {
        cpuacct = join(support.cpuacctParent, name);
        mkdirSync(cpuacct);
      }
      return new V1Cgroup(path, limit, cpuacct);
    }
    writeFileSync(join(path, "memory.max"), String(limit));
    if (existsSync(join(path, "memory.swap.max"))) writeFileSync(join(path, "memory.swap.max"), "0");
    else if (swapInUse()) {
      throw new UsageError(
        "swap is on and this kernel cannot keep it out of a cgroup (no memory.swap.max): the limit would not hold; " +
          "boot with swapaccount=1, or swapoff -a for the tests",
      );
    }
    return new V2Cgroup(path, limit);
  } catch (err) {
    rmdirQuietly(path);
    throw err;
  }
}

/** Whether any swap area is active (/proc/swaps lists more than its header). */
function swapInUse(): boolean {
  try {
    return read("/proc/swaps").trim().split("\n").length > 1;
  } catch {
    return false;
  }
}
