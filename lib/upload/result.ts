// The result record of one test: the original harness's JSON fields, same
// names and types, then this harness's extras. One schema for every script.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { BackendName } from "../backends/types.ts";
import type { HostFacts } from "./host.ts";
import type { Counters } from "./counters.ts";
import type { MemoryBreakdown, MemoryPressure } from "../backends/types.ts";
import type { GoRuntimeEnv } from "./provenance.ts";
import type { EnvironmentProbe } from "./noise.ts";
import type { ProxyFacts } from "./proxy.ts";

export const EXIT_REASONS = [
  "success",
  "http_error",
  "timeout",
  "process_died",
  "oom_killed",
  "setup_failed",
  "startup_failed",
  "entry_missing",
  "corrupt",
] as const;
export type ExitReason = (typeof EXIT_REASONS)[number];

/**
 * The exit_reason a matrix reports for a cell where run-test wrote no result
 * (it crashed, was killed, or refused with exit 2): never in a result file.
 */
export const HARNESS_ERROR = "harness_error";

/** Seconds spent in each phase of a test. */
export interface Phases {
  setup: number;
  readiness: number;
  auth: number;
  upload: number;
  /** The measured download after a successful upload (0 with --no-download). */
  download: number;
  verify: number;
  teardown: number;
}

/**
 * The kernel's counters of PicoShare's processes for the upload phase (from
 * the request's start to its response), what the upload left on disk, and
 * the whole test's counters; null where the backend cannot read them (the
 * VM backends have no cgroup to read anon, memory_at_peak and PSI from).
 * See docs/result-fields.md, "Kernel counters".
 */
export interface UploadCounters {
  cpu_user_seconds: number | null;
  cpu_system_seconds: number | null;
  /** All CPU time, exact where the cgroup accounts it (the user/system split is sampled per tick); else user + system. */
  cpu_seconds: number | null;
  /** What PicoShare's processes caused to be written to storage, counted as they dirtied it (write_bytes). */
  disk_write_bytes: number | null;
  /** Of those, bytes of files deleted before writeback (a spilled upload removed while still in the page cache). */
  disk_write_cancelled_bytes: number | null;
  disk_read_bytes: number | null;
  /** disk_write_bytes / the file's size. */
  write_amplification: number | null;
  write_syscalls: number | null;
  read_syscalls: number | null;
  major_faults: number | null;
  minor_faults: number | null;
  /** Instructions retired by PicoShare's processes (perf stat -e instructions -p); null where the host has no hardware counters, or the backend runs PicoShare in a VM. */
  instructions: number | null;
  /** PicoShare's data folder (database, WAL, shared memory) after the response. */
  data_dir_bytes: number | null;
  /** Go's multipart-* spill files left in PicoShare's TMPDIR after the response. */
  temp_files_left: number | null;
  /** The same counters from PicoShare's start to the end of the test (readiness, login, verify included). */
  test_counters: Counters | null;
  /** The highest anonymous memory (heap, stacks) sampled with the working set during the upload. */
  anon_peak_bytes: number | null;
  /** What the memory was made of at the sample where the working set peaked. */
  memory_at_peak: MemoryBreakdown | null;
  /** cgroup v2 PSI: seconds of the upload in which some / all of the cgroup's tasks waited for memory; null on v1. */
  memory_pressure: MemoryPressure | null;
}

/** A result without counters (a backend that has none; a record written before they existed). */
export const NO_COUNTERS: UploadCounters = {
  cpu_user_seconds: null, cpu_system_seconds: null, cpu_seconds: null, disk_write_bytes: null, disk_write_cancelled_bytes: null, disk_read_bytes: null, write_amplification: null,
  write_syscalls: null, read_syscalls: null, major_faults: null, minor_faults: null, instructions: null, data_dir_bytes: null, temp_files_left: null,
  test_counters: null,
  anon_peak_bytes: null,
  memory_at_peak: null,
  memory_pressure: null,
};

