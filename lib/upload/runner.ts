// One measured upload, phase by phase: make the environment, start PicoShare,
// wait until it answers, log in, upload while sampling memory, check what
// arrived and tear down. The result says how it ended; only bad usage or an
// interrupt stop it without one. Writing it down is recordResult's job.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Backend, MemoryBreakdown, MemoryPressure, StorageFacts, TestEnvironment } from "../backends/types.ts";
import { counterDelta, type Counters } from "./counters.ts";
import type { PicoShareBinary } from "./picoshare.ts";
import { downloadSha256, entryLength, uploadFile, type UploadResult } from "./api.ts";
import { isRunning, login, sleep, waitUntilReady } from "./session.ts";
import { interruptSignal, interrupted, onCleanup } from "../core/cleanup.ts";
import { UsageError, errorMessage } from "../core/errors.ts";
import { hostFacts, type HostFacts } from "./host.ts";
import { log } from "../core/log.ts";
import { peakRss } from "../core/proc.ts";
import { byteProgress } from "../core/progress.ts";
import { NO_DOWNLOAD, isoTimestamp, type DownloadFields, type ExitReason, type Phases, type TestResult, type UploadCounters } from "./result.ts";
import type { Measurement } from "./record.ts";
import { MiB, type Size } from "../core/sizes.ts";
import { fileSha256 } from "../core/files.ts";
import { goRuntimeEnv, harnessVersion, type HarnessVersion } from "./provenance.ts";
import { dropCaches, probeEnvironment, type EnvironmentProbe } from "./noise.ts";
import { countInstructions } from "./perf-events.ts";

export const SAMPLE_INTERVAL_MS = 50;

export interface TestOptions {
  ramMiB: number;
  size: Size;
  filePath: string;
  timeoutSec: number;
  keep: boolean;
  verify: boolean;
  workDir: string;
  runId: number | null;
  /** Which of a series of tests this is, warm-ups first (default 1). */
  iteration?: number;
  /** A warm-up run: recorded, never counted (default false). */
  warmup?: boolean;
  backend: Backend;
  picoshare: PicoShareBinary;
  /** --drop-caches: sync and drop the page cache before the test. */
  dropCaches?: boolean;
  /** Measure a download of the entry after a successful upload (default true; --no-download). */
  download?: boolean;
}

class Failure extends Error {
  constructor(
    readonly reason: ExitReason,
    message: string,
  ) {
    super(message);
  }
}

type Clock = ReturnType<typeof phaseClock>;

/** Times phases on a monotonic clock. */
function phaseClock() {
  const phases: Phases = { setup: 0, readiness: 0, auth: 0, upload: 0, download: 0, verify: 0, teardown: 0 };
  return {
    phases,
    async time<T>(phase: keyof Phases, fn: () => Promise<T>): Promise<T> {
      const t0 = performance.now();
      try {
        return await fn();
      } finally {
        phases[phase] = round((performance.now() - t0) / 1000, 3);
      }
    },
  };
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function logTail(path: string, lines = 5): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join(" | ");
  } catch {
    return "";
  }
}

/** What a test has found out; each field keeps its "did not get that far" value until its phase sets it. */
interface Observed {
  baseUrl: string;
  upload: UploadResult | null;
  uploadSeconds: number;
  initial: number;
  peak: number;
  samples: number;
  verified: boolean | null;
  ooms: number;
  kernelPeak: number | null;
  picoRss: number | null;
  /** The counters when the upload began and when its response came; the whole test's at the end. */
  countersBefore: Counters | null;
  countersAfter: Counters | null;
  countersTotal: Counters | null;
  storage: StorageFacts | null;
  anonPeak: number | null;
  atPeak: MemoryBreakdown | null;
  pressureBefore: MemoryPressure | null;
  pressureAfter: MemoryPressure | null;
  /** Instructions retired by PicoShare's processes during the upload (perf); null where the host cannot count them. */
  instructions: number | null;
  /** The measured download, once made. */
  download: DownloadFields & { sha256: string | null; bytes: number };
}

