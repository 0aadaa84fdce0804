// One measured upload, phase by phase: make the environment, start PicoShare,
// wait until it answers, log in, upload while sampling memory, check what
// arrived, tear down, and write the result. The result says how it ended;
// only bad usage or an interrupt stop it without one.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Backend, TestEnvironment } from "../backends/types.ts";
import type { PicoShareBinary } from "./picoshare.ts";
import { downloadSha256, entryLength, uploadFile, type UploadResult } from "./api.ts";
import { isRunning, login, sleep, waitUntilReady } from "./session.ts";
import { interruptSignal, interrupted, onCleanup } from "../core/cleanup.ts";
import { UsageError, errorMessage } from "../core/errors.ts";
import { writeFileAtomic } from "../core/files.ts";
import { hostFacts } from "./host.ts";
import { log, warn } from "../core/log.ts";
import { peakRss } from "../core/process.ts";
import { byteProgress } from "../core/progress.ts";
import {
  freeStem, isoTimestamp, resultJson, resultStem, writeNewFile,
  type ExitReason, type Phases, type TestResult,
} from "./result.ts";
import { ResultsDb } from "../store/results-db.ts";
import { MiB, type Size } from "../core/sizes.ts";
import { fileSha256 } from "../core/files.ts";
import { displayPath } from "../core/paths.ts";

export const SAMPLE_INTERVAL_MS = 50;

export interface TestOptions {
  ramMiB: number;
  size: Size;
  filePath: string;
  timeoutSec: number;
  keep: boolean;
  verify: boolean;
  resultsDir: string;
  workDir: string;
  dbPath: string | null;
  runId: number | null;
  /** Which of a series of tests this is, warm-ups first (default 1). */
  iteration?: number;
  /** A warm-up run: recorded, never counted (default false). */
  warmup?: boolean;
  backend: Backend;
  picoshare: PicoShareBinary;
}

export interface TestOutcome {
  result: TestResult;
  resultPath: string;
}

class Failure extends Error {
  constructor(
    readonly reason: ExitReason,
    message: string,
  ) {
    super(message);
  }
}

