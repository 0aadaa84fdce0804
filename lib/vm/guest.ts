// What both VM backends read from a Linux guest, in one place: the OOM
// killer's lines in its kernel log, how a process there ended, and its
// memory in use from /proc.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { constants as osConstants } from "node:os";
import { shq, type ExitInfo } from "../core/exec.ts";
import type { CounterReading } from "../core/proc.ts";
import type { SshConnection } from "./ssh.ts";
import type { StorageReading } from "../backends/types.ts";
import { goRuntimeEnvOf, type GoRuntimeEnv } from "../upload/provenance.ts";

export interface OomKill {
  pid: number;
  name: string;
  /** The kernel's line, without its time stamp ("Killed process" preferred over "oom-kill:"). */
  line: string;
}

/**
 * The OOM killer's victims in kernel log text (dmesg, journalctl -k, a serial
 * console), in order: "... out of memory: Killed process N (name)" and
 * "oom-kill:...,task=name,pid=N,...". One kill logs both lines: each pid is
 * listed once. With `sinceSeconds`, lines stamped earlier (the kernel's
 * "[seconds since boot]") are skipped: pids are reused, and an earlier test
 * in the same guest may have lost a process with this pid.
 */
export function oomKills(kernelLog: string, sinceSeconds: number | null = null): OomKill[] {
  const kills = new Map<number, OomKill & { killedLine: boolean }>();
  for (const raw of kernelLog.replace(/\r/g, "").split("\n")) {
    const stamp = /^\[\s*(\d+\.\d+)\]/.exec(raw);
    if (sinceSeconds !== null && stamp && Number(stamp[1]) < sinceSeconds) continue;
    const line = raw.replace(/^\[\s*[\d.]+\]\s*/, "").trim();
    const killed = /Killed process (\d+) \(([^)]*)\)/.exec(line);
    const summary = killed ? null : /oom-kill:(?:\S*,)?task=([^,]*),pid=(\d+)/.exec(line);
    if (!killed && !summary) continue;
    const pid = Number(killed ? killed[1] : summary![2]);
    const name = killed ? killed[2] : summary![1];
    const seen = kills.get(pid);
    if (!seen) kills.set(pid, { pid, name, line, killedLine: Boolean(killed) });
    else if (killed && !seen.killedLine) Object.assign(seen, { name, line, killedLine: true });
  }
  return [...kills.values()].map(({ pid, name, line }) => ({ pid, name, line }));
}

/** Pids of the picoshare processes the OOM killer ended (see oomKills). */
export function oomKilledPids(kernelLog: string, sinceSeconds: number | null = null): number[] {
  return oomKills(kernelLog, sinceSeconds).filter((k) => k.name === "picoshare").map((k) => k.pid);
}

/** An extended regular expression (grep -E) for the kernel log lines oomKilledPids reads. */
export const PICOSHARE_OOM_LINES = "Killed process [0-9]+ \\(picoshare\\)|oom-kill:.*task=picoshare,";

// The first name for a number wins (SIGABRT before SIGIOT, SIGIO before SIGPOLL).
const SIGNAL_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(osConstants.signals)) if (!SIGNAL_NAMES.has(n)) SIGNAL_NAMES.set(n, name);

/** "SIGKILL" for 9; "signal N" for a number without a name. */
export function signalName(n: number): string {
  return SIGNAL_NAMES.get(n) ?? `signal ${n}`;
}

/** A shell's wait status ($?): 128+n is signal n. */
export function waitStatusExit(status: number): ExitInfo {
  return status > 128 && SIGNAL_NAMES.has(status - 128) ? { code: null, signal: signalName(status - 128) } : { code: status, signal: null };
}

/** systemd's ExecMainCode (CLD_EXITED 1, CLD_KILLED 2, CLD_DUMPED 3) and ExecMainStatus as an ExitInfo. */
export function systemdExit(code: number, status: number): ExitInfo {
  if (code === 2 || code === 3) return { code: null, signal: signalName(status) };
  return { code: Number.isFinite(status) ? status : null, signal: null };
}

/**
 * A POSIX sh function, `mem`, that prints "m USED USED_WITH_CACHE" in KiB
 * (MemTotal - MemAvailable, MemTotal - MemFree), reading /proc/meminfo with
 * builtins only: a sampler that forks costs an emulated vCPU dearly.
 */
export const MEM_FN =
  "mem() { t=0; fr=0; a=0; while read -r k v _; do case $k in MemTotal:) t=$v;; MemFree:) fr=$v;; MemAvailable:) a=$v; break;; esac; done < /proc/meminfo; echo \"m $((t - a)) $((t - fr))\"; }";

export interface MemSample {
  /** MemTotal - MemAvailable, bytes: the guest's working set. */
  used: number;
  /** MemTotal - MemFree, bytes: page cache included. */
  usedWithCache: number;
}

/** One line of `mem`, in bytes; null for anything else. */
export function parseMemLine(line: string): MemSample | null {
  const parts = line.trim().split(/\s+/);
  if (parts[0] !== "m" || parts.length < 3) return null;
  const s = { used: Number(parts[1]) * 1024, usedWithCache: Number(parts[2]) * 1024 };
  return Number.isFinite(s.used) ? s : null;
}