interface Ending {
  reason: ExitReason;
  error: string | null;
}

export async function measureTest(opts: TestOptions): Promise<Measurement> {
  const startedAt = new Date();
  const clock = phaseClock();
  const seen: Observed = {
    baseUrl: "", upload: null, uploadSeconds: 0, initial: 0, peak: 0, samples: 0, verified: null, ooms: 0,
    kernelPeak: null, picoRss: null, countersBefore: null, countersAfter: null, countersTotal: null, storage: null,
    anonPeak: null, atPeak: null, pressureBefore: null, pressureAfter: null, instructions: null,
    download: { ...NO_DOWNLOAD, sha256: null, bytes: 0 },
  };
  let env = null as TestEnvironment | null;
  let ending: Ending = { reason: "success", error: null };
  let logText = "";

  const host = hostFacts(opts.workDir);
  // Before anything of the test is in memory: the probe, then (asked) a cold page cache.
  const probe = probeEnvironment(opts.workDir);
  if (opts.dropCaches) dropCaches();
  const spec = {
    ramMiB: opts.ramMiB,
    workDir: opts.workDir,
    picoshare: opts.picoshare,
    uploadBytes: opts.size.bytes,
    signal: interruptSignal,
  };
  const forgetTeardown = onCleanup("tear down the test environment", () => env?.teardown());

  try {
    const secret = randomBytes(24).toString("base64url");
    await clock.time("setup", async () => {
      env = await opts.backend.create(spec);
      seen.baseUrl = await env.startPicoShare(secret);
    });
    await exercise(env!, secret, opts, clock, seen);
  } catch (err) {
    if (interrupted()) throw err;
    // A set-up problem the user must fix (a lock held, a missing tool): exit 2, nothing written.
    if (err instanceof UsageError) throw err;
    ending = await failureOf(err, env, seen.baseUrl !== "");
  }

  if (env) {
    seen.ooms = await env.oomKills().catch(() => seen.ooms);
    seen.kernelPeak = await env.kernelPeakBytes().catch(() => null);
    seen.picoRss = await env.picosharePeakRss().catch(() => null);
    seen.countersTotal = await optional(() => env!.counters?.());
    try {
      logText = readFileSync(env.logPath, "utf8");
    } catch {}
  }

  const theEnv = env;
  if (opts.keep && theEnv && ending.reason === "success") {
    forgetTeardown();
    for (const line of theEnv.keepInstructions(seen.baseUrl)) log(line);
  } else if (theEnv) {
    await clock.time("teardown", () => theEnv.teardown());
    forgetTeardown();
  }
  if (interrupted()) throw interruptSignal.reason;

  return {
    result: resultOf(opts, { startedAt, host, seen, ending, phases: clock.phases, settings: env?.settings ?? {}, harness: await harnessVersion(), probe }),
    startedAt,
    picoshareLog: env ? logText : null,
  };
}

