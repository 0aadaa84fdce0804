// Upload (with processing): N uploads of the file started together, the
// working set sampled, the kernel's counters read around them, the end of
// the transfer found (from the server's side where it can be), then how the
// upload ended: an OOM kill, a timeout, a dead process or an HTTP error.
import { join } from "node:path";
import type { MemoryBreakdown, MemoryPoint, MemoryPressure, StorageFacts, TestEnvironment } from "../../backends/types.ts";
import { interruptSignal, interrupted } from "../../core/cleanup.ts";
import { errorMessage } from "../../core/errors.ts";
import { log } from "../../core/log.ts";
import { byteProgress } from "../../core/progress.ts";
import { uploadFile, type UploadResult } from "../api.ts";
import { counterDelta, type Counters } from "../counters.ts";
import { countInstructions } from "../perf-events.ts";
import { countSyscalls, type SyscallCounts } from "../syscalls.ts";
import { startProxy, type ProxyFacts, type RunningProxy } from "../proxy.ts";
import type { UploadBreakdown } from "../result.ts";
import type { TestOptions } from "../runner.ts";
import { isRunning, sleep } from "../session.ts";
import type { PhaseBounds } from "../timeline.ts";
import { Failure, SAMPLE_INTERVAL_MS, TRANSFER_POLL_MS, attempt, optional, round, type Outcome } from "./common.ts";

/** Where the uploads and the download go: PicoShare, or the proxy in front of it. */
export interface FrontFigures extends Outcome {
  url: string;
  proxy: RunningProxy | null;
}

/** What the uploads measured, up to their responses. */
export interface TransferFigures {
  /** The working set before the uploads began. */
  initial: number;
  /** From the first upload's start to the last response (unrounded: throughput is computed from it). */
  seconds: number;
  /** Each upload's answer, in start order (null: it got none). */
  uploads: (UploadResult | null)[];
  /** The first upload's answer (its status is the test's http_status), or the first that failed. */
  upload: UploadResult | null;
  /** Each upload's seconds from its start to its response. */
  durations: number[];
  /** A request that failed (no answer at all); null when each got one. */
  error: unknown;
  /** The uploads' --timeout (from their start) had passed when they ended: judged then, not after the readings that follow. */
  timedOut: boolean;
  /** From the upload's start (seconds): to the end of the transfer, and how that end was found. */
  transferSeconds: number | null;
  transferEnd: UploadBreakdown["upload_transfer_end"];
  bodySentSeconds: number | null;
  peak: number;
  samples: number;
  /** The interval the backend sampled the working set at (what was asked, when no sampling began). */
  sampleIntervalMs: number;
  anonPeak: number | null;
  atPeak: MemoryBreakdown | null;
  /** The monitor's samples and the moments that bound the phases, for the timeline. */
  points: MemoryPoint[];
  bounds: PhaseBounds | null;
  /** The kernel's counters of PicoShare's processes from the uploads' start to their response. */
  counters: Counters | null;
  /** Instructions retired by PicoShare's processes during the upload (perf); null where the host cannot count them. */
  instructions: number | null;
  /** System calls by kind of PicoShare's processes during the upload (perf); null where they cannot be counted. */
  syscalls: SyscallCounts | null;
  /** Seconds some / all of the cgroup's tasks waited for memory during the upload. */
  pressure: MemoryPressure | null;
  /** What PicoShare's storage held after the response. */
  storage: StorageFacts | null;
  /**
   * PicoShare's peak resident set from its start to the response, read then; null where the backend
   * reads it only at the end of the test (vagrant: no mark it can reset either).
   */
  rss: number | null;
}

export interface UploadFigures extends TransferFigures, Outcome {
  /** OOM kills in the environment, read when the upload ended. */
  ooms: number;
}

/** An upload that did not get as far as its first request. */
export const NO_TRANSFER: TransferFigures = {
  initial: 0, seconds: 0, uploads: [], upload: null, durations: [], error: null, timedOut: false, transferSeconds: null, transferEnd: null, bodySentSeconds: null,
  peak: 0, samples: 0, sampleIntervalMs: SAMPLE_INTERVAL_MS, anonPeak: null, atPeak: null, points: [], bounds: null, counters: null, instructions: null, syscalls: null, pressure: null, storage: null, rss: null,
};

