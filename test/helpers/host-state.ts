// What a test file must leave on the host as it found it: the host's libvirt
// configuration and state byte for byte, and the machine-wide things a VM
// test could leave behind (mounts, network interfaces and namespaces,
// iptables rules, loop devices, files in /etc, /var and /run). Taken before
// the file's first test and compared after its last; the deliberate caches
// (the VM image cache, Go's and npm's caches) are not part of it.
import { createHash } from "node:crypto";
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { $, type ProcessOutput } from "../../lib/core/shell.ts";

/** Trees compared byte for byte: a recursive listing with sizes and checksums. */
export const CHECKSUMMED = ["/etc/libvirt", "/var/lib/libvirt"];
/** Trees compared by the names in them (a file added or removed anywhere below). */
const LISTED = ["/etc", "/var/lib", "/var/log", "/var/tmp", "/run"];
/** Left out of LISTED: checksummed above, or the project's own cache. */
const NOT_LISTED = [...CHECKSUMMED, "/var/cache"];

export interface HostState {
  /** Name of the section (e.g. "/etc/libvirt", "mounts") to its sorted lines. */
  [section: string]: string[];
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** One line per entry below `root`: path, type, mode, size and sha256 (files) or target (links). */
export function treeListing(root: string, withContent = true, skip: string[] = []): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      if (skip.includes(path)) continue;
      let st;
      try {
        st = lstatSync(path);
      } catch {
        continue;
      }
      if (!withContent) {
        out.push(path);
      } else if (st.isSymbolicLink()) {
        out.push(`${path} link ${readlinkSync(path)}`);
      } else if (st.isFile()) {
        out.push(`${path} file ${(st.mode & 0o7777).toString(8)} ${st.size} ${sha256(path)}`);
      } else {
        out.push(`${path} ${st.isDirectory() ? "dir" : "other"} ${(st.mode & 0o7777).toString(8)}`);
      }
      if (st.isDirectory()) walk(path);
    }
  };
  if (existsSync(root)) walk(root);
  return out;
}

/** A command's output lines (run with nothrow), sorted; `program` names it when it is missing. */
function commandLines(program: string, r: ProcessOutput): string[] {
  if (r.exitCode === 127) return [`(${program} not available)`];
  return r.stdout
    .split("\n")
    .map((l) => l.trim())
    // iptables-save stamps its output and counts packets: neither is state.
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => l.replace(/\[\d+:\d+\]/g, ""))
    .sort();
}

/** The cgroup folders at the top of each hierarchy (where Slurm and libvirt make theirs), one line each. */
export function topCgroups(root = "/sys/fs/cgroup"): string[] {
  const out: string[] = [];
  for (const h of existsSync(root) ? readdirSync(root).sort() : []) {
    for (const name of readdirSync(join(root, h)).sort()) {
      try {
        if (lstatSync(join(root, h, name)).isDirectory()) out.push(`${h}/${name}`);
      } catch {}
    }
  }
  return out;
}

/** The mounts, one line each: the mounted path within its filesystem and where it is mounted. */
export function hostMounts(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split(" ").slice(3, 5).join(" "))
    .sort();
}

/** With `cgroups`, also the top of each cgroup hierarchy (a file whose daemons make cgroups there). */
export function hostState(opts: { cgroups?: boolean } = {}): HostState {
  const state: HostState = {};
  if (opts.cgroups) state.cgroups = topCgroups();
  for (const root of CHECKSUMMED) state[root] = treeListing(root);
  state.files = LISTED.flatMap((root) => treeListing(root, false, NOT_LISTED));
  state.mounts = hostMounts();
  state.interfaces = readdirSync("/sys/class/net").sort();
  state.netns = commandLines("ip", $({ nothrow: true }).sync`ip netns list`);
  state.loop = readdirSync("/sys/block")
    .filter((n) => n.startsWith("loop") && existsSync(`/sys/block/${n}/loop/backing_file`))
    .map((n) => `${n} ${readFileSync(`/sys/block/${n}/loop/backing_file`, "utf8").trim()}`)
    .sort();
  state.iptables = existsSync("/usr/sbin/iptables-save") ? commandLines("iptables-save", $({ nothrow: true }).sync`iptables-save`) : [];
  return state;
}

/** The differences, one line each ("+ line" appeared, "- line" went), by section. */
export function hostStateChanges(before: HostState, after: HostState): string[] {
  const changes: string[] = [];
  for (const section of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const was = new Set(before[section] ?? []);
    const now = new Set(after[section] ?? []);
    for (const l of was) if (!now.has(l)) changes.push(`${section}: - ${l}`);
    for (const l of now) if (!was.has(l)) changes.push(`${section}: + ${l}`);
  }
  return changes;
}
