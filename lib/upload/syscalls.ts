// System calls by kind of PicoShare's processes during a phase: perf's
// raw_syscalls:sys_enter tracepoint, once per kind with a filter on the
// call's number, counted with perf-events.ts's mechanism. (One
// syscalls:sys_enter_NAME event per call was the first way: the same counts,
// but perf took 0.53 s to exit with its 14 events against 0.02-0.04 s with 3.) The tracepoints need tracefs, which many hosts do not mount;
// perf would mount it itself, on the host. So perf runs in a private mount
// namespace, where tracefs is mounted when missing: the host's mounts stay as
// they were. Where no count can be had (no perf, no root for the namespace,
// PicoShare in a VM), the counts are null and the log says why, once.
import type { TestEnvironment } from "../backends/types.ts";
import { log } from "../core/log.ts";
import { $ } from "../core/shell.ts";
import { machine } from "node:os";
import type { SyscallFields } from "../result/fields.ts";
import { countEvents, parsePerfStatAll, perfEventArgs, type PerfEvent } from "./perf-events.ts";

/**
 * The calls of each kind. fsync: what makes written data durable. write /
 * read: the calls that move a buffer to or from a descriptor (file, socket,
 * pipe): what /proc/PID/io's syscw / syscr count, less sendfile and
 * copy_file_range, which PicoShare does not use.
 */
export const SYSCALL_KINDS = {
  fsync: ["fsync", "fdatasync", "sync_file_range", "msync"],
  write: ["write", "pwrite64", "writev", "pwritev", "pwritev2"],
  read: ["read", "pread64", "readv", "preadv", "preadv2"],
} as const;

export type SyscallKind = keyof typeof SYSCALL_KINDS;
export type SyscallCounts = Record<SyscallKind, number>;

/** The result's syscalls_source where they were counted. */
export const SYSCALLS_SOURCE = "perf tracepoints";

const TRACEFS = "/sys/kernel/tracing";
/**
 * The calls' numbers, from the kernel's syscall tables (x86_64:
 * arch/x86/entry/syscalls/syscall_64.tbl; arm64: include/uapi/asm-generic/unistd.h).
 */
const SYSCALL_NUMBERS: Record<string, Record<string, number>> = {
  x86_64: {
    read: 0, write: 1, pread64: 17, pwrite64: 18, readv: 19, writev: 20, msync: 26, fsync: 74, fdatasync: 75,
    sync_file_range: 277, preadv: 295, pwritev: 296, preadv2: 327, pwritev2: 328,
  },
  aarch64: {
    read: 63, write: 64, readv: 65, writev: 66, pread64: 67, pwrite64: 68, preadv: 69, pwritev: 70, fsync: 82, fdatasync: 83,
    sync_file_range: 84, msync: 227, preadv2: 286, pwritev2: 287,
  },
};
const NUMBERS = SYSCALL_NUMBERS[machine()];
/** One raw_syscalls:sys_enter per kind, filtered to the kind's calls. */
const EVENTS: PerfEvent[] = NUMBERS
  ? (Object.keys(SYSCALL_KINDS) as SyscallKind[]).map((kind) => ({
      key: kind,
      event: "raw_syscalls:sys_enter",
      filter: SYSCALL_KINDS[kind].map((n) => `id == ${NUMBERS[n]}`).join(" || "),
    }))
  : [];
/** perf's command prefix: a private mount namespace (nothing mounted in it reaches the host), tracefs mounted there if missing. */
const PRIVATE_TRACEFS = ["unshare", "--mount", "--propagation", "private", "sh", "-c", `mountpoint -q ${TRACEFS} || mount -t tracefs tracefs ${TRACEFS}; exec "$@"`, "sh"];

let support: Promise<string | null> | null = null;

/** Why syscalls cannot be counted here (no perf, no root, no tracepoints), or null when they can: asked once per process. */
export function syscallsUnavailable(): Promise<string | null> {
  support ??= (async () => {
    if (!NUMBERS) return `no table of system call numbers for this machine (${machine()}; known: ${Object.keys(SYSCALL_NUMBERS).join(", ")})`;
    const r = await $`${PRIVATE_TRACEFS} perf stat -x, ${perfEventArgs(EVENTS)} -- true`.nothrow();
    const last = r.stderr.trim().split("\n").pop() || `exit ${r.exitCode}`;
    if (/failed to execute perf|perf: not found/i.test(r.stderr) || r.exitCode === 127) return `perf is not installed (apt-get install linux-perf): ${last}`;
    if (/unshare failed|Operation not permitted|mount: .*(permission|only root)/i.test(r.stderr)) {
      return `a private mount namespace for tracefs needs root (${last})`;
    }
    if (parsePerfStatAll(r.stderr, EVENTS.map((e) => e.event)).some((v) => v === null)) return `perf cannot count syscall tracepoints here (${last})`;
    return null;
  })();
  return support;
}

/** A running count of each kind; stop() gives the counts, or null when perf gave none. */
export interface SyscallCount {
  stop(): Promise<SyscallCounts | null>;
}

let said = false;

/** Starts counting the syscalls of PicoShare's processes (counting when it returns), or null (said once in the log) where they cannot be. */
export async function countSyscalls(env: TestEnvironment): Promise<SyscallCount | null> {
  const why = !env.processIds ? "PicoShare's processes are not on this host (a VM backend): perf cannot see them" : await syscallsUnavailable();
  const pids = env.processIds?.() ?? [];
  if (why !== null || pids.length === 0) {
    if (!said) log(`Syscalls: not counted: ${why ?? "no process of PicoShare's found"}; the results' *_fsync_calls, *_write_calls, *_read_calls are null`);
    said = true;
    return null;
  }
  const counts = await countEvents(pids, EVENTS, PRIVATE_TRACEFS);
  return {
    async stop() {
      const got = await counts.stop();
      if (!got || Object.values(got).some((v) => v === null)) return null;
      return { fsync: got.fsync!, write: got.write!, read: got.read! };
    },
  };
}

/** The result's syscall fields from the upload's and the download's counts (null: not counted). */
export function syscallFields(upload: SyscallCounts | null, download: SyscallCounts | null): SyscallFields {
  return {
    syscalls_source: upload || download ? SYSCALLS_SOURCE : null,
    upload_fsync_calls: upload?.fsync ?? null,
    upload_write_calls: upload?.write ?? null,
    upload_read_calls: upload?.read ?? null,
    download_fsync_calls: download?.fsync ?? null,
    download_write_calls: download?.write ?? null,
    download_read_calls: download?.read ?? null,
  };
}
