#!/usr/bin/env bun
// One measured upload of a test file to a memory-limited PicoShare.
// stdout: the result file's path, alone. Everything else goes to stderr.
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseCli, positiveInt, positiveNumber, required } from "../lib/cli.ts";
import { runMain } from "../lib/main.ts";
import { log, success, failure } from "../lib/log.ts";
import { EXIT } from "../lib/errors.ts";
import { ensureWritableDir } from "../lib/files.ts";
import { parseSize } from "../lib/sizes.ts";
import { RESULTS_DIR, TEST_FILES_DIR } from "../lib/paths.ts";
import { requireTestFile } from "../lib/testfiles.ts";
import { resolvePicoShare } from "../lib/picoshare.ts";
import { loadBackend, parseBackend } from "../lib/backends/index.ts";
import { runTest } from "../lib/runner.ts";
import { displayPath } from "../lib/paths.ts";

const USAGE = `Usage: bun scripts/run-test.ts --ram MB --file-size SIZE [OPTIONS]

Runs one measured upload: starts PicoShare with a hard memory limit, uploads
test-files/SIZE.bin, and records duration, throughput and memory. Logs go to
stderr; the result file's path is printed alone on stdout.
Exit status: 0 passed, 1 the test failed (a result is written),
2 bad usage or a set-up problem (nothing is written).

Required:
  --ram MB            Memory limit in MiB (e.g. 2048, 1024, 512, 256)
  --file-size SIZE    Test file to upload: 512K, 100M, 500M, 1G, 2G, 5G ...
                      (binary units; made by bun scripts/generate-test-files.ts)

Optional:
  --timeout SEC       Upload timeout in seconds (default: 600)
  --keep-vm           Leave the environment running after the test and print how
                      to reach it and how to stop it (local: PicoShare keeps running)
  --results-dir DIR   Where results go (default: ./results)
  --backend NAME      local (default: a cgroup on this host), vagrant or qemu
  --picoshare PATH    PicoShare binary to test (default: $PICOSHARE_BIN, else a
                      build of $PICOSHARE_VERSION, default v1.5.4, cached in .cache/)
  --verify            Download the entry after the upload and compare its SHA-256
                      with the test file (a mismatch fails the test as "corrupt")
  --work-dir DIR      Where PicoShare's data dir and temp files go; needs about twice
                      the file size free (default: the system temp folder)
  --test-files DIR    Where the test files are (default: ./test-files)
  --db PATH           SQLite results log (default: RESULTS_DIR/results.db)
  --help              Show this text

Examples:
  bun scripts/run-test.ts --ram 512 --file-size 1G
  bun scripts/run-test.ts --ram 256 --file-size 100M --verify
  bun scripts/run-test.ts --ram 2048 --file-size 100M --keep-vm
  bun scripts/run-test.ts --ram 1024 --file-size 500M --picoshare ~/picoshare/picoshare
`;

await runMain(async () => {
  const { values: v } = parseCli(
    {
      ram: { type: "string" },
      "file-size": { type: "string" },
      timeout: { type: "string" },
      "keep-vm": { type: "boolean" },
      "results-dir": { type: "string" },
      backend: { type: "string" },
      picoshare: { type: "string" },
      verify: { type: "boolean" },
      "work-dir": { type: "string" },
      "test-files": { type: "string" },
      db: { type: "string" },
    },
    USAGE,
  );
  // Every check that can refuse comes before anything is made or written.
  const ramMiB = positiveInt("--ram", required("--ram", v.ram, "512"), "512");
  const size = parseSize(required("--file-size", v["file-size"], "100M"), "--file-size");
  const timeoutSec = positiveNumber("--timeout", v.timeout ?? "600", "600");
  const backendName = parseBackend(v.backend);
  const filePath = requireTestFile(size, resolve(v["test-files"] ?? TEST_FILES_DIR));
  const resultsDir = v["results-dir"] ?? displayPath(RESULTS_DIR);
  ensureWritableDir(resultsDir, "--results-dir");
  const workDir = resolve(v["work-dir"] ?? tmpdir());
  ensureWritableDir(workDir, "--work-dir");
  const dbPath = v.db ?? join(resultsDir, "results.db");
  const runId = process.env.PERF_RUN_ID ? Number(process.env.PERF_RUN_ID) : null;
  const picoshare = await resolvePicoShare(v.picoshare);
  const backend = await loadBackend(backendName);
  await backend.preflight({ ramMiB, workDir, picoshare, uploadBytes: size.bytes, signal: AbortSignal.timeout(1e9) });

  log("=== PicoShare Performance Test ===");
  log(`RAM: ${ramMiB}MB`);
  log(`File: ${size.label}`);
  log(`Backend: ${backend.name}`);
  log(`PicoShare: ${picoshare.version} (${picoshare.path}, sha256 ${picoshare.sha256.slice(0, 12)})`);
  log(`Timeout: ${timeoutSec}s`);

  const { result, resultPath } = await runTest({
    ramMiB, size, filePath, timeoutSec, resultsDir, workDir, dbPath, runId, backend, picoshare,
    keep: Boolean(v["keep-vm"]),
    verify: Boolean(v.verify),
  });

  const report = result.success ? success : failure;
  report(result.success ? "✅ TEST PASSED" : `❌ TEST FAILED: ${result.exit_reason}`);
  if (result.error) log(`   Reason: ${result.error}`);
  log(`   Duration: ${result.duration_seconds.toFixed(2)}s`);
  log(`   Throughput: ${result.throughput_mbps.toFixed(2)} MB/s`);
  log(`   Peak Memory: ${result.peak_memory_mb}MB / ${ramMiB}MB`);
  log(`   HTTP Status: ${result.http_status}`);
  const p = result.phases;
  log(
    `   Phases: setup ${p.setup}s, readiness ${p.readiness}s, auth ${p.auth}s, upload ${p.upload}s, ` +
      `verify ${p.verify}s, teardown ${p.teardown}s`,
  );
  process.stdout.write(`${displayPath(resultPath)}\n`);
  return result.success ? EXIT.ok : EXIT.failed;
}, USAGE);