/** A result's provenance fields when nothing is known (a record written before they existed). */
export const NO_PROVENANCE = {
  picoshare_go_version: null, picoshare_source: null, picoshare_commit: null, picoshare_dirty: null,
  harness_commit: null, harness_dirty: null, go_runtime_env: null, cgroup_version: null,
  caches_dropped: false, environment_probe: null,
} satisfies Partial<TestResult>;

/**
 * The measured download of the entry after a successful upload (GET /-ID),
 * with the same sampling and counters as the upload; all null with
 * --no-download or when the upload failed. The test's success and
 * exit_reason stay the upload's.
 */
export interface DownloadFields {
  download_duration_seconds: number | null;
  download_throughput_mbps: number | null;
  /** The highest working set sampled during the download. */
  download_peak_memory_bytes: number | null;
  /** The kernel counters of PicoShare's processes for the download alone. */
  download_counters: Counters | null;
  /** How the download ended: success, or why not (oom_killed, timeout, process_died, http_error). */
  download_exit_reason: ExitReason | null;
  download_error: string | null;
}

export const NO_DOWNLOAD: DownloadFields = {
  download_duration_seconds: null, download_throughput_mbps: null, download_peak_memory_bytes: null,
  download_counters: null, download_exit_reason: null, download_error: null,
};

/** Recovery after a failed upload: PicoShare started again on the same data dir, under the same limit. */
export interface Recovery {
  /** PicoShare answered again after the restart. */
  started: boolean;
  /** PRAGMA integrity_check on a copy of the database as the failure left it: "ok", or the first problems it names; null when it could not be run. */
  integrity_check: string | null;
  /** The small entry uploaded before the big one is served whole (length and SHA-256) after the restart; null when there was none to check. */
  earlier_entry_intact: boolean | null;
  /** Go's multipart-* temp files, and their bytes, left in PicoShare's TMPDIR by the failed upload. */
  temp_files_left: number | null;
  temp_bytes_left: number | null;
  /** Seconds from the restart until PicoShare answered. */
  restart_seconds: number | null;
  /** What went wrong in the recovery itself; null when it all ran. */
  error: string | null;
}

/** Where the upload's time went, how many ran at once, what survived a failure, what stood in front. */
export interface UploadBreakdown {
  /** Seconds from the request's start to the end of the body's transfer (see upload_transfer_end). */
  upload_transfer_seconds: number | null;
  /** Seconds from the end of the transfer to the response: PicoShare storing the upload ("Processing..."). */
  upload_processing_seconds: number | null;
  /**
   * How the end of the transfer was found: "server" (PicoShare's multipart
   * temp files had received the whole file, polled every 10 ms), "client"
   * (the last byte handed to the socket: early by what the socket buffers
   * and a VM's port forward hold); null when the upload failed before the end.
   */
  upload_transfer_end: "server" | "client" | null;
  /** Seconds from the request's start until its last byte was handed to the socket (the client's view of the end, kept beside the server's to show the difference). */
  upload_body_sent_seconds: number | null;
  /** Uploads of the file started together on as many connections (--concurrency; 1 by default). */
  concurrency: number;
  /** Each upload's seconds from its start to its response, in start order. */
  upload_durations_seconds: number[];
  /** Each upload's entry id (null for one that got none), in start order. */
  entry_ids: (string | null)[];
  /** The memory timeline (CSV) saved beside the result; null when none was taken. */
  timeline_file: string | null;
  /** After an oom_killed, timeout or process_died: what a restart on the same data found; null otherwise. */
  recovery: Recovery | null;
  /** The reverse proxy the upload went through (--proxy), its settings and what it used; null without one. */
  proxy: ProxyFacts | null;
}

/** A result without the breakdown fields (a record written before they existed). */
export const NO_BREAKDOWN: UploadBreakdown = {
  upload_transfer_seconds: null, upload_processing_seconds: null, upload_transfer_end: null, upload_body_sent_seconds: null, concurrency: 1,
  upload_durations_seconds: [], entry_ids: [], timeline_file: null, recovery: null, proxy: null,
};

