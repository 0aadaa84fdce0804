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
import { NAME_PREFIX } from "../backends/cgroup-place.ts";
import { UsageError, errorMessage } from "../core/errors.ts";
import { hostFacts, type HostFacts } from "./host.ts";
import { log } from "../core/log.ts";
import { peakRss } from "../core/proc.ts";
import { byteProgress } from "../core/progress.ts";
import { NO_DOWNLOAD, isoTimestamp, type DownloadFields, type ExitReason, type Phases, type Recovery, type TestResult, type UploadBreakdown, type UploadCounters } from "./result.ts";
import type { Measurement } from "./record.ts";
import { MiB, type Size } from "../core/sizes.ts";
import { fileSha256 } from "../core/files.ts";
import { goRuntimeEnv, harnessVersion, type HarnessVersion } from "./provenance.ts";
import { dropCaches, probeEnvironment, type EnvironmentProbe } from "./noise.ts";
import { countInstructions } from "./perf-events.ts";
import { RECOVERED_AFTER, recover, uploadCanary, type Canary } from "./recovery.ts";
import { startProxy, type ProxyFacts, type ProxyKind, type RunningProxy } from "./proxy.ts";
import { timelineOf, type PhaseBounds } from "./timeline.ts";
import type { MemoryPoint } from "../backends/types.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";

export const SAMPLE_INTERVAL_MS = 50;
/** How often PicoShare's temp files are looked at for the end of the transfer (a stat per file: cheap). */
export const TRANSFER_POLL_MS = 10;

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
  /** Uploads of the file started together, each on its own connection (default 1). */
  concurrency?: number;
  /** Upload a small entry first, and after an OOM kill, timeout or death restart PicoShare to see what survived (default true; --no-recovery). */
  recovery?: boolean;
  /** A reverse proxy the uploads and the download go through (--proxy), with its overridden settings. */
  proxy?: { kind: ProxyKind; settings: Record<string, string> } | null;
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
  /** The first upload's answer (its status is the test's http_status), or the first that failed. */
  upload: UploadResult | null;
  /** Each upload's answer, in start order (null: it got none). */
  uploads: (UploadResult | null)[];
  uploadDurations: number[];
  uploadSeconds: number;
  /** From the upload's start (seconds): to the end of the transfer, and how that end was found. */
  transferSeconds: number | null;
  transferEnd: UploadBreakdown["upload_transfer_end"];
  bodySentSeconds: number | null;
  /** The monitors' samples and the moments that bound the phases, for the timeline. */
  points: MemoryPoint[];
  bounds: PhaseBounds | null;
  canary: Canary | null;
  recovery: Recovery | null;
  proxy: RunningProxy | null;
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
    baseUrl: "", upload: null, uploads: [], uploadDurations: [], uploadSeconds: 0, transferSeconds: null, transferEnd: null, bodySentSeconds: null,
    points: [], bounds: null, canary: null, recovery: null, proxy: null, initial: 0, peak: 0, samples: 0, verified: null, ooms: 0,
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
  // The harness's own files of this test (the small entry, a database copy, the proxy's folder); named so that a dead harness's are reaped.
  const scratch = mkdtempSync(join(opts.workDir, `${NAME_PREFIX}${process.pid}-aux-`));
  // (A proxy stops on the trap by itself: startProxy registers that.)
  const forgetTeardown = onCleanup("tear down the test environment", async () => {
    await env?.teardown();
    rmSync(scratch, { recursive: true, force: true });
  });
  const secret = randomBytes(24).toString("base64url");

  try {
    await clock.time("setup", async () => {
      env = await opts.backend.create(spec);
      seen.baseUrl = await env.startPicoShare(secret);
    });
    await exercise(env!, secret, opts, clock, seen, scratch);
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
    // The failed test's own readings are taken: now see what a restart finds.
    if (opts.recovery !== false && RECOVERED_AFTER.includes(ending.reason)) {
      if (env.restartPicoShare) {
        seen.recovery = await recover(env, { secret, canary: seen.canary, scratch });
        logRecovery(seen.recovery);
      } else {
        log(`Recovery: not checked: the ${opts.backend.name} backend cannot restart PicoShare on the same data`);
      }
      if (interrupted()) throw interruptSignal.reason;
    }
  }
  const proxyFacts = seen.proxy?.facts() ?? null;
  await seen.proxy?.stop();

  const theEnv = env;
  if (opts.keep && theEnv && ending.reason === "success") {
    forgetTeardown();
    for (const line of theEnv.keepInstructions(seen.baseUrl)) log(line);
  } else if (theEnv) {
    await clock.time("teardown", () => theEnv.teardown());
    forgetTeardown();
  }
  rmSync(scratch, { recursive: true, force: true });
  if (interrupted()) throw interruptSignal.reason;

  return {
    result: resultOf(opts, { startedAt, host, seen, ending, phases: clock.phases, settings: env?.settings ?? {}, harness: await harnessVersion(), probe, proxy: proxyFacts }),
    startedAt,
    picoshareLog: env ? logText : null,
    timeline: seen.bounds && seen.points.length > 0 ? timelineOf(seen.points, seen.bounds) : null,
  };
}

