// One measured upload, phase by phase (lib/upload/phases/): make the
// environment and start PicoShare, wait until it answers, log in, upload
// while sampling memory, check what arrived, download it, time requests of
// its pages with the file still stored, and tear down; after a failure, see
// what a restart finds. Each phase returns its own figures; the result is
// made from them in one place. The result says how the test ended; only bad
// usage or an interrupt stop it without one.
// Writing it down is recordResult's job.
import { NO_STORAGE, type Backend, type TestEnvironment } from "../backends/types.ts";
import { peakRss } from "../core/proc.ts";
import { MiB, type Size } from "../core/sizes.ts";
import { NO_COUNTER_VALUES } from "./counters.ts";
import { NO_INSTRUCTIONS, type PhaseProbe } from "./instructions.ts";
import { hostFacts, type HostFacts } from "./host.ts";
import { dropCaches, probeEnvironment, settleHost, type EnvironmentProbe, type Settled } from "./noise.ts";
import type { PicoShareBinary } from "./picoshare.ts";
import { harnessVersion, type HarnessVersion } from "./provenance.ts";
import type { ProxyFacts, ProxyKind } from "./proxy.ts";
import type { Measurement } from "./record.ts";
import { NO_DOWNLOAD, NO_REQUESTS, isoTimestamp, type Recovery, type TestResult } from "./result.ts";
import { syscallFields } from "./syscalls.ts";
import { timelineOf } from "./timeline.ts";
import { auth, type AuthFigures } from "./phases/auth.ts";
import { SAMPLE_INTERVAL_MS, after, endingOf, round, type Ending, type Failure } from "./phases/common.ts";
import { download, type DownloadFigures } from "./phases/download.ts";
import { readiness, type ReadinessFigures } from "./phases/readiness.ts";
import { requests, type RequestsFigures } from "./phases/requests.ts";
import { plantCanary, recovery, type CanaryFigures } from "./phases/recovery.ts";
import { setup, type SetupFigures } from "./phases/setup.ts";
import { lastReadings, teardown, type LastReadings, type TeardownFigures } from "./phases/teardown.ts";
import { closeFront, front, upload, type FrontFigures, type UploadFigures } from "./phases/upload.ts";
import { checkEntries, verify, type VerifyFigures } from "./phases/verify.ts";

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
  /** K: requests of each kind in the requests phase after the download (default DEFAULT_REQUESTS; 0: no requests phase). */
  requests?: number;
  /** Uploads of the file started together, each on its own connection (default 1). */
  concurrency?: number;
  /** Upload a small entry first, and after an OOM kill, timeout or death restart PicoShare to see what survived (default true; --no-recovery). */
  recovery?: boolean;
  /** A reverse proxy the uploads and the download go through (--proxy), with its overridden settings. */
  proxy?: { kind: ProxyKind; settings: Record<string, string> } | null;
  /** An instrumented twin's (--count-instructions): the command PicoShare runs under, and what the phases call at their bounds. */
  instrument?: { wrapper: string[]; probe: PhaseProbe };
}

/** The figures of the phases between setup and teardown; null for a phase the test did not reach. */
interface Exercised {
  readiness: ReadinessFigures | null;
  auth: AuthFigures | null;
  canary: CanaryFigures | null;
  front: FrontFigures | null;
  upload: UploadFigures | null;
  download: DownloadFigures | null;
  verify: VerifyFigures | null;
  requests: RequestsFigures | null;
  /** The first phase's failure, which ended them. */
  failure: Failure | null;
}

const NOT_EXERCISED: Exercised = { readiness: null, auth: null, canary: null, front: null, upload: null, download: null, verify: null, requests: null, failure: null };

export async function measureTest(opts: TestOptions): Promise<Measurement> {
  const startedAt = new Date();
  const host = hostFacts(opts.workDir);
  // Before anything of the test is in memory: the test before's writes flushed, the probe, then (asked) a cold page cache.
  const settled = await settleHost();
  const probe = probeEnvironment(opts.workDir);
  if (opts.dropCaches) dropCaches();
  const made = await setup(opts);
  const env = made.env;
  const ran = env && !made.failure ? await exercise(env, made, opts) : NOT_EXERCISED;
  const ending = await endingOf(made.failure ?? ran.failure, env);
  // The failed test's own readings are taken before a restart looks at what survived.
  const last = env ? await lastReadings(env, ran.upload?.ooms ?? 0) : null;
  const recovered = env ? await recovery(env, ending, { secret: made.secret, canary: ran.canary?.canary ?? null, scratch: made.scratch, backendName: opts.backend.name }, opts) : null;
  const proxy = await closeFront(ran.front);
  const ended = await teardown(made, ending, opts);
  const up = ran.upload;
  const points = [...(up?.points ?? []), ...(ran.download?.points ?? [])];
  return {
    result: resultOf(opts, { startedAt, host, settled, probe, harness: await harnessVersion(), made, ran, ending, last, recovered, proxy, ended }),
    startedAt,
    picoshareLog: last ? last.log : null,
    timeline: up?.bounds && points.length > 0 ? timelineOf(points, { ...up.bounds, downloadStart: ran.download?.start ?? null }) : null,
  };
}