/** The proxy asked for (--proxy) started in front of PicoShare; readiness and login went straight to PicoShare. */
export async function front(baseUrl: string, opts: TestOptions, scratch: string): Promise<FrontFigures> {
  let proxy: RunningProxy | null = null;
  const failure = await attempt(async () => {
    if (!opts.proxy) return;
    proxy = await startProxy(opts.proxy.kind, { upstream: baseUrl, dir: join(scratch, opts.proxy.kind), settings: opts.proxy.settings, signal: interruptSignal });
    log(`Proxy: ${opts.proxy.kind} at ${proxy.url} in front of PicoShare`);
  });
  const p = proxy as RunningProxy | null;
  return { url: p?.url ?? baseUrl, proxy: p, failure };
}

export async function upload(env: TestEnvironment, to: FrontFigures, cookie: string, opts: TestOptions): Promise<UploadFigures> {
  let t = NO_TRANSFER;
  let ooms = 0;
  const failure = await attempt(async () => {
    t = await transfer(env, to, cookie, opts);
    if (interrupted()) throw interruptSignal.reason;
    // A failed request may be noticed before the kernel has reaped an OOM-killed server.
    if (t.error) await Promise.race([env.exited, sleep(250)]);
    ooms = await env.oomKills();
    await verdict(env, t, ooms, to, opts);
  });
  return { ...t, ooms, failure };
}

async function transfer(env: TestEnvironment, to: FrontFigures, cookie: string, opts: TestOptions): Promise<TransferFigures> {
  const n = opts.concurrency ?? 1;
  const initial = await env.memoryNow();
  const died = new AbortController();
  void env.exited.then(() => died.abort(new Error("PicoShare exited")));
  const countersBefore = await optional(() => env.counters?.());
  const pressureBefore = await optional(() => env.memoryPressure?.());
  const instructions = env.processIds ? await countInstructions(env.processIds()) : null;
  const syscalls = await countSyscalls(env);
  const monitor = env.monitorMemory(SAMPLE_INTERVAL_MS);
  const bar = byteProgress(n > 1 ? `upload x${n}` : "upload", n * opts.size.bytes);
  const sent = new Array<number>(n).fill(0);
  const durations: number[] = [];
  // The upload's own clock: from here, not from the readings and counters set up before it.
  const timeout = AbortSignal.timeout(opts.timeoutSec * 1000);
  const signal = AbortSignal.any([timeout, interruptSignal, died.signal]);
  await opts.instrument?.probe.start("upload", env);
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
  const proxySampler = to.proxy ? setInterval(() => to.proxy!.sample(), SAMPLE_INTERVAL_MS) : null;
  const settled = await Promise.allSettled(
    Array.from({ length: n }, async (_, i) => {
      const up = await uploadFile(to.url, cookie, opts.filePath, {
        signal,
        onProgress: (b) => {
          sent[i] = b;
          bar.update(sent.reduce((a, x) => a + x, 0));
        },
      });
      durations[i] = round((performance.now() - t0) / 1000, 3);
      return up;
    }),
  );
  const tResponse = performance.now();
  const timedOut = timeout.aborted;
  await opts.instrument?.probe.stop("upload", env);
  if (poll) clearInterval(poll);
  if (proxySampler) clearInterval(proxySampler);
  to.proxy?.sample();
  const seconds = (tResponse - t0) / 1000;
  const uploads = settled.map((r) => (r.status === "fulfilled" ? r.value : null));
  for (let i = 0; i < n; i++) durations[i] ??= round(seconds, 3);
  bar.stop();
  const watched = await monitor.stop();
  const countersAfter = await optional(() => env.counters?.());
  // Before anything else asks PicoShare for the entry (the entries check's GET reads its first chunks).
  const rss = env.resetPeakRss ? await optional(() => env.picosharePeakRss()) : null;
  const counted = (await instructions?.stop()) ?? null;
  const calls = (await syscalls?.stop()) ?? null;
  const pressureAfter = await optional(() => env.memoryPressure?.());
  const storage = (await optional(() => env.storage?.()))?.facts ?? null;
  // Where the transfer ended: seen by the server where it can be, else the last byte handed to the socket.
  const clientEnd = uploads.every((u) => u?.bodySentAt != null) ? Math.max(...uploads.map((u) => u!.bodySentAt!)) : null;
  const transferEnd = serverEnd ?? clientEnd;
  return {
    initial,
    seconds,
    uploads,
    upload: uploads.find((u) => u !== null && u.status !== 200) ?? uploads[0] ?? null,
    durations,
    error: settled.find((r) => r.status === "rejected")?.reason ?? null,
    timedOut,
    transferSeconds: transferEnd !== null ? round((Math.min(transferEnd, tResponse) - t0) / 1000, 3) : null,
    transferEnd: transferEnd === null ? null : serverEnd !== null ? "server" : "client",
    bodySentSeconds: clientEnd !== null ? round((clientEnd - t0) / 1000, 3) : null,
    peak: watched.peakBytes,
    samples: watched.samples,
    sampleIntervalMs: watched.intervalMs,
    anonPeak: watched.anonPeakBytes ?? null,
    atPeak: watched.atPeak ?? null,
    points: watched.points,
    bounds: { uploadStart: t0, transferEnd, response: tResponse, downloadStart: null },
    counters: countersBefore && countersAfter ? counterDelta(countersBefore, countersAfter) : null,
    rss,
    instructions: counted,
    syscalls: calls,
    pressure:
      pressureBefore && pressureAfter
        ? {
            some_seconds: round(pressureAfter.some_seconds - pressureBefore.some_seconds, 6),
            full_seconds: round(pressureAfter.full_seconds - pressureBefore.full_seconds, 6),
          }
        : null,
    storage,
  };
}

