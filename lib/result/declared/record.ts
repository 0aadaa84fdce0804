// Memory beyond the working set, the test's record (entry, verification,
// error, phase times, backend and host facts, log) and its place in a series.
import type { HostFacts } from "../../upload/host.ts";
import type { Phases } from "../../upload/result.ts";
import { MiB } from "../../core/sizes.ts";
import { bool, boolOrNull, int, intOrNull, json, textOrNull } from "../field.ts";

export const RECORD_FIELDS = [
  intOrNull("kernel_peak_memory_bytes", {
    doc: "the kernel's own high-water mark for the environment, page cache included, since it was made", unit: "bytes", phase: "upload",
    source: "cgroup v1 `memory.max_usage_in_bytes`, v2 `memory.peak`", migration: 0,
  }),
  intOrNull("picoshare_peak_rss_bytes", {
    doc: "PicoShare's own peak resident set from its start to the upload's response: what its code holds, page cache left out " +
      "(the download's is `download_peak_rss_bytes`); on vagrant, whose readings come at the end, the whole test's",
    unit: "bytes", phase: "upload",
    source: "`VmHWM` in `/proc/PID/status`, read at the upload's response (vagrant: at the end)", migration: 0, csv: "counters",
    summary: { label: "PicoShare RSS (MB)", digits: 0, key: "picoshare_peak_rss_mb", scale: MiB },
    cell: { label: "PicoShare peak RSS", column: "PicoShare RSS (MB)", digits: 1, scale: MiB, table: { rank: 4, column: "PicoShare RSS (MB)" } },
    compare: {
      key: "picoshare_peak_rss", family: "primary", name: "PicoShare peak RSS", unit: "MiB", higherIsBetter: false, higher: "more memory", lower: "less memory",
      scale: MiB, digits: 1, resolution: () => 1024, // VmHWM is in kB
    },
  }),
  int("harness_peak_rss_bytes", {
    doc: "the harness's own peak resident set while it ran the test (it stays flat: 78 MiB for a 1G upload)", unit: "bytes", phase: "teardown",
    source: "the harness's `/proc/self/status` VmHWM", migration: 0,
  }),
  int("memory_samples", { doc: "working-set samples taken during the upload", phase: "upload", source: "the memory monitor", migration: 0 }),
  int("memory_sample_interval_ms", {
    doc: "the interval the working set was sampled at (qemu's guest under TCG keeps its own, 100 ms)", unit: "ms", phase: "upload",
    source: "the backend's memory monitor, as it sampled", migration: 0,
  }),
  int("oom_kills", { doc: "OOM kills in the environment", phase: "upload", source: "cgroup `memory.oom_control` / `memory.events`; a VM's kernel log", migration: 0 }),
  textOrNull()("entry_id", { doc: "the uploaded entry's id (the first upload's with --concurrency)", phase: "upload", source: "the response", migration: 0 }),
  boolOrNull("verified", {
    doc: "--verify: whether the download's SHA-256 matched the file; null when not asked", phase: "verify", source: "`GET /-ID`, hashed", migration: 0,
  }),
  textOrNull()("error", { doc: "what went wrong, in a sentence; null on success", phase: "upload", source: "the harness", migration: 0 }),
  json<Phases>()("phases", {
    doc: "seconds in setup, readiness, auth, upload, download, verify, requests, teardown", unit: "s", phase: "test", source: "a monotonic clock per phase", migration: 0,
  }),
  json<Record<string, string | number | boolean | null>>()("backend_settings", {
    doc: "what describes the environment: cgroup path and version, the CPU account's source, a VM's box and settings", phase: "setup",
    source: "the backend", migration: 0,
  }),
  json<HostFacts>()("host", {
    doc: "kernel, CPU, governor, memory, load, whether the data dir's disk is rotational", phase: "setup", source: "/proc and /sys of the host", migration: 0,
  }),
  textOrNull()("log_file", { doc: "PicoShare's own output, saved beside the result", phase: "teardown", source: "the backend", migration: 0 }),
  int("iteration", {
    doc: "which of a cell's repeated tests this is, 1-based, warm-ups first", phase: "test", source: "--iterations, --warmup, PERF_ITERATION",
    migration: 3, missing: 1,
  }),
  bool("warmup", {
    doc: "a warm-up run: written and recorded, never counted in statistics, CSV rows or pass/fail", phase: "test", source: "--warmup, PERF_WARMUP",
    migration: 3, missing: false,
  }),
] as const;
