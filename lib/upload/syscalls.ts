// System calls by kind of PicoShare's processes during a phase: perf's
// syscall tracepoints (syscalls:sys_enter_*), counted with perf-events.ts's
// mechanism. The tracepoints need tracefs, which many hosts do not mount;
// perf would mount it itself, on the host. So perf runs in a private mount
// namespace, where tracefs is mounted when missing: the host's mounts stay as
// they were. Where no count can be had (no perf, no root for the namespace,
// PicoShare in a VM), the counts are null and the log says why, once.
import type { TestEnvironment } from "../backends/types.ts";
import { log } from "../core/log.ts";
import { $ } from "../core/shell.ts";
import type { SyscallFields } from "../result/fields.ts";
import { countEvents, parsePerfStat } from "./perf-events.ts";

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
const EVENTS = Object.values(SYSCALL_KINDS).flatMap((names) => names.map((n) => `syscalls:sys_enter_${n}`));
/** perf's command prefix: a private mount namespace (nothing mounted in it reaches the host), tracefs mounted there if missing. */
const PRIVATE_TRACEFS = ["unshare", "--mount", "--propagation", "private", "sh", "-c", `mountpoint -q ${TRACEFS} || mount -t tracefs tracefs ${TRACEFS}; exec "$@"`, "sh"];

let support: Promise<string | null> | null = null;

/** Why syscalls cannot be counted here (no perf, no root, no tracepoints), or null when they can: asked once per process. */
export function syscallsUnavailable(): Promise<string | null> {
  support ??= (async () => {
    const r = await $`${PRIVATE_TRACEFS} perf stat -x, -e ${EVENTS.join(",")} -- true`.nothrow();
    const last = r.stderr.trim().split("\n").pop() || `exit ${r.exitCode}`;
    if (/failed to execute perf|perf: not found/i.test(r.stderr) || r.exitCode === 127) return `perf is not installed (apt-get install linux-perf): ${last}`;
    if (/unshare failed|Operation not permitted|mount: .*(permission|only root)/i.test(r.stderr)) {
      return `a private mount namespace for tracefs needs root (${last})`;
    }
    if (parsePerfStat(r.stderr, EVENTS[0]) === null) return `perf cannot count syscall tracepoints here (${last})`;
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
      const sum = (kind: SyscallKind) => SYSCALL_KINDS[kind].reduce((a, n) => a + got[`syscalls:sys_enter_${n}`]!, 0);
      return { fsync: sum("fsync"), write: sum("write"), read: sum("read") };
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