/** How the upload ended, the first that applies: an OOM kill, the timeout, a dead PicoShare, an HTTP error. */
async function verdict(env: TestEnvironment, t: TransferFigures, ooms: number, to: FrontFigures, opts: TestOptions): Promise<void> {
  const running = await isRunning(env);
  const upload = t.upload;
  const proxied = to.proxy ? ` (through ${opts.proxy!.kind})` : "";
  if (ooms > 0) throw new Failure("oom_killed", `the kernel's OOM killer ended PicoShare (${ooms} kill(s) in the cgroup)`);
  if (t.timedOut) throw new Failure("timeout", `upload did not finish within ${opts.timeoutSec} s`);
  if (!running) {
    const how = await env.exited;
    throw new Failure("process_died", `PicoShare exited during the upload (${how.signal ?? `exit code ${how.code}`})`);
  }
  if (t.error) throw new Failure("http_error", `upload request failed${proxied}: ${errorMessage(t.error)}`);
  if (upload!.status !== 200) {
    const gateway = to.proxy && (upload!.status === 502 || upload!.status === 504) ? `: ${proxyVerdict(upload!.status, to.proxy)}` : "";
    throw new Failure("http_error", `upload answered HTTP ${upload!.status}${proxied}${gateway}: ${upload!.body.trim().slice(0, 200)}`);
  }
  const missingId = t.uploads.find((u) => !u!.id);
  if (missingId) throw new Failure("http_error", `upload answered 200 without an entry id: ${missingId.body.trim().slice(0, 200)}`);
}

/** What a proxy's 502 / 504 means for the upload, in its own terms. */
function proxyVerdict(status: number, proxy: RunningProxy): string {
  const facts = proxy.facts();
  return status === 504
    ? `the proxy gave up waiting for PicoShare's answer (proxy_read_timeout ${facts.settings.proxy_read_timeout})`
    : "the proxy lost its connection to PicoShare (Bad Gateway)";
}

/** Closes the front: the proxy's figures as it ends (null without one). */
export async function closeFront(to: FrontFigures | null): Promise<ProxyFacts | null> {
  const facts = to?.proxy?.facts() ?? null;
  await to?.proxy?.stop();
  return facts;
}
