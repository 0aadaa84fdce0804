// The test's identity and outcome: the original harness's fields (same names
// and types) with the file's exact size and the binary tested.
import type { BackendName } from "../../backends/types.ts";
import type { ExitReason } from "../../upload/result.ts";
import { MiB } from "../../core/sizes.ts";
import { bool, int, intOrNull, real, text, type AnyResult } from "../field.ts";

export const TEST_FIELDS = [
  intOrNull("run_id", {
    doc: "the results-log run this test belongs to (a matrix, a comparison's side); null for a lone run-test",
    phase: "test", source: "PERF_RUN_ID from the parent", migration: 0, sqlDecl: "INTEGER REFERENCES runs(id)",
  }),
  text()("timestamp", { doc: "when the test started, ISO 8601 local time with offset", phase: "setup", source: "the host clock", migration: 0 }),
  int("ram_mb", { doc: "the memory limit PicoShare ran under", unit: "MiB", phase: "setup", source: "--ram", migration: 0, csv: "matrix" }),
  text()("file_size", { doc: "the file's size as given (100M, 1G)", phase: "setup", source: "--file-size", migration: 0, csv: "matrix" }),
  real("file_size_mb", { doc: "the file's size in MiB (1G -> 1024)", unit: "MiB", phase: "setup", source: "--file-size", migration: 0 }),
  int("file_size_bytes", { doc: "the file's size in bytes", unit: "bytes", phase: "setup", source: "--file-size", migration: 0 }),
  real("duration_seconds", {
    doc: "the upload alone: from opening the connection to the complete response (with --concurrency N, to the last response)",
    unit: "s", phase: "upload", source: "a monotonic clock in the harness", migration: 0, csv: "matrix",
    summary: { label: "Duration (s)", digits: 2, key: "duration_seconds", scale: 1 },
    cell: { label: "upload duration", column: "Duration (s)", digits: 3, scale: 1, table: { rank: 2, column: "Duration (s)" } },
    shown: { key: "duration", name: "upload duration", unit: "s", scale: 1, digits: 3, from: "throughput" },
  }),
  real("throughput_mbps", {
    doc: "`file_size_mb / duration_seconds` (all N files' MiB with --concurrency N; 0 when the test failed)",
    unit: "MiB/s", phase: "upload", source: "derived from duration_seconds", migration: 0, csv: "matrix",
    summary: { label: "Throughput (MB/s)", digits: 2, key: "throughput_mbps", scale: 1 },
    cell: { label: "throughput", column: "Throughput (MB/s)", digits: 2, scale: 1, table: { rank: 1, column: "Throughput (MB/s)" } },
    compare: {
      key: "throughput", family: "primary", name: "throughput", unit: "MiB/s", higherIsBetter: true, higher: "faster", lower: "slower", scale: 1, digits: 2,
      wallClock: true,
      // Shown to 0.01 MiB/s, from a duration to the millisecond.
      resolution: (rs: AnyResult[]) => Math.max(0.01, ...rs.map((r) => (r.duration_seconds > 0 ? (r.throughput_mbps * 0.001) / r.duration_seconds : 0))),
    },
  }),
  int("initial_memory_bytes", {
    doc: "the working set after readiness and auth, before the upload", unit: "bytes", phase: "auth",
    source: "the backend's working set (cgroup usage less inactive file cache; a VM's MemTotal - MemAvailable)", migration: 0,
  }),
  int("peak_memory_bytes", {
    doc: "the highest working set sampled every 50 ms during the upload", unit: "bytes", phase: "upload",
    source: "the backend's working set, sampled", migration: 0,
    cell: { label: "peak memory", column: "Peak memory (MB)", digits: 1, scale: MiB, table: { rank: 3, column: "Peak (MB)" } },
    compare: {
      key: "peak_memory", family: "secondary", name: "peak memory (working set)", unit: "MiB", higherIsBetter: false, higher: "more memory", lower: "less memory",
      scale: MiB, digits: 1, resolution: () => 4096,
    },
  }),
  int("peak_memory_mb", {
    doc: "`peak_memory_bytes` in MiB", unit: "MiB", phase: "upload", source: "peak_memory_bytes", migration: 0, csv: "matrix",
    summary: { label: "Peak memory (MB)", digits: 0, key: "peak_memory_mb", scale: 1 },
  }),
  text()("http_status", { doc: "the upload's HTTP status (000: no response)", phase: "upload", source: "the response", migration: 0, csv: "matrix" }),
  text<ExitReason>()("exit_reason", {
    doc: "how the test ended: success, http_error, timeout, process_died, oom_killed, setup_failed, startup_failed, entry_missing, corrupt",
    phase: "upload", source: "the response, PicoShare's exit and the kernel's OOM count", migration: 0, csv: "matrix",
  }),
  bool("success", { doc: "the upload succeeded and its entry is served whole", phase: "verify", source: "exit_reason", migration: 0, csv: "matrix" }),
  text<BackendName>()("backend", { doc: "where PicoShare ran: local, qemu or vagrant", phase: "test", source: "--backend", migration: 0 }),
  text()("picoshare_version", {
    doc: "the binary tested (a build from source: the ref or folder given and `(COMMIT12)`, with ` dirty` for a modified tree; `(source) COMMIT12` when run-test was given the built binary by hand)", phase: "test",
    source: "the binary's build info; a parent's label for the binary it passed (PERF_PICOSHARE_LABEL, with its SHA-256)", migration: 0,
  }),
  text()("picoshare_sha256", { doc: "the SHA-256 of the binary tested", phase: "test", source: "the binary", migration: 0 }),
] as const;
