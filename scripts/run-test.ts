#!/usr/bin/env bun
// One measured upload of a test file to a memory-limited PicoShare, or a
// series of them (--warmup, --iterations), each in a fresh environment.
// stdout: the result files' paths, one per line. Everything else goes to stderr.
import { join } from "node:path";
import { runMain } from "../lib/core/main.ts";
import { log, success, failure, warn } from "../lib/core/log.ts";
import { EXIT, UsageError } from "../lib/core/errors.ts";
import { ensureWritableDir } from "../lib/core/files.ts";
import { requireTestFile } from "../lib/upload/testfiles.ts";
import { resolvePicoShareChoice } from "../lib/upload/picoshare.ts";
import { checkDropCaches } from "../lib/upload/noise.ts";
import { proxyPreflight } from "../lib/upload/proxy.ts";
import { loadBackend } from "../lib/backends/index.ts";
import { measureTest, type TestOptions } from "../lib/upload/runner.ts";
import { checkCountInstructions, twinFor, type TwinChoice } from "../lib/upload/instructions.ts";
import { instrumentedTwin } from "../lib/upload/twin.ts";
import { recordResult } from "../lib/upload/record.ts";
import { RUN_TEST_OPTIONS, parseRunTestCli, readChildContext } from "../lib/upload/options.ts";
import { usageText } from "../lib/core/flag-kit.ts";
import { displayPath } from "../lib/core/paths.ts";
import type { TestResult } from "../lib/upload/result.ts";
import { summarizeCell } from "../lib/stats/cells.ts";
import { statisticsBlock } from "../lib/stats/text.ts";
import { MiB, formatBytes } from "../lib/core/sizes.ts";

const O = RUN_TEST_OPTIONS;
const USAGE = usageText(
  `Usage: bun scripts/run-test.ts --ram MB --file-size SIZE [OPTIONS]

Runs one measured upload: starts PicoShare with a hard memory limit, uploads
test-files/SIZE.bin, and records duration, throughput and memory. Logs go to
stderr; the result file's path is printed alone on stdout.
With --warmup W and --iterations N it runs W + N such tests one after another,
each in a fresh environment with a result file of its own: the warm-ups first
(written and recorded, never counted), then the N measured ones, followed by
their statistics (median, mean, sd, CV, min, max, 95 % CI of the median).
stdout then has every result file's path, one per line, in the order run.
Exit status: 0 passed (every measured test), 1 a test failed (a result is
written), 2 bad usage or a set-up problem (nothing is written).

`,
  [
    ["Required:", [O.ram, O.size]],
    ["Optional:", [
      O.timeoutSec, O.iterations, O.warmup, O.keepVm, O.resultsDir, O.reuseVm, O.backend, O.picoshare, O.picoshareSource,
      O.picoshareRef, O.verify, O.noDownload, O.requests, O.concurrency, O.noRecovery, O.proxy, O.proxySettings, O.dropCaches, O.workDir,
      O.allowMemoryBackedWorkDir, O.testFiles, O.db, O.countInstructions, O.instructionTwins, O.instructionSizes,
    ]],
  ],
  `Examples:
  bun scripts/run-test.ts --ram 512 --file-size 1G
  bun scripts/run-test.ts --ram 256 --file-size 100M --verify
  bun scripts/run-test.ts --ram 512 --file-size 100M --iterations 5 --warmup 1
  bun scripts/run-test.ts --ram 2048 --file-size 100M --keep-vm
  bun scripts/run-test.ts --ram 1024 --file-size 500M --picoshare ~/picoshare/picoshare
  bun scripts/run-test.ts --ram 256 --file-size 100M --picoshare-source ~/picoshare --picoshare-ref main
  bun scripts/run-test.ts --ram 256 --file-size 1G --concurrency 3
  bun scripts/run-test.ts --ram 256 --file-size 1G --proxy nginx --proxy-settings proxy_read_timeout=10s
`,
);

