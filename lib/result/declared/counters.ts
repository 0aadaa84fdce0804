// The kernel's counters of PicoShare's processes for the upload phase (from
// the request's start to its response), what the upload left on disk, the
// whole test's counters, and what the memory was made of. Null where the
// backend cannot read them (a VM has no cgroup for anon, memory_at_peak, PSI).
import type { Counters } from "../../upload/counters.ts";
import type { MemoryBreakdown, MemoryPressure } from "../../backends/types.ts";
import { MiB } from "../../core/sizes.ts";
import { intOrNull, jsonOrNull, realOrNull, type AnyResult } from "../field.ts";

const PROC = "`/proc/PID/io` of every process in the test's cgroup, summed";
/** A count compare tests: secondary, lower is better, in steps of 1. */
export const count = (key: string, name: string, higher: string, lower: string) =>
  ({ key, family: "secondary", name, unit: "", higherIsBetter: false, higher, lower, scale: 1, digits: 0, resolution: () => 1 }) as const;

/** The step of a CPU account: process ticks are 10 ms; a cgroup's account is in microseconds or nanoseconds. */
export const cpuResolution = (rs: AnyResult[]) => (rs.some((r) => r.backend_settings?.cpu_source === "process ticks") ? 0.01 : 1e-6);

export const COUNTER_FIELDS = [
  realOrNull("cpu_user_seconds", {
    doc: "CPU time in user mode during the upload", unit: "s", phase: "upload", migration: 4, csv: "counters",
    source:
      "the test cgroup's own CPU account, which keeps what an ended process used: v2 `cpu.stat` `user_usec` (there without the cpu controller), v1 a `cpuacct` " +
      "cgroup of the same name beside the memory one (`cpuacct.usage_user`, or `cpuacct.stat`); where neither can be had, `/proc/PID/stat` utime in 10 ms ticks. " +
      "`backend_settings.cpu_source` says which (`cpu.stat`, `cpuacct`, `process ticks`)",
  }),
  realOrNull("cpu_system_seconds", {
    doc: "CPU time in the kernel during the upload", unit: "s", phase: "upload", migration: 4, csv: "counters",
    source: "as cpu_user_seconds (system_usec, `cpuacct.usage_sys`, stime)",
  }),
  realOrNull("cpu_seconds", {
    doc: "all CPU time of the upload, exact where the cgroup accounts it (the user/system split is sampled per tick); else user + system",
    unit: "s", phase: "upload", source: "v2 `cpu.stat` usage_usec, v1 `cpuacct.usage`", migration: 5, csv: "counters",
    compare: {
      key: "cpu_seconds", family: "primary", name: "CPU seconds", unit: "s", higherIsBetter: false, higher: "more CPU", lower: "less CPU", scale: 1, digits: 3,
      // On a shared VM CPU time follows wall time (steal, cache contention).
      wallClock: true,
      // The exact total where recorded; a record from before it: user + system.
      value: (r: AnyResult) =>
        typeof r.cpu_seconds === "number"
          ? r.cpu_seconds
          : typeof r.cpu_user_seconds === "number" && typeof r.cpu_system_seconds === "number" ? r.cpu_user_seconds + r.cpu_system_seconds : null,
      resolution: cpuResolution,
    },
  }),
  intOrNull("disk_write_bytes", {
    doc: "bytes PicoShare's processes caused to be written to storage, counted when they dirtied the pages (so also on cgroup v1, whose blkio never sees buffered writeback)",
    unit: "bytes",
    phase: "upload", source: `\`write_bytes\` of ${PROC}`, migration: 4, csv: "counters",
    compare: {
      key: "disk_write_bytes", family: "primary", name: "disk bytes written", unit: "MiB", higherIsBetter: false, higher: "writes more", lower: "writes less",
      scale: MiB, digits: 2, resolution: () => 4096, // counted per page dirtied
    },
  }),
  intOrNull("disk_write_cancelled_bytes", {
    doc: "of those, bytes of files deleted before writeback (the spilled upload removed while still in the page cache; varies with writeback timing)",
    unit: "bytes", phase: "upload", source: `\`cancelled_write_bytes\` of ${PROC}`, migration: 4, csv: "counters",
  }),
  intOrNull("disk_read_bytes", {
    doc: "bytes read from storage (page-cache hits are not in it)", unit: "bytes", phase: "upload", source: `\`read_bytes\` of ${PROC}`, migration: 4, csv: "counters",
  }),
  realOrNull("write_amplification", {
    doc: "`disk_write_bytes` / the file's size (about 3.0 for v1.5.4: the multipart temp file, then the database and its WAL)", unit: "x",
    phase: "upload", source: "derived", migration: 4, csv: "counters",
    shown: { key: "write_amplification", name: "write amplification", unit: "x", scale: 1, digits: 3, from: "disk bytes written" },
  }),
  intOrNull("anon_peak_bytes", {
    doc: "the highest anonymous memory of the cgroup (heap, stacks), sampled with the working set", unit: "bytes", phase: "upload",
    source: "v1 `total_rss`, v2 `anon` in `memory.stat`", migration: 4,
    summary: { label: "Anon peak (MB)", digits: 0, key: "anon_peak_mb", scale: MiB },
    cell: { label: "anon peak", column: "Anon peak (MB)", digits: 1, scale: MiB },
    compare: {
      key: "anon_peak", family: "secondary", name: "anon peak", unit: "MiB", higherIsBetter: false, higher: "more memory", lower: "less memory",
      scale: MiB, digits: 1, resolution: () => 4096,
    },
  }),
  intOrNull("write_syscalls", {
    doc: "write-class system calls during the upload", phase: "upload", source: `\`syscw\` of ${PROC}`, migration: 4, csv: "counters",
    compare: count("write_syscalls", "write syscalls", "more write calls", "fewer write calls"),
  }),
  intOrNull("read_syscalls", {
    doc: "read-class system calls during the upload", phase: "upload", source: `\`syscr\` of ${PROC}`, migration: 4, csv: "counters",
    compare: count("read_syscalls", "read syscalls", "more read calls", "fewer read calls"),
  }),
  intOrNull("instructions", {
    doc:
      "instructions retired by PicoShare's processes during the upload (local backend only); null where the host has no hardware performance counters " +
      "(`perf stat -e instructions` says `<not supported>`: this kind of machine, most VMs and containers; the log says so once per run-test)",
    phase: "upload", source: "`perf stat -x, -e instructions -p PIDS` (Debian's `linux-perf`), started at the request and stopped with SIGINT at the response",
    migration: 5, csv: "counters",
    compare: count("instructions", "instructions", "more instructions", "fewer instructions"),
  }),
  intOrNull("major_faults", {
    doc: "major page faults during the upload", phase: "upload", source: "`majflt` of `/proc/PID/stat`", migration: 4, csv: "counters",
    compare: count("major_faults", "major faults", "more faults", "fewer faults"),
  }),
  intOrNull("minor_faults", {
    doc: "minor page faults during the upload", phase: "upload", source: "`minflt` of `/proc/PID/stat`", migration: 4, csv: "counters",
    compare: count("minor_faults", "minor faults", "more faults", "fewer faults"),
  }),
  intOrNull("data_dir_bytes", {
    doc: "PicoShare's data folder (`store.db`, `-wal`, `-shm`) after the response", unit: "bytes", phase: "upload",
    source: "the backend's storage reading", reading: "storage", migration: 4, csv: "counters",
  }),
  intOrNull("temp_files_left", {
    doc: "Go's `multipart-*` spill files still in PicoShare's TMPDIR after the response", phase: "upload",
    source: "the backend's storage reading", reading: "storage", migration: 4, csv: "counters",
  }),
  jsonOrNull<Counters>()("test_counters", {
    doc: "the same counters (without the last three) from PicoShare's start to the end of the test: readiness, login and --verify included",
    phase: "teardown", source: "as the upload's", migration: 4,
  }),
  jsonOrNull<MemoryBreakdown>()("memory_at_peak", {
    doc: "`anon`, `file`, `active_file`, `shmem`, `kernel`, `sock` at the sample where the working set peaked: PicoShare's own memory against the page cache",
    unit: "bytes", phase: "upload", source: "`memory.stat` (v1: `total_*`, kernel and sockets from `memory.kmem.*`)", migration: 4,
  }),
  jsonOrNull<MemoryPressure>()("memory_pressure", {
    doc: "cgroup v2 only: `some_seconds` / `full_seconds`, how long some / all of the test's tasks stalled waiting for memory during the upload; near the floor it grows before an OOM kill",
    unit: "s", phase: "upload", source: "the growth of `memory.pressure` totals", migration: 4,
  }),
] as const;