/** From a started PicoShare to a checked upload; a step that fails throws the Failure that names how. */
async function exercise(env: TestEnvironment, secret: string, opts: TestOptions, clock: Clock, seen: Observed): Promise<void> {
  const baseUrl = seen.baseUrl;
  await clock.time("readiness", () =>
    waitUntilReady(env, baseUrl).catch((err) => {
      throw new Failure("startup_failed", errorMessage(err));
    }),
  );
  const cookie = await clock.time("auth", () =>
    login(baseUrl, secret).catch((err) => {
      throw new Failure("startup_failed", `login failed: ${errorMessage(err)}`);
    }),
  );

  seen.initial = await env.memoryNow();
  const died = new AbortController();
  void env.exited.then(() => died.abort(new Error("PicoShare exited")));
  seen.countersBefore = await optional(() => env.counters?.());
  seen.pressureBefore = await optional(() => env.memoryPressure?.());
  const instructions = env.processIds ? await countInstructions(env.processIds()) : null;
  const monitor = env.monitorMemory(SAMPLE_INTERVAL_MS);
  const bar = byteProgress("upload", opts.size.bytes);
  let uploadError: unknown = null;
  // The upload's own clock: from here, not from the readings and counters set up before it.
  const timeout = AbortSignal.timeout(opts.timeoutSec * 1000);
  const t0 = performance.now();
  try {
    seen.upload = await uploadFile(baseUrl, cookie, opts.filePath, {
      signal: AbortSignal.any([timeout, interruptSignal, died.signal]),
      onProgress: (n) => bar.update(n),
    });
  } catch (err) {
    uploadError = err;
  }
  seen.uploadSeconds = (performance.now() - t0) / 1000;
  clock.phases.upload = round(seen.uploadSeconds, 3);
  bar.stop();
  const watched = await monitor.stop();
  ({ peakBytes: seen.peak, samples: seen.samples } = watched);
  seen.anonPeak = watched.anonPeakBytes ?? null;
  seen.atPeak = watched.atPeak ?? null;
  seen.countersAfter = await optional(() => env.counters?.());
  seen.instructions = (await instructions?.stop()) ?? null;
  seen.pressureAfter = await optional(() => env.memoryPressure?.());
  seen.storage = await optional(() => env.storage?.());
  if (interrupted()) throw interruptSignal.reason;

  // A failed request may be noticed before the kernel has reaped an OOM-killed server.
  if (uploadError) await Promise.race([env.exited, sleep(250)]);
  seen.ooms = await env.oomKills();
  const running = await isRunning(env);
  const upload = seen.upload;
  if (seen.ooms > 0) throw new Failure("oom_killed", `the kernel's OOM killer ended PicoShare (${seen.ooms} kill(s) in the cgroup)`);
  if (timeout.aborted) throw new Failure("timeout", `upload did not finish within ${opts.timeoutSec} s`);
  if (!running) {
    const how = await env.exited;
    throw new Failure("process_died", `PicoShare exited during the upload (${how.signal ?? `exit code ${how.code}`})`);
  }
  if (uploadError) throw new Failure("http_error", `upload request failed: ${errorMessage(uploadError)}`);
  if (upload!.status !== 200) throw new Failure("http_error", `upload answered HTTP ${upload!.status}: ${upload!.body.trim().slice(0, 200)}`);
  if (!upload!.id) throw new Failure("http_error", `upload answered 200 without an entry id: ${upload!.body.trim().slice(0, 200)}`);

  const id = upload!.id;
  const len = await entryLength(baseUrl, cookie, id, AbortSignal.timeout(30_000));
  if (len !== opts.size.bytes) {
    throw new Failure("entry_missing", `entry ${id} is not on the server with ${opts.size.bytes} bytes (GET /-${id} says ${len ?? "not found"})`);
  }
  if (opts.download !== false) await clock.time("download", () => measureDownload(env, baseUrl, cookie, id, opts, seen));
  if (opts.verify) {
    await clock.time("verify", async () => {
      const d = seen.download;
      if (d.download_exit_reason !== null && d.download_exit_reason !== "success") {
        throw new Failure(d.download_exit_reason, `--verify could not read the entry back: ${d.download_error}`);
      }
      const signal = AbortSignal.any([AbortSignal.timeout(opts.timeoutSec * 1000), interruptSignal]);
      // The measured download's hash when there was one; else a download of its own.
      const [down, want] = await Promise.all([
        d.sha256 !== null ? { sha256: d.sha256, bytes: d.bytes } : downloadSha256(baseUrl, cookie, id, signal),
        fileSha256(opts.filePath),
      ]);
      seen.verified = down.sha256 === want && down.bytes === opts.size.bytes;
      if (!seen.verified) throw new Failure("corrupt", `downloaded entry differs from ${opts.filePath} (SHA-256 ${down.sha256}, ${down.bytes} bytes; expected ${want})`);
    });
  }
}

