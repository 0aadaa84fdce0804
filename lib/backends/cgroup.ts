// Memory cgroups for the local backend: a fresh cgroup per test, made where
// cgroup-place.ts found the harness may make them, with a hard limit and swap
// excluded. cgroup v1 and v2 are both read through the same small interface.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../core/errors.ts";
import { MiB } from "../core/sizes.ts";
import { cgroupProcs, type CgroupSupport } from "./cgroup-place.ts";

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
  kernelPeak(): number | null;
  oomKills(): number;
  pids(): number[];
  remove(): void;
}

function read(path: string): string {
  return readFileSync(path, "utf8");
}

function statField(text: string, key: string): number {
  const m = new RegExp(`^${key} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

/** A shell that joins the cgroup, then becomes the command: nothing else runs inside. */
function joinThenExec(procsFile: string, command: string[]): string[] {
  return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procsFile, ...command];
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
  launch(command: string[]) {
    return joinThenExec(join(this.path, "cgroup.procs"), command);
  }
  abstract usage(): number;
  abstract kernelPeak(): number | null;
  abstract oomKills(): number;
  workingSet() {
    const stat = read(join(this.path, "memory.stat"));
    return Math.max(0, this.usage() - statField(stat, this.inactiveFileKey));
  }
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
      return new V1Cgroup(path, limit);
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