await runMain(async () => {
  const opt = parseRunTestCli(USAGE);
  // Every check that can refuse comes before anything is made or written.
  const ramMiB = opt("ram");
  const size = opt("size");
  const timeoutSec = opt("timeoutSec");
  const iterations = opt("iterations");
  const warmups = opt("warmup");
  const single = iterations + warmups === 1;
  // The matrix runs one test per run-test and says which of the cell's tests it is.
  const { runId, iteration: envIteration, warmup: envWarmup, picoshare: parentBuild } = readChildContext();
  if (!single && (envIteration !== null || envWarmup)) {
    throw new UsageError("PERF_ITERATION and PERF_WARMUP describe a single test: unset them to use --iterations or --warmup");
  }
  const backendName = opt("backend");
  const filePath = requireTestFile(size, opt("testFiles"));
  const concurrency = opt("concurrency");
  const requestsPerKind = opt("requests");
  const proxyKind = opt("proxy");
  const proxySettings = opt("proxySettings");
  if (proxySettings && !proxyKind) throw new UsageError("--proxy-settings without --proxy: add --proxy nginx, or leave the settings out");
  if (proxyKind) proxyPreflight(proxyKind);
  const countInstructions = opt("countInstructions");
  const twins: TwinChoice = { count: countInstructions, twins: opt("instructionTwins"), sizes: opt("instructionSizes") };
  checkCountInstructions(backendName, twins, [size.label]);
  const resultsDir = opt("resultsDir");
  ensureWritableDir(resultsDir, "--results-dir");
  const workDir = opt("workDir");
  ensureWritableDir(workDir, "--work-dir");
  const dbPath = opt("db") ?? join(resultsDir, "results.db");
  const resolved = await resolvePicoShareChoice(
    { path: opt("picoshare") ?? undefined, source: opt("picoshareSource") ?? undefined, ref: opt("picoshareRef") ?? undefined },
    "picoshare",
  );
  // The parent's label for the build it passed (the ref or folder the user gave), where this is that binary.
  const picoshare = parentBuild && parentBuild.sha256 === resolved.sha256 ? { ...resolved, version: parentBuild.version } : resolved;
  const backend = await loadBackend(backendName, { reuseVm: opt("reuseVm") });
  const allowMemoryBackedWorkDir = opt("allowMemoryBackedWorkDir");
  const dropCachesFirst = opt("dropCaches");
  if (dropCachesFirst) checkDropCaches();
  await backend.preflight({ ramMiB, workDir, picoshare, uploadBytes: concurrency * size.bytes, signal: AbortSignal.timeout(1e9), allowMemoryBackedWorkDir });

  log("=== PicoShare Performance Test ===");
  log(`RAM: ${ramMiB}MB`);
  log(`File: ${size.label}`);
  log(`Backend: ${backend.name}`);
  log(`PicoShare: ${picoshare.version} (${picoshare.path}, sha256 ${picoshare.sha256.slice(0, 12)})`);
  log(`Timeout: ${timeoutSec}s`);
  if (concurrency > 1) log(`Concurrency: ${concurrency} uploads at once`);
  if (dropCachesFirst) log("Page cache: synced and dropped before each test (--drop-caches)");
  if (!single) log(`Iterations: ${iterations}${warmups > 0 ? ` (after ${warmups} warm-up${warmups === 1 ? "" : "s"})` : ""}`);

  const measured: TestResult[] = [];
  const total = warmups + iterations;
  for (let i = 1; i <= total; i++) {
    const warmup = single ? envWarmup : i <= warmups;
    if (!single) log(warmup ? `Warm-up ${i}/${warmups}` : `Iteration ${i - warmups}/${iterations}`);
    const test: TestOptions = {
      ramMiB, size, filePath, timeoutSec, workDir, runId, backend, picoshare,
      keep: opt("keepVm") && i === total,
      verify: opt("verify"),
      dropCaches: dropCachesFirst,
      download: !opt("noDownload"),
      requests: requestsPerKind,
      concurrency,
      recovery: !opt("noRecovery"),
      proxy: proxyKind ? { kind: proxyKind, settings: proxySettings ?? {} } : null,
      iteration: single ? (envIteration ?? 1) : i,
      warmup,
    };
    const measurement = await measureTest(test);
    // The twin's counts join the measured test's result; nothing else of it does.
    // A lone test's parent (the matrix, compare) decided already whether it gets one.
    const twin = !warmup && twinFor(single ? 1 : i - warmups, size.label, twins);
    if (twin) measurement.result = { ...measurement.result, ...(await instrumentedTwin(test, measurement, resultsDir)) };
    const { result, resultPath } = recordResult(measurement, { resultsDir, dbPath });
    reportTest(result, ramMiB);
    // Each path as soon as its test is done: an interrupted series still names what it wrote.
    process.stdout.write(`${displayPath(resultPath)}\n`);
    if (!warmup) measured.push(result);
  }

  if (iterations > 1) {
    const cell = summarizeCell(measured);
    for (const line of statisticsBlock(cell, ramMiB)) log(line);
    for (const w of cell.warnings) warn(w);
  }
  return measured.every((r) => r.success) ? EXIT.ok : EXIT.failed;
}, USAGE);