/**
 * The download of the entry as a measured phase: the working set sampled and
 * the counters read as for the upload. Its failure is recorded, not thrown:
 * the test's outcome stays the upload's.
 */
async function measureDownload(env: TestEnvironment, baseUrl: string, cookie: string, id: string, opts: TestOptions, seen: Observed): Promise<void> {
  const before = await optional(() => env.counters?.());
  const oomsBefore = await env.oomKills().catch(() => 0);
  const timeout = AbortSignal.timeout(opts.timeoutSec * 1000);
  const monitor = env.monitorMemory(SAMPLE_INTERVAL_MS);
  const t0 = performance.now();
  let reason: ExitReason = "success";
  let error: string | null = null;
  try {
    const d = await downloadSha256(baseUrl, cookie, id, AbortSignal.any([timeout, interruptSignal]));
    seen.download.sha256 = d.sha256;
    seen.download.bytes = d.bytes;
    if (d.bytes !== opts.size.bytes) {
      reason = "http_error";
      error = `the download ended after ${d.bytes} of ${opts.size.bytes} bytes`;
    }
  } catch (err) {
    if (interrupted()) throw err;
    error = errorMessage(err);
    reason = timeout.aborted ? "timeout" : "http_error";
  }
  const seconds = (performance.now() - t0) / 1000;
  const watched = await monitor.stop();
  const after = await optional(() => env.counters?.());
  if (reason !== "success") {
    if ((await env.oomKills().catch(() => 0)) > oomsBefore) reason = "oom_killed";
    else if (!(await isRunning(env))) reason = "process_died";
  }
  Object.assign(seen.download, {
    download_duration_seconds: round(seconds, 3),
    download_throughput_mbps: reason === "success" && seconds > 0 ? round(opts.size.bytes / MiB / seconds, 2) : null,
    download_peak_memory_bytes: watched.peakBytes,
    download_counters: before && after ? counterDelta(before, after) : null,
    download_exit_reason: reason,
    download_error: error,
  });
}

/** One of the environment's optional readings: null where the backend has none, or it failed. */
async function optional<T>(read: () => Promise<T | null> | undefined): Promise<T | null> {
  try {
    return (await read()) ?? null;
  } catch {
    return null;
  }
}

/** How a test that threw ended: the Failure's reason, or what the error says of the environment. */
async function failureOf(err: unknown, env: TestEnvironment | null, started: boolean): Promise<Ending> {
  let reason: ExitReason;
  let error: string;
  if (err instanceof Failure) {
    reason = err.reason;
    error = err.message;
  } else {
    // Before PicoShare was started, the environment itself failed (a VM that did not boot).
    reason = started ? "process_died" : "setup_failed";
    error = errorMessage(err);
  }
  // Whatever the symptom (a refused connection, a failed start), an OOM
  // kill in the environment is the cause.
  if (env && (await env.oomKills().catch(() => 0)) > 0 && reason !== "oom_killed") {
    error = `the kernel's OOM killer ended PicoShare (${error})`;
    reason = "oom_killed";
  }
  if (env) {
    const tail = logTail(env.logPath);
    if (tail) error += `; PicoShare's log ends: ${tail}`;
  }
  return { reason, error };
}

