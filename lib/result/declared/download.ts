// The measured download of the entry after a successful upload (GET /-ID),
// with the same sampling and counters as the upload; all null with
// --no-download or when the upload failed. success and exit_reason stay the upload's.
import type { Counters } from "../../upload/counters.ts";
import type { ExitReason } from "../../upload/result.ts";
import { intOrNull, jsonOrNull, realOrNull, textOrNull } from "../field.ts";

export const DOWNLOAD_FIELDS = [
  realOrNull("download_duration_seconds", {
    doc: "the download of the entry (`GET /-ID`, streamed and hashed), on the same monotonic clock", unit: "s", phase: "download",
    source: "a monotonic clock in the harness", migration: 6, csv: "counters",
  }),
  realOrNull("download_throughput_mbps", {
    doc: "the file's MiB / `download_duration_seconds`", unit: "MiB/s", phase: "download", source: "derived", migration: 6, csv: "counters",
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