/**
 * A bash function, `ctr PID`, that prints "c UTIME STIME MINFLT MAJFLT SYSCR
 * SYSCW READ_BYTES WRITE_BYTES CANCELLED_WRITE_BYTES" for a process (its
 * reaped children's CPU and faults included; CPU in USER_HZ ticks), from
 * /proc/PID/stat and /proc/PID/io with builtins only; nothing once it is gone.
 */
export const COUNTERS_FN = [
  "ctr() {",
  "  local p=$1 s k v r=0 w=0 rb=0 wb=0 cb=0",
  "  read -r s 2>/dev/null < /proc/$p/stat || return 0",
  '  s=${s##*) }; set -- $s',
  "  local mi=$(( $8 + $9 )) ma=$(( ${10} + ${11} )) ut=$(( ${12} + ${14} )) st=$(( ${13} + ${15} ))",
  "  while read -r k v; do case $k in syscr:) r=$v;; syscw:) w=$v;; read_bytes:) rb=$v;; write_bytes:) wb=$v;; cancelled_write_bytes:) cb=$v;; esac; done 2>/dev/null < /proc/$p/io || return 0",
  '  echo "c $ut $st $mi $ma $r $w $rb $wb $cb"',
  "}",
].join("\n");

/** One line of `ctr`, as the harness's process counters; null for anything else. */
export function parseCountersLine(line: string): CounterReading | null {
  const p = line.trim().split(/\s+/);
  if (p[0] !== "c" || p.length < 10) return null;
  const n = p.slice(1).map(Number);
  if (n.some((x) => !Number.isFinite(x))) return null;
  const [ut, st, mi, ma, r, w, rb, wb, cb] = n;
  return {
    userSeconds: ut / 100,
    systemSeconds: st / 100,
    minorFaults: mi,
    majorFaults: ma,
    readSyscalls: r,
    writeSyscalls: w,
    storageReadBytes: rb,
    storageWriteBytes: wb,
    cancelledWriteBytes: cb,
  };
}

/** A shell script that prints a data folder's file sizes ("s BYTES" each) and the multipart-* files in a temp folder ("t BYTES NAME" each). */
export function storageScript(dataDir: string, tmpDir: string): string {
  return `find ${shq(dataDir)} -type f -printf 's %s\\n'; find ${shq(tmpDir)} -maxdepth 1 -name 'multipart-*' -printf 't %s %f\\n'`;
}

/** What storageScript printed. */
export function parseStorage(out: string): StorageReading {
  let dataDirBytes = 0;
  let tempFiles = 0;
  let tempBytes = 0;
  for (const line of out.split("\n")) {
    if (line.startsWith("s ")) dataDirBytes += Number(line.slice(2)) || 0;
    else if (line.startsWith("t ")) {
      tempFiles++;
      tempBytes += Number(line.split(" ")[1]) || 0;
    }
  }
  return { facts: { data_dir_bytes: dataDirBytes, temp_files_left: tempFiles }, tempBytes };
}

/**
 * GOGC / GOMEMLIMIT / GODEBUG / GOMAXPROCS as the guest's process `pid`
 * received them (its /proc/PID/environ, read as root where `sudo` is given:
 * PicoShare may run as another user); null where it cannot be read.
 */
export async function guestGoRuntimeEnv(ssh: SshConnection, pid: number, sudo: string): Promise<GoRuntimeEnv | null> {
  const r = await ssh.exec(`${sudo}cat /proc/${pid}/environ`, { timeoutMs: 10_000 }).catch(() => null);
  return r && r.code === 0 && r.stdout ? goRuntimeEnvOf(r.stdout) : null;
}

/**
 * Copies PicoShare's database files (store.db and, where they exist, its WAL
 * and shared memory) as they are now from the guest folder `dataDir` into the
 * host folder `dest`; resolves with the database's path there. They go to a
 * private folder in the guest first, copied by root where `sudo` is given
 * (PicoShare may run as another user), handed to the ssh user, then scp'd.
 */
export async function fetchGuestDatabase(ssh: SshConnection, dataDir: string, sudo: string, dest: string): Promise<string> {
  const tmp = `/tmp/picoshare-perf-db-${randomBytes(6).toString("hex")}`;
  const d = shq(dataDir);
  const copy = [
    "set -e",
    `[ -e ${d}/store.db ] || { echo "no store.db in ${dataDir}" >&2; exit 1; }`,
    `mkdir -m 700 ${tmp}`,
    `for f in store.db store.db-wal store.db-shm; do if [ -e ${d}/$f ]; then cp ${d}/$f ${tmp}/; fi; done`,
    `chown -R "$1" ${tmp}`,
  ].join("\n");
  // "$(id -u)" is expanded by the ssh user's shell, before sudo.
  await ssh.run(`${sudo}sh -c ${shq(copy)} copy "$(id -u)"`, { what: "copy PicoShare's database in the VM", timeoutMs: 120_000 });
  try {
    await ssh.fetch(`${tmp}/store.db*`, dest);
  } finally {
    await ssh.exec(`rm -rf ${tmp}`, { timeoutMs: 30_000 }).catch(() => {});
  }
  return join(dest, "store.db");
}