/** Times phases on a monotonic clock. */
function phaseClock() {
  const phases: Phases = { setup: 0, readiness: 0, auth: 0, upload: 0, verify: 0, teardown: 0 };
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


export async function runTest(opts: TestOptions): Promise<TestOutcome> {
  const startedAt = new Date();
  const clock = phaseClock();
  let env = null as TestEnvironment | null;
  let baseUrl = "";
  let cookie = "";
  let upload: UploadResult | null = null;
  let uploadSeconds = 0;
  let initial = 0;
  let peak = 0;
  let samples = 0;
  let verified: boolean | null = null;
  let reason: ExitReason = "success";
  let errorText: string | null = null;
  let logText = "";
  let kernelPeak: number | null = null;
  let picoRss: number | null = null;
  let ooms = 0;

  const host = hostFacts(opts.workDir);
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
      baseUrl = await env.startPicoShare(secret);
    });
    const theEnv = env!;

    await clock.time("readiness", () =>
      waitUntilReady(theEnv, baseUrl).catch((err) => {
        throw new Failure("startup_failed", errorMessage(err));
      }),
    );
    cookie = await clock.time("auth", () =>
      login(baseUrl, secret).catch((err) => {
        throw new Failure("startup_failed", `login failed: ${errorMessage(err)}`);
      }),
    );

    initial = await theEnv.memoryNow();
    const died = new AbortController();
    void theEnv.exited.then(() => died.abort(new Error("PicoShare exited")));
    const timeout = AbortSignal.timeout(opts.timeoutSec * 1000);
    const monitor = theEnv.monitorMemory(SAMPLE_INTERVAL_MS);
    const bar = byteProgress("upload", opts.size.bytes);
    let uploadError: unknown = null;
    const t0 = performance.now();
    try {
      upload = await uploadFile(baseUrl, cookie, opts.filePath, {
        signal: AbortSignal.any([timeout, interruptSignal, died.signal]),
        onProgress: (n) => bar.update(n),
      });
    } catch (err) {
      uploadError = err;
    }
    uploadSeconds = (performance.now() - t0) / 1000;
    clock.phases.upload = round(uploadSeconds, 3);
    bar.stop();
    ({ peakBytes: peak, samples } = await monitor.stop());
    if (interrupted()) throw interruptSignal.reason;

    // A failed request may be noticed before the kernel has reaped an OOM-killed server.
    if (uploadError) await Promise.race([theEnv.exited, sleep(250)]);
    ooms = await theEnv.oomKills();
    const running = await isRunning(theEnv);
    if (ooms > 0) throw new Failure("oom_killed", `the kernel's OOM killer ended PicoShare (${ooms} kill(s) in the cgroup)`);
    if (timeout.aborted) throw new Failure("timeout", `upload did not finish within ${opts.timeoutSec} s`);
    if (!running) {
      const how = await theEnv.exited;
      throw new Failure("process_died", `PicoShare exited during the upload (${how.signal ?? `exit code ${how.code}`})`);
    }
    if (uploadError) throw new Failure("http_error", `upload request failed: ${errorMessage(uploadError)}`);
    if (upload!.status !== 200) throw new Failure("http_error", `upload answered HTTP ${upload!.status}: ${upload!.body.trim().slice(0, 200)}`);
    if (!upload!.id) throw new Failure("http_error", `upload answered 200 without an entry id: ${upload!.body.trim().slice(0, 200)}`);

    const id = upload!.id;
    await clock.time("verify", async () => {
      const len = await entryLength(baseUrl, cookie, id, AbortSignal.timeout(30_000));
      if (len !== opts.size.bytes) {
        throw new Failure("entry_missing", `entry ${id} is not on the server with ${opts.size.bytes} bytes (GET /-${id} says ${len ?? "not found"})`);
      }
      if (opts.verify) {
        const signal = AbortSignal.any([AbortSignal.timeout(opts.timeoutSec * 1000), interruptSignal]);
        const [down, want] = await Promise.all([downloadSha256(baseUrl, cookie, id, signal), fileSha256(opts.filePath)]);
        verified = down.sha256 === want && down.bytes === opts.size.bytes;
        if (!verified) throw new Failure("corrupt", `downloaded entry differs from ${opts.filePath} (SHA-256 ${down.sha256}, ${down.bytes} bytes; expected ${want})`);
      }
    });
  } catch (err) {
    if (interrupted()) throw err;
    if (err instanceof Failure) {
      reason = err.reason;
      errorText = err.message;
    } else if (err instanceof UsageError) {
      // A set-up problem the user must fix (a lock held, a missing tool): exit 2, nothing written.
      throw err;
    } else {
      // Before PicoShare was started, the environment itself failed (a VM that did not boot).
      reason = baseUrl ? "process_died" : "setup_failed";
      errorText = errorMessage(err);
    }
    // Whatever the symptom (a refused connection, a failed start), an OOM
    // kill in the environment is the cause.
    if (env && (await env.oomKills().catch(() => 0)) > 0 && reason !== "oom_killed") {
      errorText = `the kernel's OOM killer ended PicoShare (${errorText})`;
      reason = "oom_killed";
    }
    if (env && reason !== "success") {
      const tail = logTail(env.logPath);
      if (tail) errorText += `; PicoShare's log ends: ${tail}`;
    }
  }

  if (env) {
    ooms = await env.oomKills().catch(() => ooms);
    kernelPeak = await env.kernelPeakBytes().catch(() => null);
    picoRss = await env.picosharePeakRss().catch(() => null);
    try {
      logText = readFileSync(env.logPath, "utf8");
    } catch {}
  }

  const theEnv = env;
  if (opts.keep && theEnv && reason === "success") {
    forgetTeardown();
    for (const line of theEnv.keepInstructions(baseUrl)) log(line);
  } else if (theEnv) {
    await clock.time("teardown", () => theEnv.teardown());
    forgetTeardown();
  }
  if (interrupted()) throw interruptSignal.reason;

  const success = reason === "success";
  const fileMiB = opts.size.bytes / MiB;
  peak = Math.max(peak, initial);
  const stem = freeStem(opts.resultsDir, resultStem(opts.ramMiB, opts.size.label, startedAt), (s) => [
    `result-${s}.json`,
    `picoshare-${s}.log`,
  ]);
  const logPath = join(opts.resultsDir, `picoshare-${stem}.log`);
  if (env) writeFileAtomic(logPath, logText);

  const result: TestResult = {
    timestamp: isoTimestamp(startedAt),
    ram_mb: opts.ramMiB,
    file_size: opts.size.label,
    file_size_mb: fileMiB,
    duration_seconds: round(uploadSeconds, 3),
    throughput_mbps: success && uploadSeconds > 0 ? round(fileMiB / uploadSeconds, 2) : 0,
    initial_memory_bytes: initial,
    peak_memory_bytes: peak,
    peak_memory_mb: Math.round(peak / MiB),
    http_status: upload ? String(upload.status) : "000",
    exit_reason: reason,
    success,
    backend: opts.backend.name,
    file_size_bytes: opts.size.bytes,
    picoshare_version: opts.picoshare.version,
    picoshare_sha256: opts.picoshare.sha256,
    kernel_peak_memory_bytes: kernelPeak,
    picoshare_peak_rss_bytes: picoRss,
    harness_peak_rss_bytes: peakRss(process.pid) ?? 0,
    memory_samples: samples,
    memory_sample_interval_ms: SAMPLE_INTERVAL_MS,
    oom_kills: ooms,
    entry_id: upload?.id ?? null,
    verified,
    error: errorText,
    phases: clock.phases,
    backend_settings: env?.settings ?? {},
    host,
    log_file: env ? displayPath(logPath) : null,
    run_id: opts.runId,
    iteration: opts.iteration ?? 1,
    warmup: opts.warmup ?? false,
  };
  const resultPath = join(opts.resultsDir, `result-${stem}.json`);
  writeNewFile(resultPath, resultJson(result));
  if (opts.dbPath) {
    try {
      const db = ResultsDb.open(opts.dbPath);
      try {
        db.addResult(result, resultPath);
      } finally {
        db.close();
      }
    } catch (err) {
      warn(`could not record the result in ${opts.dbPath}: ${errorMessage(err)}`);
    }
  }
  return { result, resultPath };
}