/** The result record of a measured test; log_file is set once the log is written (recordResult). */
function resultOf(
  opts: TestOptions,
  t: { startedAt: Date; host: HostFacts; seen: Observed; ending: Ending; phases: Phases; settings: TestResult["backend_settings"]; harness: HarnessVersion; probe: EnvironmentProbe },
): TestResult {
  const { seen, ending } = t;
  const success = ending.reason === "success";
  const fileMiB = opts.size.bytes / MiB;
  const peak = Math.max(seen.peak, seen.initial);
  return {
    timestamp: isoTimestamp(t.startedAt),
    ram_mb: opts.ramMiB,
    file_size: opts.size.label,
    file_size_mb: fileMiB,
    duration_seconds: round(seen.uploadSeconds, 3),
    throughput_mbps: success && seen.uploadSeconds > 0 ? round(fileMiB / seen.uploadSeconds, 2) : 0,
    initial_memory_bytes: seen.initial,
    peak_memory_bytes: peak,
    peak_memory_mb: Math.round(peak / MiB),
    http_status: seen.upload ? String(seen.upload.status) : "000",
    exit_reason: ending.reason,
    success,
    backend: opts.backend.name,
    file_size_bytes: opts.size.bytes,
    picoshare_version: opts.picoshare.version,
    picoshare_sha256: opts.picoshare.sha256,
    picoshare_go_version: opts.picoshare.go_version,
    picoshare_source: opts.picoshare.build ? `${opts.picoshare.build.source_dir}${opts.picoshare.build.ref ? `@${opts.picoshare.build.ref}` : ""}` : null,
    picoshare_commit: opts.picoshare.build?.commit ?? null,
    picoshare_dirty: opts.picoshare.build?.dirty ?? null,
    harness_commit: t.harness.commit,
    harness_dirty: t.harness.dirty,
    go_runtime_env: goRuntimeEnv(),
    cgroup_version: typeof t.settings.cgroup_version === "string" ? t.settings.cgroup_version : null,
    caches_dropped: opts.dropCaches ?? false,
    environment_probe: t.probe,
    kernel_peak_memory_bytes: seen.kernelPeak,
    picoshare_peak_rss_bytes: seen.picoRss,
    harness_peak_rss_bytes: peakRss(process.pid) ?? 0,
    memory_samples: seen.samples,
    memory_sample_interval_ms: SAMPLE_INTERVAL_MS,
    oom_kills: seen.ooms,
    ...uploadCounters(seen, opts.size.bytes),
    ...downloadFields(seen.download),
    entry_id: seen.upload?.id ?? null,
    verified: seen.verified,
    error: ending.error,
    phases: t.phases,
    backend_settings: t.settings,
    host: t.host,
    log_file: null,
    run_id: opts.runId,
    iteration: opts.iteration ?? 1,
    warmup: opts.warmup ?? false,
  };
}

function downloadFields(d: Observed["download"]): DownloadFields {
  const { sha256: _s, bytes: _b, ...fields } = d;
  return fields;
}

/** The upload phase's counters (null each where the backend has none), with the write amplification they give. */
function uploadCounters(seen: Observed, fileBytes: number): UploadCounters {
  const c = seen.countersBefore && seen.countersAfter ? counterDelta(seen.countersBefore, seen.countersAfter) : null;
  const field = (n: keyof Counters) => (c ? c[n] : null);
  return {
    cpu_user_seconds: field("cpu_user_seconds"),
    cpu_system_seconds: field("cpu_system_seconds"),
    cpu_seconds: field("cpu_seconds"),
    disk_write_bytes: field("disk_write_bytes"),
    disk_write_cancelled_bytes: field("disk_write_cancelled_bytes"),
    disk_read_bytes: field("disk_read_bytes"),
    write_amplification: c && fileBytes > 0 ? round(c.disk_write_bytes / fileBytes, 3) : null,
    write_syscalls: field("write_syscalls"),
    read_syscalls: field("read_syscalls"),
    major_faults: field("major_faults"),
    minor_faults: field("minor_faults"),
    instructions: seen.instructions,
    data_dir_bytes: seen.storage?.dataDirBytes ?? null,
    temp_files_left: seen.storage?.tempFiles ?? null,
    test_counters: seen.countersTotal,
    anon_peak_bytes: seen.anonPeak,
    memory_at_peak: seen.atPeak,
    memory_pressure:
      seen.pressureBefore && seen.pressureAfter
        ? {
            some_seconds: round(seen.pressureAfter.some_seconds - seen.pressureBefore.some_seconds, 6),
            full_seconds: round(seen.pressureAfter.full_seconds - seen.pressureBefore.full_seconds, 6),
          }
        : null,
  };
}
