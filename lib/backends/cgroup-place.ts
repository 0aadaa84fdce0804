// Where the local backend may make its memory cgroups, and how it got there.
//
// cgroup v1: beneath the harness's own memory cgroup (any cgroup may have
// children there).
//
// cgroup v2 forbids a cgroup that holds processes from handing controllers to
// children, and on a systemd host every cgroup belongs to systemd unless it
// was delegated. So, in this order:
//   1. nested: the harness runs in the leaf that an outer harness (the matrix
//      starting run-test) made inside a subtree it was given: use that subtree;
//   2. systemd: ask the manager (the system one for root, the user's own
//      otherwise) for a transient scope with Delegate=yes (systemd-run, around
//      a holder process: no re-exec of the harness), move the harness into a
//      leaf of it and enable the memory controller below it;
//   3. a cgroup-namespace root (a container's own, or a host without
//      systemd): reorganise it the same way, its processes into the leaf.
// Anything else fails with a line naming what failed and the fix: never an
// unlimited run.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { UsageError } from "../core/errors.ts";
import { $ } from "../core/shell.ts";

/** The leaf the harness moves itself into, inside a subtree it may organise. */
export const HARNESS_LEAF = "picoshare-perf-harness";
/** Names of the harness's scopes and test cgroups: the harness pid first, so a dead harness's can be told apart. */
export const NAME_PREFIX = "picoshare-perf-";

export type CgroupPlacement = "v1" | "nested" | "systemd-system" | "systemd-user" | "namespace-root";

export interface CgroupSupport {
  kind: 1 | 2;
  /** The folder test cgroups are made in. */
  parent: string;
  placement: CgroupPlacement;
  /** One line for the log: how the parent was had. */
  description: string;
  /** The scope systemd made for this harness (placement systemd-*). */
  scope?: { unit: string; manager: "system" | "user" };
  /**
   * cgroup v1: the folder beneath the harness's own cpuacct cgroup where each
   * test gets a cpuacct cgroup of the memory cgroup's name, when cpuacct is
   * mounted and writable; null otherwise (v2 reads cpu.stat of the test cgroup).
   */
  cpuacctParent?: string | null;
}

interface Mounts {
  v1Memory: string | null;
  v1Cpuacct: string | null;
  v2: string | null;
}

function read(path: string): string {
  return readFileSync(path, "utf8");
}