/** From a started PicoShare to a checked (and downloaded) upload; the first phase that fails ends it. */
async function exercise(env: TestEnvironment, made: SetupFigures, opts: TestOptions): Promise<Exercised> {
  const ready = await readiness(env, made.baseUrl);
  const session = await after(ready, () => auth(made.baseUrl, made.secret));
  const cookie = session?.cookie ?? "";
  const canary = await after(session, () => plantCanary(env, made.baseUrl, cookie, made.scratch, opts));
  // Uploads and the download go through the proxy; readiness and login went straight to PicoShare.
  const to = await after(canary, () => front(made.baseUrl, opts, made.scratch));
  const sent = await after(to, () => upload(env, to!, cookie, opts));
  const entries = await after(sent, () => checkEntries(to!.url, cookie, sent!.uploads, opts));
  const id = sent?.upload?.id ?? "";
  const got = opts.download === false ? null : await after(entries, () => download(env, to!.url, cookie, id, opts));
  const checked = opts.verify ? await after(got ?? entries, () => verify(to!.url, cookie, id, got, opts)) : null;
  // With the file still stored: its list and info pages and a download's first byte, through the same front.
  const asked = await after(checked ?? got ?? entries, () => requests(env, to!.url, cookie, id, opts));
  const failure = [ready, session, canary, to, sent, entries, got, checked, asked].find((p) => p?.failure)?.failure ?? null;
  return { readiness: ready, auth: session, canary, front: to, upload: sent, download: got, verify: checked, requests: asked, failure };
}

/** The result record of a measured test, from its phases' figures; log_file is set once the log is written (recordResult). */
function resultOf(
  opts: TestOptions,
  t: {
    startedAt: Date; host: HostFacts; settled: Settled; probe: EnvironmentProbe; harness: HarnessVersion; made: SetupFigures; ran: Exercised; ending: Ending;
    last: LastReadings | null; recovered: Recovery | null; proxy: ProxyFacts | null; ended: TeardownFigures;
  },
): TestResult {
  const { ran, ending } = t;
  const up = ran.upload;
  const settings = t.made.env?.settings ?? {};
  const success = ending.reason === "success";
  const fileMiB = opts.size.bytes / MiB;
  const seconds = up?.seconds ?? 0;
  const peak = Math.max(up?.peak ?? 0, up?.initial ?? 0);
  const n = opts.concurrency ?? 1;
  const uploads = up?.uploads ?? [];
  return {
    timestamp: isoTimestamp(t.startedAt),
    ram_mb: opts.ramMiB,
    file_size: opts.size.label,
    file_size_mb: fileMiB,
    duration_seconds: round(seconds, 3),
    // All the uploads' bytes over the time from the first start to the last response.
    throughput_mbps: success && seconds > 0 ? round((n * fileMiB) / seconds, 2) : 0,
    initial_memory_bytes: up?.initial ?? 0,
    peak_memory_bytes: peak,
    peak_memory_mb: Math.round(peak / MiB),
    http_status: up?.upload ? String(up.upload.status) : "000",
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
    go_runtime_env: ran.readiness?.goRuntimeEnv ?? null,
    cgroup_version: typeof settings.cgroup_version === "string" ? settings.cgroup_version : null,
    caches_dropped: opts.dropCaches ?? false,
    environment_probe: t.probe,
    ...t.settled,
    kernel_peak_memory_bytes: t.last?.kernelPeak ?? null,
    // The upload's peak, read at its response (the download's is download_peak_rss_bytes); where the backend reads it only
    // at the end (vagrant), the whole test's.
    picoshare_peak_rss_bytes: up?.rss ?? t.last?.picoRss ?? null,
    harness_peak_rss_bytes: peakRss(process.pid) ?? 0,
    memory_samples: up?.samples ?? 0,
    memory_sample_interval_ms: up?.sampleIntervalMs ?? SAMPLE_INTERVAL_MS,
    oom_kills: t.last?.ooms ?? up?.ooms ?? 0,
    // The upload's counters, named as the result's fields (null each where the backend has none).
    ...(up?.counters ?? NO_COUNTER_VALUES),
    write_amplification: up?.counters && opts.size.bytes > 0 ? round(up.counters.disk_write_bytes / opts.size.bytes, 3) : null,
    instructions: up?.instructions ?? null,
    ...syscallFields(up?.syscalls ?? null, ran.download?.syscalls ?? null),
    // What the upload left in PicoShare's storage, each fact as the backend named it.
    ...(up?.storage ?? NO_STORAGE),
    test_counters: t.last?.testCounters ?? null,
    anon_peak_bytes: up?.anonPeak ?? null,
    memory_at_peak: up?.atPeak ?? null,
    memory_pressure: up?.pressure ?? null,
    ...(ran.download?.fields ?? NO_DOWNLOAD),
    ...(ran.requests?.fields ?? NO_REQUESTS),
    upload_transfer_seconds: up?.transferSeconds ?? null,
    upload_processing_seconds: !up || up.transferSeconds === null || uploads.some((u) => u === null) ? null : round(seconds - up.transferSeconds, 3),
    upload_transfer_end: up?.transferEnd ?? null,
    upload_body_sent_seconds: up?.bodySentSeconds ?? null,
    concurrency: n,
    upload_durations_seconds: up?.durations ?? [],
    entry_ids: uploads.map((u) => u?.id ?? null),
    timeline_file: null,
    recovery: t.recovered,
    proxy: t.proxy,
    entry_id: up?.upload?.id ?? null,
    verified: ran.verify?.verified ?? null,
    error: ending.error,
    phases: {
      setup: t.made.seconds,
      readiness: ran.readiness?.seconds ?? 0,
      auth: ran.auth?.seconds ?? 0,
      upload: round(seconds, 3),
      download: ran.download?.seconds ?? 0,
      verify: ran.verify?.seconds ?? 0,
      requests: ran.requests?.seconds ?? 0,
      teardown: t.ended.seconds,
    },
    backend_settings: settings,
    host: t.host,
    log_file: null,
    run_id: opts.runId,
    iteration: opts.iteration ?? 1,
    warmup: opts.warmup ?? false,
    // Counted in the test's twin, when asked (instrumentedTwin).
    ...NO_INSTRUCTIONS,
  };
}