function logRecovery(r: Recovery): void {
  const entry = r.earlier_entry_intact === null ? "not checked" : r.earlier_entry_intact ? "served whole" : "LOST or damaged";
  log(
    `Recovery: restart ${r.started ? `answered in ${r.restart_seconds} s` : "FAILED"}, integrity_check ${r.integrity_check ?? "not run"}, ` +
      `earlier entry ${entry}, ${r.temp_files_left ?? "?"} temp file(s) left (${r.temp_bytes_left ?? "?"} bytes)${r.error ? `; ${r.error}` : ""}`,
  );
}

/** From a started PicoShare to a checked upload; a step that fails throws the Failure that names how. */
async function exercise(env: TestEnvironment, secret: string, opts: TestOptions, clock: Clock, seen: Observed, scratch: string): Promise<void> {
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
  // Only where a restart can read it back.
  if (opts.recovery !== false && env.restartPicoShare) {
    seen.canary = await uploadCanary(baseUrl, cookie, scratch, AbortSignal.any([AbortSignal.timeout(30_000), interruptSignal])).catch((err) => {
      throw new Failure("http_error", `the small entry before the upload failed: ${errorMessage(err)}`);
    });
  }
  // Uploads and the download go through the proxy; readiness and login went straight to PicoShare.
  let front = baseUrl;
  if (opts.proxy) {
    seen.proxy = await startProxy(opts.proxy.kind, { upstream: baseUrl, dir: join(scratch, opts.proxy.kind), settings: opts.proxy.settings, signal: interruptSignal });
    front = seen.proxy.url;
    log(`Proxy: ${opts.proxy.kind} at ${front} in front of PicoShare`);
  }

  const n = opts.concurrency ?? 1;
  seen.initial = await env.memoryNow();
  const died = new AbortController();
  void env.exited.then(() => died.abort(new Error("PicoShare exited")));
  seen.countersBefore = await optional(() => env.counters?.());
  seen.pressureBefore = await optional(() => env.memoryPressure?.());
  const instructions = env.processIds ? await countInstructions(env.processIds()) : null;
  const monitor = env.monitorMemory(SAMPLE_INTERVAL_MS);
  const bar = byteProgress(n > 1 ? `upload x${n}` : "upload", n * opts.size.bytes);
  const sent = new Array<number>(n).fill(0);
  // The upload's own clock: from here, not from the readings and counters set up before it.
  const timeout = AbortSignal.timeout(opts.timeoutSec * 1000);
  const signal = AbortSignal.any([timeout, interruptSignal, died.signal]);
  const t0 = performance.now();
  // The server's side of the end of the transfer: PicoShare's temp files hold every byte of every upload.
  let serverEnd: number | null = null;
  const spill = env.spillBytes?.bind(env);
  const poll = spill
    ? setInterval(() => {
        if (serverEnd === null && spill() >= n * opts.size.bytes) serverEnd = performance.now();
      }, TRANSFER_POLL_MS)
    : null;
  // The proxy's memory and disk at the memory monitor's cadence, not the transfer poll's.
  const proxySampler = seen.proxy ? setInterval(() => seen.proxy!.sample(), SAMPLE_INTERVAL_MS) : null;
  const settled = await Promise.allSettled(
    Array.from({ length: n }, async (_, i) => {
      const up = await uploadFile(front, cookie, opts.filePath, {
        signal,
        onProgress: (b) => {
          sent[i] = b;
          bar.update(sent.reduce((a, x) => a + x, 0));
        },
      });
      seen.uploadDurations[i] = round((performance.now() - t0) / 1000, 3);
      return up;
    }),
  );
  const tResponse = performance.now();
  if (poll) clearInterval(poll);
  if (proxySampler) clearInterval(proxySampler);
  seen.proxy?.sample();
  seen.uploadSeconds = (tResponse - t0) / 1000;
  clock.phases.upload = round(seen.uploadSeconds, 3);
  seen.uploads = settled.map((r) => (r.status === "fulfilled" ? r.value : null));
  for (let i = 0; i < n; i++) seen.uploadDurations[i] ??= round(seen.uploadSeconds, 3);
  const uploadError = settled.find((r) => r.status === "rejected")?.reason ?? null;
  seen.upload = seen.uploads.find((u) => u !== null && u.status !== 200) ?? seen.uploads[0] ?? null;
  bar.stop();
  const watched = await monitor.stop();
  ({ peakBytes: seen.peak, samples: seen.samples } = watched);
  seen.anonPeak = watched.anonPeakBytes ?? null;
  seen.atPeak = watched.atPeak ?? null;
  seen.points.push(...watched.points);
  seen.countersAfter = await optional(() => env.counters?.());
  seen.instructions = (await instructions?.stop()) ?? null;
  seen.pressureAfter = await optional(() => env.memoryPressure?.());
  seen.storage = await optional(() => env.storage?.());
  // Where the transfer ended: seen by the server where it can be, else the last byte handed to the socket.
  const clientEnd = seen.uploads.every((u) => u?.bodySentAt != null) ? Math.max(...seen.uploads.map((u) => u!.bodySentAt!)) : null;
  const transferEnd = serverEnd ?? clientEnd;
  if (clientEnd !== null) seen.bodySentSeconds = round((clientEnd - t0) / 1000, 3);
  if (transferEnd !== null) {
    seen.transferSeconds = round((Math.min(transferEnd, tResponse) - t0) / 1000, 3);
    seen.transferEnd = serverEnd !== null ? "server" : "client";
  }
  seen.bounds = { uploadStart: t0, transferEnd, response: tResponse, downloadStart: null };
  if (interrupted()) throw interruptSignal.reason;

  // A failed request may be noticed before the kernel has reaped an OOM-killed server.
  if (uploadError) await Promise.race([env.exited, sleep(250)]);
  seen.ooms = await env.oomKills();
  const running = await isRunning(env);
  const upload = seen.upload;
  const proxied = seen.proxy ? ` (through ${opts.proxy!.kind})` : "";
  if (seen.ooms > 0) throw new Failure("oom_killed", `the kernel's OOM killer ended PicoShare (${seen.ooms} kill(s) in the cgroup)`);
  if (timeout.aborted) throw new Failure("timeout", `upload did not finish within ${opts.timeoutSec} s`);
  if (!running) {
    const how = await env.exited;
    throw new Failure("process_died", `PicoShare exited during the upload (${how.signal ?? `exit code ${how.code}`})`);
  }
  if (uploadError) throw new Failure("http_error", `upload request failed${proxied}: ${errorMessage(uploadError)}`);
  if (upload!.status !== 200) {
    const gateway = seen.proxy && (upload!.status === 502 || upload!.status === 504) ? `: ${proxyVerdict(upload!.status, seen.proxy)}` : "";
    throw new Failure("http_error", `upload answered HTTP ${upload!.status}${proxied}${gateway}: ${upload!.body.trim().slice(0, 200)}`);
  }
  const missingId = seen.uploads.find((u) => !u!.id);
  if (missingId) throw new Failure("http_error", `upload answered 200 without an entry id: ${missingId.body.trim().slice(0, 200)}`);

  for (const other of seen.uploads.slice(1)) {
    const len = await entryLength(front, cookie, other!.id!, AbortSignal.timeout(30_000));
    if (len !== opts.size.bytes) {
      throw new Failure("entry_missing", `entry ${other!.id} is not on the server with ${opts.size.bytes} bytes (GET /-${other!.id} says ${len ?? "not found"})`);
    }
  }
  const id = upload!.id!;
  const len = await entryLength(front, cookie, id, AbortSignal.timeout(30_000));
  if (len !== opts.size.bytes) {
    throw new Failure("entry_missing", `entry ${id} is not on the server with ${opts.size.bytes} bytes (GET /-${id} says ${len ?? "not found"})`);
  }
  if (opts.download !== false) await clock.time("download", () => measureDownload(env, front, cookie, id, opts, seen));
  if (opts.verify) {
    await clock.time("verify", async () => {
      const d = seen.download;
      if (d.download_exit_reason !== null && d.download_exit_reason !== "success") {
        throw new Failure(d.download_exit_reason, `--verify could not read the entry back: ${d.download_error}`);
      }
      const signal = AbortSignal.any([AbortSignal.timeout(opts.timeoutSec * 1000), interruptSignal]);
      // The measured download's hash when there was one; else a download of its own.
      const [down, want] = await Promise.all([
        d.sha256 !== null ? { sha256: d.sha256, bytes: d.bytes } : downloadSha256(front, cookie, id, signal),
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
  // Before the monitor: its first sample is the download's.
  if (seen.bounds) seen.bounds.downloadStart = performance.now();
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
  seen.points.push(...watched.points);
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

/** What a proxy's 502 / 504 means for the upload, in its own terms. */
function proxyVerdict(status: number, proxy: RunningProxy): string {
  const facts = proxy.facts();
  return status === 504
    ? `the proxy gave up waiting for PicoShare's answer (proxy_read_timeout ${facts.settings.proxy_read_timeout})`
    : "the proxy lost its connection to PicoShare (Bad Gateway)";
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
  t: { startedAt: Date; host: HostFacts; seen: Observed; ending: Ending; phases: Phases; settings: TestResult["backend_settings"]; harness: HarnessVersion; probe: EnvironmentProbe; proxy: ProxyFacts | null },
): TestResult {
  const { seen, ending } = t;
  const success = ending.reason === "success";
  const fileMiB = opts.size.bytes / MiB;
  const peak = Math.max(seen.peak, seen.initial);
  const n = opts.concurrency ?? 1;
  return {
    timestamp: isoTimestamp(t.startedAt),
    ram_mb: opts.ramMiB,
    file_size: opts.size.label,
    file_size_mb: fileMiB,
    duration_seconds: round(seen.uploadSeconds, 3),
    // All the uploads' bytes over the time from the first start to the last response.
    throughput_mbps: success && seen.uploadSeconds > 0 ? round((n * fileMiB) / seen.uploadSeconds, 2) : 0,
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
    upload_transfer_seconds: seen.transferSeconds,
    upload_processing_seconds: seen.transferSeconds === null || seen.uploads.some((u) => u === null) ? null : round(seen.uploadSeconds - seen.transferSeconds, 3),
    upload_transfer_end: seen.transferEnd,
    upload_body_sent_seconds: seen.bodySentSeconds,
    concurrency: n,
    upload_durations_seconds: seen.uploadDurations,
    entry_ids: seen.uploads.map((u) => u?.id ?? null),
    timeline_file: null,
    recovery: seen.recovery,
    proxy: t.proxy,
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