function words(path: string): string[] {
  try {
    return read(path).split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

export function cgroupMounts(): Mounts {
  const mounts: Mounts = { v1Memory: null, v1Cpuacct: null, v2: null };
  for (const line of read("/proc/self/mountinfo").split("\n")) {
    const [left, right] = line.split(" - ");
    if (!right) continue;
    const [fstype, , superOpts] = right.split(" ");
    const [, , , root, mountPoint] = left.split(" ");
    // Only a mount of the hierarchy's root maps /proc/self/cgroup's paths: a
    // bind mount of a subtree (as a Slurm test gives slurmd) is another view.
    if (root !== "/") continue;
    if (fstype === "cgroup" && superOpts?.split(",").includes("memory")) mounts.v1Memory ??= mountPoint;
    if (fstype === "cgroup" && superOpts?.split(",").includes("cpuacct")) mounts.v1Cpuacct ??= mountPoint;
    if (fstype === "cgroup2") mounts.v2 ??= mountPoint;
  }
  return mounts;
}

/** A process's cgroup path per hierarchy (the harness's own by default), from /proc/PID/cgroup; nulls once it is gone. */
function cgroupsOf(pid: number | "self" = "self"): { v1Memory: string | null; v1Cpuacct: string | null; v2: string | null } {
  let v1Memory: string | null = null;
  let v1Cpuacct: string | null = null;
  let v2: string | null = null;
  let text = "";
  try {
    text = read(`/proc/${pid}/cgroup`);
  } catch {}
  for (const line of text.split("\n")) {
    const [, controllers, path] = line.split(":");
    if (path === undefined) continue;
    if (controllers.split(",").includes("memory")) v1Memory = path;
    if (controllers.split(",").includes("cpuacct")) v1Cpuacct = path;
    if (line.startsWith("0::")) v2 = path;
  }
  return { v1Memory, v1Cpuacct, v2 };
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

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/**
 * Finds where this host lets the harness limit a child's memory, organising a
 * delegated subtree where needed; throws a UsageError naming the fix where it
 * cannot.
 */
export async function placeCgroups(): Promise<CgroupSupport> {
  const mounts = cgroupMounts();
  const own = cgroupsOf();
  if (mounts.v1Memory && own.v1Memory !== null) {
    const parent = join(mounts.v1Memory, own.v1Memory);
    if (canMkdir(parent)) {
      const cpuacct = mounts.v1Cpuacct && own.v1Cpuacct !== null ? join(mounts.v1Cpuacct, own.v1Cpuacct) : null;
      const cpuacctParent = cpuacct && canMkdir(cpuacct) ? cpuacct : null;
      return { kind: 1, parent, placement: "v1", description: `cgroup v1, beneath the harness's own memory cgroup ${parent}`, cpuacctParent };
    }
    throw new UsageError(`cannot create memory cgroups under ${parent} (cgroup v1): run as root or give this user that cgroup`);
  }
  if (mounts.v2 && own.v2 !== null) {
    const placed = await placeV2(mounts.v2, own.v2);
    return { ...placed, description: `${placed.description} (the harness started in ${own.v2})` };
  }
  throw new UsageError("no memory cgroup on this host: the local backend needs cgroup v1 or v2 with the memory controller");
}

async function placeV2(mount: string, ownPath: string): Promise<CgroupSupport> {
  const available = words(join(mount, "cgroup.controllers"));
  if (!available.includes("memory")) {
    throw new UsageError(
      `cgroup v2 offers no memory controller here (${join(mount, "cgroup.controllers")}: ${available.join(" ") || "empty"}): ` +
        "on a host, boot a kernel with the memory cgroup (not cgroup_disable=memory); in a container, have it made with the memory controller delegated",
    );
  }
  const own = ownPath === "/" ? mount : join(mount, ownPath);

  // 1. Inside a subtree an outer harness organised.
  if (basename(own) === HARNESS_LEAF) {
    const parent = dirname(own);
    if (words(join(parent, "cgroup.subtree_control")).includes("memory") && canMkdir(parent)) {
      return { kind: 2, parent, placement: "nested", description: `cgroup v2, in the subtree the outer harness organised: ${parent}` };
    }
  }

  // 2. A delegated scope from systemd.
  const uid = process.getuid?.() ?? 0;
  const manager = uid === 0 ? "system" : "user";
  const runtimeDir = process.env.XDG_RUNTIME_DIR || `/run/user/${uid}`;
  const socket = manager === "system" ? "/run/systemd/private" : join(runtimeDir, "systemd", "private");
  let systemdProblem: string;
  if (!existsSync(socket)) {
    systemdProblem =
      manager === "system"
        ? `no systemd to ask for a delegated cgroup (${socket} is missing)`
        : `no systemd user manager to ask for a delegated cgroup (${socket} is missing: log in through a session that starts one, or loginctl enable-linger ${process.env.USER ?? "USER"}; or run as root)`;
  } else if (!Bun.which("systemd-run")) {
    systemdProblem = "systemd runs but systemd-run is not on PATH to ask it for a delegated cgroup";
  } else {
    const asked = await askSystemd(mount, manager, runtimeDir);
    if (typeof asked !== "string") return asked;
    systemdProblem = asked;
  }

  // 3. A cgroup-namespace root (a container's own): the harness may reorganise it.
  if (ownPath === "/") {
    organise(own, cgroupProcs(own), "the cgroup-namespace root");
    return {
      kind: 2,
      parent: own,
      placement: "namespace-root",
      description: `cgroup v2, the cgroup-namespace root ${own} (its processes moved into ${HARNESS_LEAF}; ${systemdProblem})`,
    };
  }

  throw new UsageError(
    `cannot limit memory here: ${systemdProblem}, and the harness's cgroup ${ownPath} is not one it may reorganise ` +
      "(cgroup v2 gives no controller to children of a cgroup that holds processes; only a delegated subtree, a container's " +
      "cgroup-namespace root or one the harness made, may be reorganised): run under systemd, as root or with a user manager, " +
      "or in a container with its own cgroup namespace",
  );
}

/**
 * Asks the manager for scope `picoshare-perf-PID-XXXX.scope` with
 * Delegate=yes: systemd-run makes it around a short-lived holder process,
 * the harness moves itself and the holder into the scope's leaf, enables the
 * memory controller, and ends the holder. A string says why it could not.
 */
async function askSystemd(mount: string, manager: "system" | "user", runtimeDir: string): Promise<CgroupSupport | string> {
  const unit = `${NAME_PREFIX}${process.pid}-${randomBytes(3).toString("hex")}.scope`;
  const flags = [
    ...(manager === "user" ? ["--user"] : []),
    "--scope", "--quiet", "--collect", "-p", "Delegate=yes", `--unit=${unit}`,
    "--description=picoshare-perf harness: memory-limited test cgroups",
  ];
  // The holder's pid is systemd-run's own (it becomes sleep in the scope); it ends by
  // itself should this process die before it can end it.
  const holder = $({ env: { XDG_RUNTIME_DIR: runtimeDir }, nothrow: true })`systemd-run ${flags} -- sleep 120`;
  let scopePath = "";
  for (let i = 0; i < 1000 && !scopePath; i++) {
    const at = holder.pid ? cgroupsOf(holder.pid).v2 ?? "" : "";
    if (basename(at) === unit) scopePath = at;
    else if (holder.stage !== "running") break;
    else await Bun.sleep(10);
  }
  if (!scopePath) {
    if (holder.pid) process.kill(holder.pid, "SIGKILL");
    const done = await holder;
    const said = done.stderr.trim().split("\n").pop() || `exit ${done.exitCode}`;
    return `systemd's ${manager} manager would not make a delegated scope (systemd-run${manager === "user" ? " --user" : ""} --scope: ${said})`;
  }
  const scope = join(mount, scopePath);
  try {
    organise(scope, [process.pid, holder.pid!], `the scope ${unit}`, manager === "user" ? USER_FIX : ROOT_FIX);
  } finally {
    process.kill(holder.pid!, "SIGKILL");
    await holder;
  }
  return {
    kind: 2,
    parent: scope,
    placement: manager === "system" ? "systemd-system" : "systemd-user",
    description: `cgroup v2, a delegated scope from systemd's ${manager} manager: ${scope}`,
    scope: { unit, manager },
  };
}

export function cgroupProcs(dir: string): number[] {
  return read(join(dir, "cgroup.procs")).split("\n").filter(Boolean).map(Number);
}

const ROOT_FIX = "run as root, or where systemd delegates a cgroup to you";
/** A process outside the user manager's tree (e.g. a login session's) can be moved into it only by systemd. */
const USER_FIX =
  "the harness runs outside your user manager's tree (e.g. in a login session's scope), from where only systemd may move it: " +
  "start it inside the manager, e.g. systemd-run --user --pipe --wait --same-dir bun scripts/run-test.ts ..., or run as root";

/**
 * Makes `dir` able to hand the memory controller to children: `pids` (the
 * harness, or every process of a namespace root) move into HARNESS_LEAF, then
 * +memory goes into cgroup.subtree_control. Each failure names its cause.
 */
function organise(dir: string, pids: number[], what: string, fix = ROOT_FIX): void {
  const leaf = join(dir, HARNESS_LEAF);
  const subtree = join(dir, "cgroup.subtree_control");
  // Enabled already (a real root cgroup, which may hold processes; a root organised before): nothing to move.
  if (words(subtree).includes("memory")) return;
  if (!words(join(dir, "cgroup.controllers")).includes("memory")) {
    throw new UsageError(`${what} (${dir}) was not given the memory controller (cgroup.controllers: ${words(join(dir, "cgroup.controllers")).join(" ") || "empty"}): delegate memory to it`);
  }
  try {
    mkdirSync(leaf, { recursive: true });
  } catch (err) {
    throw new UsageError(`the cgroup ${dir} is not writable by this user (${errno(err)}): ${ROOT_FIX}`);
  }
  for (const pid of pids) {
    try {
      writeFileSync(join(leaf, "cgroup.procs"), String(pid));
    } catch (err) {
      // A process that just ended is no obstacle; kernel threads of a real root cannot move (and need not).
      if (errno(err) !== "ESRCH" && errno(err) !== "EINVAL") {
        throw new UsageError(`cannot move process ${pid} into ${join(dir, HARNESS_LEAF)} (${errno(err)}): ${fix}`);
      }
    }
  }
  try {
    writeFileSync(subtree, "+memory");
  } catch (err) {
    if (errno(err) === "EBUSY") {
      const left = cgroupProcs(dir);
      throw new UsageError(
        `cannot enable the memory controller below ${dir}: it still holds processes (pid ${left.join(", ")}) ` +
          "and cgroup v2 gives no controller to children of a cgroup with processes: run the harness where systemd can delegate a scope (as root, or with a user manager)",
      );
    }
    throw new UsageError(`cannot enable the memory controller below ${dir} (${errno(err)}): ${ROOT_FIX}`);
  }
}

/**
 * The most memory a test cgroup of this harness can really have: the host's
 * MemTotal, or a tighter limit on the harness's own cgroup or one of its
 * parents (a container, a Slurm job, a systemd slice), with where it comes from.
 */
export function memoryCeiling(): { bytes: number; source: string } {
  const total = /^MemTotal:\s+(\d+) kB$/m.exec(read("/proc/meminfo"));
  let best = { bytes: total ? Number(total[1]) * 1024 : Infinity, source: "the host's MemTotal" };
  const mounts = cgroupMounts();
  const own = cgroupsOf();
  const [root, path, file] =
    mounts.v1Memory && own.v1Memory !== null
      ? [mounts.v1Memory, own.v1Memory, "memory.limit_in_bytes"]
      : mounts.v2 && own.v2 !== null
        ? [mounts.v2, own.v2, "memory.max"]
        : [null, null, ""];
  if (root === null || path === null) return best;
  for (let p = join(root, path); p.startsWith(root); p = dirname(p)) {
    const text = words(join(p, file))[0];
    const limit = text === undefined || text === "max" ? NaN : Number(text);
    if (Number.isFinite(limit) && limit < best.bytes) best = { bytes: limit, source: `the limit on ${join(p, file)}` };
    if (p === root) break;
  }
  return best;
}
