// Memory cgroups for the local backend: a fresh child of the harness's own
// cgroup per test, with a hard limit and swap excluded. cgroup v1 and v2 are
// both read through the same small interface; on a v2 host where the harness
// may not write its own cgroup, systemd-run --user --scope makes the limit.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { $ } from "zx";
import { UsageError } from "../errors.ts";
import { MiB } from "../sizes.ts";

export interface MemoryCgroup {
  readonly version: 1 | 2 | "systemd";
  /** The cgroup's folder; for systemd-run known only once the process has started. */
  path: string;
  readonly limitBytes: number;
  /** argv that starts `command` inside the cgroup. */
  launch(command: string[]): string[];
  /** Called with the pid launched, so a scope made by systemd can be found. */
  attached(pid: number): void;
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

/** The processes in the cgroup folder `dir`. */
export function cgroupPidsOf(dir: string): number[] {
  return read(join(dir, "cgroup.procs"))
    .split("\n")
    .filter(Boolean)
    .map(Number);
}

/** A shell that joins the cgroup, then becomes the command: nothing else runs inside. */
function joinThenExec(procsFile: string, command: string[]): string[] {
  return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procsFile, ...command];
}

interface Mounts {
  v1Memory: string | null;
  v2: string | null;
}

function cgroupMounts(): Mounts {
  const mounts: Mounts = { v1Memory: null, v2: null };
  for (const line of read("/proc/self/mountinfo").split("\n")) {
    const [left, right] = line.split(" - ");
    if (!right) continue;
    const [fstype, , superOpts] = right.split(" ");
    const mountPoint = left.split(" ")[4];
    if (fstype === "cgroup" && superOpts?.split(",").includes("memory")) mounts.v1Memory = mountPoint;
    if (fstype === "cgroup2" && mounts.v2 === null) mounts.v2 = mountPoint;
  }
  return mounts;
}

/** The harness's own cgroup path per hierarchy, from /proc/self/cgroup. */
function ownCgroups(): { v1Memory: string | null; v2: string | null } {
  let v1Memory: string | null = null;
  let v2: string | null = null;
  for (const line of read("/proc/self/cgroup").split("\n")) {
    const [, controllers, path] = line.split(":");
    if (path === undefined) continue;
    if (controllers.split(",").includes("memory")) v1Memory = path;
    if (line.startsWith("0::")) v2 = path;
  }
  return { v1Memory, v2 };
}

class V1Cgroup implements MemoryCgroup {
  readonly version = 1 as const;
  constructor(
    public path: string,
    readonly limitBytes: number,
  ) {}
  launch(command: string[]) {
    return joinThenExec(join(this.path, "cgroup.procs"), command);
  }
  attached() {}
  usage() {
    return Number(read(join(this.path, "memory.usage_in_bytes")));
  }
  workingSet() {
    const stat = read(join(this.path, "memory.stat"));
    return Math.max(0, this.usage() - statField(stat, "total_inactive_file"));
  }
  kernelPeak() {
    return Number(read(join(this.path, "memory.max_usage_in_bytes")));
  }
  oomKills() {
    return statField(read(join(this.path, "memory.oom_control")), "oom_kill");
  }
  pids() {
    return cgroupPidsOf(this.path);
  }
  remove() {
    rmdirQuietly(this.path);
  }
}

class V2Cgroup implements MemoryCgroup {
  constructor(
    public path: string,
    readonly limitBytes: number,
    readonly version: 2 | "systemd" = 2,
    private readonly launcher?: (command: string[]) => string[],
  ) {}
  launch(command: string[]) {
    return this.launcher ? this.launcher(command) : joinThenExec(join(this.path, "cgroup.procs"), command);
  }
  attached(pid: number) {
    if (this.version !== "systemd") return;
    // systemd-run --scope puts the command in a new scope; find it from the process.
    const line = read(`/proc/${pid}/cgroup`).split("\n").find((l) => l.startsWith("0::"));
    if (line) this.path = join(cgroupMounts().v2!, line.slice(3));
  }
  usage() {
    return Number(read(join(this.path, "memory.current")));
  }
  workingSet() {
    const stat = read(join(this.path, "memory.stat"));
    return Math.max(0, this.usage() - statField(stat, "inactive_file"));
  }
  kernelPeak() {
    const file = join(this.path, "memory.peak");
    return existsSync(file) ? Number(read(file)) : null;
  }
  oomKills() {
    return statField(read(join(this.path, "memory.events")), "oom_kill");
  }
  pids() {
    return existsSync(this.path) ? cgroupPidsOf(this.path) : [];
  }
  remove() {
    if (this.version === 2) rmdirQuietly(this.path);
    // A systemd scope goes away by itself once its last process has ended.
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

export interface CgroupSupport {
  kind: 1 | 2 | "systemd";
  parent: string;
}

/**
 * Finds how this host can limit a child's memory; throws a UsageError naming
 * the fix where it cannot (never an unlimited run).
 */
export async function detectCgroupSupport(): Promise<CgroupSupport> {
  const mounts = cgroupMounts();
  const own = ownCgroups();
  if (mounts.v1Memory && own.v1Memory !== null) {
    const parent = join(mounts.v1Memory, own.v1Memory);
    if (canMkdir(parent)) return { kind: 1, parent };
    throw new UsageError(
      `cannot create memory cgroups under ${parent} (cgroup v1): run as root or give this user that cgroup`,
    );
  }
  if (mounts.v2 && own.v2 !== null) {
    const parent = join(mounts.v2, own.v2);
    const controllers = existsSync(join(mounts.v2, "cgroup.controllers"))
      ? read(join(mounts.v2, "cgroup.controllers"))
      : "";
    if (controllers.includes("memory") && canMkdir(parent) && enableMemoryController(parent)) {
      return { kind: 2, parent };
    }
    if ((await $({ nothrow: true, quiet: true })`systemd-run --user --scope --quiet true`).exitCode === 0) {
      return { kind: "systemd", parent };
    }
    throw new UsageError(
      `cannot limit memory here: the cgroup ${parent} is not writable and systemd-run --user --scope ` +
        `does not work; run as root, or from a systemd user session`,
    );
  }
  throw new UsageError("no memory cgroup on this host: the local backend needs cgroup v1 or v2 with the memory controller");
}

function canMkdir(parent: string): boolean {
  const probe = join(parent, `perf-probe-${process.pid}`);
  try {
    mkdirSync(probe);
    rmdirSync(probe);
    return true;
  } catch {
    return false;
  }
}

function enableMemoryController(parent: string): boolean {
  const subtree = join(parent, "cgroup.subtree_control");
  if (read(subtree).includes("memory")) return true;
  try {
    writeFileSync(subtree, "+memory");
    return true;
  } catch {
    return false;
  }
}

/** Makes the cgroup for one test, limited to `ramMiB` MiB of memory with no swap. */
export function createMemoryCgroup(support: CgroupSupport, name: string, ramMiB: number): MemoryCgroup {
  const limit = ramMiB * MiB;
  if (support.kind === "systemd") {
    return new V2Cgroup("", limit, "systemd", (command) => [
      "systemd-run", "--user", "--scope", "--quiet", `--unit=${name}`,
      "-p", `MemoryMax=${limit}`, "-p", "MemorySwapMax=0", "--", ...command,
    ]);
  }
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
    return new V2Cgroup(path, limit);
  } catch (err) {
    rmdirQuietly(path);
    throw err;
  }
}