/** The original's TEST PASSED / TEST FAILED block for one test. */
function reportTest(result: TestResult, ramMiB: number): void {
  const report = result.success ? success : failure;
  report(result.success ? "✅ TEST PASSED" : `❌ TEST FAILED: ${result.exit_reason}`);
  if (result.error) log(`   Reason: ${result.error}`);
  log(`   Duration: ${result.duration_seconds.toFixed(2)}s`);
  if (result.upload_transfer_seconds !== null && result.upload_processing_seconds !== null) {
    log(`   Transfer / processing: ${result.upload_transfer_seconds.toFixed(2)}s / ${result.upload_processing_seconds.toFixed(2)}s (end of transfer seen by the ${result.upload_transfer_end})`);
  }
  if (result.concurrency > 1) log(`   Each upload: ${result.upload_durations_seconds.map((d) => `${d.toFixed(2)}s`).join(", ")}`);
  log(`   Throughput: ${result.throughput_mbps.toFixed(2)} MB/s`);
  log(`   Peak Memory: ${result.peak_memory_mb}MB / ${ramMiB}MB`);
  // The working set above includes page cache PicoShare touched; its own resident set is what its code holds.
  if (result.picoshare_peak_rss_bytes !== null) {
    const anon = result.anon_peak_bytes === null ? "" : ` (anon peak ${Math.round(result.anon_peak_bytes / MiB)}MB)`;
    log(`   PicoShare Peak RSS: ${Math.round(result.picoshare_peak_rss_bytes / MiB)}MB${anon}`);
  }
  if (result.disk_write_bytes !== null) {
    log(
      `   Counters (upload): CPU ${result.cpu_seconds}s (${result.cpu_user_seconds}s user + ${result.cpu_system_seconds}s system), ` +
        `disk written ${formatBytes(result.disk_write_bytes)} (${result.write_amplification} x the file), ` +
        `${result.write_syscalls} write / ${result.read_syscalls} read syscalls, ` +
        `${result.minor_faults} minor / ${result.major_faults} major faults`,
    );
  }
  if (result.download_exit_reason !== null) {
    log(
      result.download_exit_reason === "success"
        ? `   Download: ${result.download_duration_seconds?.toFixed(2)}s, ${result.download_throughput_mbps?.toFixed(2)} MB/s, peak ${Math.round((result.download_peak_memory_bytes ?? 0) / MiB)}MB`
        : `   Download: FAILED (${result.download_exit_reason}): ${result.download_error}`,
    );
  }
  if (result.requests_per_kind !== null) {
    const ms = (s: number | null) => (s === null ? "-" : `${(s * 1000).toFixed(2)}ms`);
    log(
      `   Requests (median of ${result.requests_per_kind} each): list page ${ms(result.list_page_seconds)}, info page ${ms(result.info_page_seconds)}, ` +
        `download first byte ${ms(result.download_first_byte_seconds)}`,
    );
  } else if (result.requests_error !== null) {
    log(`   Requests: FAILED: ${result.requests_error}`);
  }
  if (result.upload_instructions !== null || result.download_instructions !== null) {
    const perRequest = result.list_page_instructions === null ? "" :
      `, per request: list page ${result.list_page_instructions}, info page ${result.info_page_instructions ?? "-"}, first byte ${result.download_first_byte_instructions ?? "-"}`;
    log(`   Instructions (${result.instructions_source}, counted in the twin): upload ${result.upload_instructions ?? "-"}, download ${result.download_instructions ?? "-"}${perRequest}`);
  }
  if (result.proxy) {
    const p = result.proxy;
    log(`   Proxy: ${p.proxy} ${p.version}, peak RSS ${p.peak_rss_bytes === null ? "?" : `${Math.round(p.peak_rss_bytes / MiB)}MB`}, request buffered on disk ${formatBytes(p.body_temp_peak_bytes)} at most`);
  }
  log(`   HTTP Status: ${result.http_status}`);
  const p = result.phases;
  log(
    `   Phases: setup ${p.setup}s, readiness ${p.readiness}s, auth ${p.auth}s, upload ${p.upload}s, ` +
      `verify ${p.verify}s, teardown ${p.teardown}s`,
  );
}
