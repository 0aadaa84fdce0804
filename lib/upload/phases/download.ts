// Download: the entry read back after a successful upload, measured as the
// upload is (the working set sampled, the counters read around it). Its
// failure is recorded in its fields, not the test's: the test's outcome
// stays the upload's.
import type { MemoryPoint, TestEnvironment } from "../../backends/types.ts";
import { interruptSignal, interrupted } from "../../core/cleanup.ts";
import { errorMessage } from "../../core/errors.ts";
import { MiB } from "../../core/sizes.ts";
import { downloadSha256 } from "../api.ts";
import { counterDelta } from "../counters.ts";
import { NO_DOWNLOAD, type DownloadFields, type ExitReason } from "../result.ts";
import type { TestOptions } from "../runner.ts";
import { isRunning } from "../session.ts";
import { countSyscalls, type SyscallCounts } from "../syscalls.ts";
import { SAMPLE_INTERVAL_MS, attempt, optional, round, secondsSince, type Outcome } from "./common.ts";

export interface DownloadFigures extends Outcome {
  /** The phase's time, the readings around the download included. */
  seconds: number;
  /** The result's download_* fields. */
  fields: DownloadFields;
  /** What came back: its SHA-256 (null: nothing did) and length, for --verify. */
  sha256: string | null;
  bytes: number;
  /** System calls by kind of PicoShare's processes during the download (perf); null where they cannot be counted. */
  syscalls: SyscallCounts | null;
  /** The monitor's samples, and the moment the download began (performance.now()), for the timeline. */
  points: MemoryPoint[];
  start: number | null;
}

export async function download(env: TestEnvironment, baseUrl: string, cookie: string, id: string, opts: TestOptions): Promise<DownloadFigures> {
  const t0 = performance.now();
  let measured: Omit<DownloadFigures, "seconds" | "failure"> | null = null;
  const failure = await attempt(async () => {
    measured = await measure(env, baseUrl, cookie, id, opts);
  });
  const m = measured as Omit<DownloadFigures, "seconds" | "failure"> | null;
  return {
    seconds: secondsSince(t0), fields: m?.fields ?? NO_DOWNLOAD, sha256: m?.sha256 ?? null, bytes: m?.bytes ?? 0, syscalls: m?.syscalls ?? null, points: m?.points ?? [], start: m?.start ?? null,
    failure,
  };
}

async function measure(env: TestEnvironment, baseUrl: string, cookie: string, id: string, opts: TestOptions): Promise<Omit<DownloadFigures, "seconds" | "failure">> {
  // The peak so far kept, the mark reset: the reading after the download is its own.
  const rssBefore = await optional(() => env.resetPeakRss?.());
  const before = await optional(() => env.counters?.());
  const oomsBefore = await env.oomKills().catch(() => 0);
  const syscalls = await countSyscalls(env);
  const timeout = AbortSignal.timeout(opts.timeoutSec * 1000);
  // Before the monitor: its first sample is the download's.
  await opts.instrument?.probe.start("download", env);
  const start = performance.now();
  const monitor = env.monitorMemory(SAMPLE_INTERVAL_MS);
  const t0 = performance.now();
  let reason: ExitReason = "success";
  let error: string | null = null;
  let got: { sha256: string | null; bytes: number } = { sha256: null, bytes: 0 };
  try {
    got = await downloadSha256(baseUrl, cookie, id, AbortSignal.any([timeout, interruptSignal]));
    if (got.bytes !== opts.size.bytes) {
      reason = "http_error";
      error = `the download ended after ${got.bytes} of ${opts.size.bytes} bytes`;
    }
  } catch (err) {
    if (interrupted()) throw err;
    error = errorMessage(err);
    reason = timeout.aborted ? "timeout" : "http_error";
  }
  const seconds = (performance.now() - t0) / 1000;
  await opts.instrument?.probe.stop("download", env);
  const watched = await monitor.stop();
  const after = await optional(() => env.counters?.());
  const peakRss = rssBefore === null ? null : await optional(() => env.picosharePeakRss());
  const counters = before && after ? counterDelta(before, after) : null;
  const calls = (await syscalls?.stop()) ?? null;
  if (reason !== "success") {
    if ((await env.oomKills().catch(() => 0)) > oomsBefore) reason = "oom_killed";
    else if (!(await isRunning(env))) reason = "process_died";
  }
  return {
    fields: {
      download_duration_seconds: round(seconds, 3),
      download_throughput_mbps: reason === "success" && seconds > 0 ? round(opts.size.bytes / MiB / seconds, 2) : null,
      download_peak_memory_bytes: watched.peakBytes,
      download_cpu_seconds: counters?.cpu_seconds ?? null,
      download_peak_rss_bytes: peakRss,
      download_counters: counters,
      download_exit_reason: reason,
      download_error: error,
    },
    ...got,
    syscalls: calls,
    points: watched.points,
    start,
  };
}