export interface TestResult extends UploadCounters, DownloadFields, UploadBreakdown {
  // The original harness's fields.
  timestamp: string;
  ram_mb: number;
  file_size: string;
  file_size_mb: number;
  duration_seconds: number;
  throughput_mbps: number;
  initial_memory_bytes: number;
  peak_memory_bytes: number;
  peak_memory_mb: number;
  http_status: string;
  exit_reason: ExitReason;
  success: boolean;
  // Extras.
  backend: BackendName;
  file_size_bytes: number;
  picoshare_version: string;
  picoshare_sha256: string;
  /** The Go release PicoShare was built with (its build info); null where unknown. */
  picoshare_go_version: string | null;
  /** A build from source: the source tree, with "@REF" when a ref was built; null otherwise. */
  picoshare_source: string | null;
  /** A build from source: the commit built (a working tree: its HEAD); null otherwise or outside git. */
  picoshare_commit: string | null;
  /** A build from source of a working tree that differs from its HEAD; null when not built from git. */
  picoshare_dirty: boolean | null;
  /** The harness's own git commit, and whether its tracked files were modified; null outside git. */
  harness_commit: string | null;
  harness_dirty: boolean | null;
  /** GOGC / GOMEMLIMIT / GODEBUG / GOMAXPROCS as PicoShare ran with them (null: unset). */
  go_runtime_env: GoRuntimeEnv | null;
  /** The cgroup version that held PicoShare ("1", "2"); null where a VM's memory is the limit. */
  cgroup_version: string | null;
  /** --drop-caches: the host's page cache was synced and dropped just before this test. */
  caches_dropped: boolean;
  /** The host probed just before this test (an fsync'd disk write, a CPU loop); null before probes existed. */
  environment_probe: EnvironmentProbe | null;
  /** The kernel's high-water mark for the environment, page cache included. */
  kernel_peak_memory_bytes: number | null;
  /** PicoShare's own peak resident set (VmHWM). */
  picoshare_peak_rss_bytes: number | null;
  /** The harness's own peak resident set while it ran the test. */
  harness_peak_rss_bytes: number;
  memory_samples: number;
  memory_sample_interval_ms: number;
  oom_kills: number;
  entry_id: string | null;
  /** true/false when --verify compared the download with the file; null when not asked. */
  verified: boolean | null;
  /** What went wrong, in a sentence; null on success. */
  error: string | null;
  phases: Phases;
  backend_settings: Record<string, string | number | boolean | null>;
  host: HostFacts;
  /** PicoShare's own output, saved beside the result. */
  log_file: string | null;
  /** The matrix run this test belongs to, or null for a lone run-test. */
  run_id: number | null;
  /**
   * Which of a series of repeated tests this is, 1-based, warm-ups first:
   * warm-ups are 1..W, measured runs W+1..W+N; a lone test is 1.
   */
  iteration: number;
  /** A warm-up run: written and recorded, never counted in statistics, CSV rows or pass/fail. */
  warmup: boolean;
}

/** A result's iteration; 1 for a record written before iterations existed. */
export function iterationOf(r: Pick<TestResult, "iteration">): number {
  return Number.isInteger(r.iteration) && r.iteration >= 1 ? r.iteration : 1;
}

/** Whether a result is a warm-up run (false for a record written before warm-ups existed). */
export function isWarmup(r: Pick<TestResult, "warmup">): boolean {
  return r.warmup === true;
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, "0");
}

/** ISO 8601 local time with offset, as the original wrote (2026-01-29T12:00:00+00:00). */
export function isoTimestamp(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` +
    `${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`
  );
}

/** YYYYMMDD-HHMMSS, as in result and matrix folder names. */
export function fileStamp(d: Date): string {
  return (
    `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-` +
    `${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`
  );
}

/** `stem`, or `stem-2`, `stem-3`... : the first for which no file `names(stem)` exists in `dir`. */
export function freeStem(dir: string, stem: string, names: (stem: string) => string[]): string {
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? stem : `${stem}-${n}`;
    if (!names(candidate).some((name) => existsSync(join(dir, name)))) return candidate;
  }
}
