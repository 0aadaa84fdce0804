// The measured download of the entry after a successful upload (GET /-ID),
// with the same sampling and counters as the upload; all null with
// --no-download or when the upload failed. success and exit_reason stay the upload's.
// Its throughput, CPU seconds and peak RSS are compared (secondary: see `secondary`).
import type { Counters } from "../../upload/counters.ts";
import type { ExitReason } from "../../upload/result.ts";
import { MiB } from "../../core/sizes.ts";
import { intOrNull, jsonOrNull, realOrNull, textOrNull, type AnyResult } from "../field.ts";
import { cpuResolution } from "./counters.ts";

/**
 * A download or request metric compare tests: secondary, each verdict on its
 * own, so that the upload's primary family (Holm-corrected together) keeps
 * its power; the gate and the exports take it by key all the same.
 */
export const secondary = (key: string, name: string, unit: string, scale: number, digits: number) => ({ key, family: "secondary", name, unit, scale, digits }) as const;

export const DOWNLOAD_FIELDS = [
  realOrNull("download_duration_seconds", {
    doc: "the download of the entry (`GET /-ID`, streamed and hashed), on the same monotonic clock", unit: "s", phase: "download",
    source: "a monotonic clock in the harness", migration: 6, csv: "counters",
  }),
  realOrNull("download_throughput_mbps", {
    doc: "the file's MiB / `download_duration_seconds`", unit: "MiB/s", phase: "download", source: "derived", migration: 6, csv: "counters",
    compare: {
      ...secondary("download_throughput", "download throughput", "MiB/s", 1, 2), higherIsBetter: true, higher: "downloads faster", lower: "downloads slower",
      // Shown to 0.01 MiB/s, from a duration to the millisecond.
      resolution: (rs: AnyResult[]) =>
        Math.max(0.01, ...rs.map((r) => (r.download_duration_seconds > 0 ? (r.download_throughput_mbps * 0.001) / r.download_duration_seconds : 0))),
    },
  }),
  realOrNull("download_cpu_seconds", {
    doc: "all CPU time of PicoShare's processes during the download (`download_counters.cpu_seconds`: the cgroup's exact account where it has one)",
    unit: "s", phase: "download", source: "as cpu_seconds, read before and after the download", migration: 10, csv: "counters",
    compare: {
      ...secondary("download_cpu_seconds", "download CPU seconds", "s", 1, 3), higherIsBetter: false, higher: "more CPU", lower: "less CPU",
      // A record from before the field: its download counters.
      value: (r: AnyResult) => (typeof r.download_cpu_seconds === "number" ? r.download_cpu_seconds : (r.download_counters?.cpu_seconds ?? null)),
      resolution: cpuResolution,
    },
  }),
  intOrNull("download_peak_rss_bytes", {
    doc: "PicoShare's peak resident set during the download alone: its high-water mark is reset to its resident set just before the request " +
      "(`picoshare_peak_rss_bytes` is the upload's, read at its response); null where it cannot be reset",
    unit: "bytes", phase: "download", source: "`VmHWM` in `/proc/PID/status` after writing 5 to `/proc/PID/clear_refs`", migration: 10, csv: "counters",
    compare: {
      ...secondary("download_peak_rss", "download peak RSS", "MiB", MiB, 1), higherIsBetter: false, higher: "more memory", lower: "less memory",
      resolution: () => 1024, // VmHWM is in kB
    },
  }),
  intOrNull("download_peak_memory_bytes", {
    doc: "the highest working set sampled every 50 ms during the download", unit: "bytes", phase: "download",
    source: "the backend's working set, sampled", migration: 6, csv: "counters",
  }),
  jsonOrNull<Counters>()("download_counters", {
    doc: "the kernel counters of PicoShare's processes for the download alone (as `test_counters`)", phase: "download",
    source: "as the upload's", migration: 6,
  }),
  textOrNull<ExitReason>()("download_exit_reason", {
    doc: "how the download ended: success, oom_killed, timeout, process_died, http_error", phase: "download",
    source: "the response and PicoShare's exit", migration: 6, csv: "counters",
  }),
  textOrNull()("download_error", { doc: "what went wrong in the download; null when it succeeded", phase: "download", source: "the harness", migration: 6 }),
] as const;
