#!/usr/bin/env bun
// The test matrix: every memory limit x every file size, each cell run
// warm-ups + iterations times, each test a run-test process of its own,
// everything of a run in results/matrix-TIMESTAMP/.
import { join, resolve } from "node:path";
import { mkdirSync } from "node:fs";
import { isoTimestamp } from "../lib/upload/result.ts";
import { parseCli } from "../lib/core/cli.ts";
import { runMain } from "../lib/core/main.ts";
import { log, success, failure, warn } from "../lib/core/log.ts";
import { interruptSignal, interrupted, onCleanup } from "../lib/core/cleanup.ts";
import { EXIT, UsageError } from "../lib/core/errors.ts";
import { defaultWorkDir, ensureWritableDir } from "../lib/core/files.ts";
import { hostFacts } from "../lib/upload/host.ts";
import { RESULTS_DIR, displayPath } from "../lib/core/paths.ts";
import { resolvePicoShare, resolvePicoShareChoice } from "../lib/upload/picoshare.ts";
import { loadBackend } from "../lib/backends/index.ts";
import { RUN_TEST_OPTIONS, passedByMatrix, passedTwinChoice } from "../lib/upload/options.ts";
import { FILE_SIZES_DEFAULT, FLAG } from "../lib/core/flags.ts";
import { flagSpec, flagsOf, switchFlag, usageText, valueFlag, valueOf, withDefault, type Flag } from "../lib/core/flag-kit.ts";
import { runProjectScript } from "../lib/core/child-script.ts";
import { formatDuration } from "../lib/core/durations.ts";
import {
  generateCommand, parseConcurrencyLevels, parseFileSizes, parseMemoryLimits, testCellName, testFileProblems,
} from "../lib/matrix/plan.ts";
import { levelsOf, pendingTests, type MatrixOptions } from "../lib/matrix/state.ts";
import { parseShard } from "../lib/matrix/shard.ts";
import { controlRecord, controlTest, controlWatch, parseControl } from "../lib/matrix/sentinel.ts";
import { MatrixRun, type EndStatus } from "../lib/matrix/run.ts";
import { resumeCommand } from "../lib/matrix/outputs.ts";
import { runCell } from "../lib/matrix/cell.ts";
import { preflight } from "../lib/matrix/preflight.ts";
import { checkCountInstructions, twinChoice } from "../lib/upload/instructions.ts";
import { matrixProgress } from "../lib/matrix/progress.ts";
import { formatOverhead } from "../lib/output/summary.ts";
import { parseSize, type Size } from "../lib/core/sizes.ts";


const OWN = {
  stopOnFailure: switchFlag("stop-on-failure", "Stop the matrix at the first failed measured test"),
  concurrencyLevels: valueFlag("concurrency-levels", {
    value: "LIST", default: "1",
    help: "Uploads at once, a third axis of cells: each cell is RAM x size x level, spelt 256MB/1G and " +
      "256MB/1G/x3; run-test's --concurrency (aggregate throughput, each upload's time); the CSV keeps " +
      "the original's header, the level is in matrix-counters.csv and matrix.json",
  }),
  shard: valueFlag("shard", {
    value: "I/N|auto",
    help: "Run only shard I of N (1-based) of the cells: a share the same on every host, balanced by the " +
      "bytes each cell uploads, a cell's iterations together; its own folder and results log (merge them " +
      "with results.ts merge). auto: the index an engine gives the job (Slurm SLURM_ARRAY_TASK_ID/_MIN/_COUNT, " +
      "Kubernetes JOB_COMPLETION_INDEX with JOB_COMPLETIONS, CI CI_NODE_INDEX/CI_NODE_TOTAL), logged with what it read",
  }),
  controlCell: valueFlag("control-cell", {
    value: "CELL",
    help: "The drift sentinel: re-run this cell (spelt 256MB/100M) before the first test and after every " +
      "--control-every K tests, as control runs (DIR/control/, a \"control\" run in the results log; never " +
      "the cell's measurements). When a control's throughput, CPU seconds or environment probe leaves the " +
      "first 3 controls' spread (widened to 25 % of their median), it warns at once",
  }),
  controlEvery: valueFlag("control-every", { value: "K", default: "5", help: "Tests between control runs" }),
  stopOnDrift: switchFlag("stop-on-drift", "With --control-cell: stop at the first drift, exit 4, resumable with --resume"),
  generate: switchFlag("generate", "Make missing test files first (with generate-test-files)"),
};
const ITERATIONS = withDefault(FLAG.iterations, "1");
const WARMUP = withDefault(FLAG.warmup, "0");
const P = RUN_TEST_OPTIONS;

const GROUPS: Array<[string, Flag<any>[]]> = [
  ["Options:", [
    P.timeoutSec, OWN.stopOnFailure, ITERATIONS, WARMUP, FLAG.memoryLimits, withDefault(FLAG.fileSizes, FILE_SIZES_DEFAULT),
    OWN.concurrencyLevels, OWN.shard, OWN.controlCell, OWN.controlEvery, OWN.stopOnDrift, FLAG.resultsDir, P.backend,
    FLAG.picoshare, FLAG.picoshareSource, FLAG.picoshareRef, OWN.generate, P.testFiles, FLAG.workDir,
    P.allowMemoryBackedWorkDir, P.verify, P.dropCaches, P.countInstructions, P.instructionTwins, P.instructionSizes, P.noDownload, P.requests, P.noRecovery, P.proxy, P.proxySettings, P.reuseVm,
    FLAG.db, FLAG.resume,
  ]],
];
const USAGE = usageText(
  `Usage: bun scripts/run-test-matrix.ts [OPTIONS]

Runs the test matrix: every memory limit (outer loop) with every file size
(inner loop), in the order given, each test a run-test process of its own.
With --warmup W and --iterations N each cell runs W warm-up tests and then N
measured ones, one run-test each (W + N tests per cell).
A failed or crashed test does not stop the others (unless --stop-on-failure).
Everything of a run goes to RESULTS_DIR/matrix-YYYYMMDD-HHMMSS/: the result
JSON files, test-{RAM}MB-{SIZE}.log per cell, matrix-results.csv (one row per
measured test; warm-ups left out), summary.txt (with N > 1, per-cell
statistics and CV warnings too) and matrix.json (the options, for --resume).
The run and its results are also recorded in the SQLite results log (see
bun scripts/results.ts --help).
Exit status: 0 every measured test passed, 1 a measured test failed, 2 bad
usage or a set-up problem (nothing run), 130 interrupted (resume with --resume).

`,
  GROUPS,
  `Examples:
  bun scripts/run-test-matrix.ts
  bun scripts/run-test-matrix.ts --memory-limits 2048,1024 --file-sizes 100M,500M
  bun scripts/run-test-matrix.ts --file-sizes 100M,1G --generate --stop-on-failure
  bun scripts/run-test-matrix.ts --memory-limits 512,256 --file-sizes 100M --iterations 5 --warmup 1
  bun scripts/run-test-matrix.ts --memory-limits 256 --file-sizes 1G --concurrency-levels 1,3
  bun scripts/run-test-matrix.ts --resume results/matrix-20260129-120000
`,
);

type Values = Partial<Record<string, string | boolean>>;

/** Flags that --resume accepts besides itself: they replace the stored values. */
const RESUME_OVERRIDES = ["resume", "timeout", "stop-on-failure"];

/** Refuses (exit 2) when test files are missing; with --generate, makes them first. */
async function ensureTestFiles(sizes: Size[], dir: string, generate: boolean, canGenerate = true): Promise<void> {
  let problems = testFileProblems(sizes, dir);
  if (problems.length === 0) return;
  const labels = problems.map((p) => p.size.label);
  const make = generateCommand(labels, dir);
  if (!generate) {
    throw new UsageError(
      `test files missing or wrong: ${problems.map((p) => `${p.path} (${p.problem})`).join(", ")}; ` +
        `make them with \`${make}\`${canGenerate ? ", or add --generate" : ""}`,
    );
  }
  ensureWritableDir(dir, "--test-files");
  log(`Making test files ${labels.join(", ")} in ${displayPath(dir)}: ${make}`);
  const ran = await runProjectScript("generate-test-files", ["--sizes", labels.join(","), "--dir", dir]);
  if (interrupted()) throw interruptSignal.reason;
  problems = testFileProblems(sizes, dir);
  if (ran.code !== 0 || problems.length > 0) {
    throw new UsageError(
      `could not make the test files (generate-test-files ${ran.signal ?? `exited with code ${ran.code}`}; see above): ` +
        `run \`${make}\` to see why`,
    );
  }
}

/** A new matrix from the command line: every check that can refuse comes before the folder is made. */
async function startNew(v: Values, t0: number): Promise<MatrixRun> {
  const passed = passedByMatrix(v);
  const memory = parseMemoryLimits(v["memory-limits"] as string | undefined);
  const sizes = parseFileSizes(v["file-sizes"] as string | undefined);
  const levels = parseConcurrencyLevels(v["concurrency-levels"] as string | undefined);
  const shard = v.shard === undefined ? undefined : parseShard(v.shard as string);
  const control = parseControl(v["control-cell"] as string | undefined, v["control-every"] as string | undefined, Boolean(v["stop-on-drift"]));
  if (shard) log(`Shard ${shard.index} of ${shard.count} (${shard.source})`);
  passed.get("timeout");
  passed.get("requests");
  const iterations = valueOf(ITERATIONS, v.iterations);
  const warmup = valueOf(WARMUP, v.warmup);
  const backendName = passed.get("backend");
  const twins = passedTwinChoice(passed);
  checkCountInstructions(backendName, twins, sizes.map((s) => s.label));
  const testFiles = passed.get("test_files");
  const resultsDir = resolve((v["results-dir"] as string | undefined) ?? RESULTS_DIR);
  const workDir = v["work-dir"] ? resolve(v["work-dir"] as string) : null;
  const dbPath = resolve((v.db as string | undefined) ?? join(resultsDir, "results.db"));
  // The control cell's file too.
  const allSizes = control && !sizes.some((s) => s.label === controlTest(control, 1).size.label) ? [...sizes, controlTest(control, 1).size] : sizes;
  if (!v.generate) await ensureTestFiles(allSizes, testFiles, false);
  ensureWritableDir(resultsDir, "--results-dir");
  const picoshare = await resolvePicoShareChoice(
    { path: v.picoshare as string | undefined, source: v["picoshare-source"] as string | undefined, ref: v["picoshare-ref"] as string | undefined },
    "picoshare",
  );
  if (v.generate) await ensureTestFiles(allSizes, testFiles, true);
  await preflight(backendName, picoshare, memory, sizes, workDir, passed.get("allow_memory_backed_work_dir"), passed.get("drop_caches"), Math.max(...levels), twins);
  const options: MatrixOptions = {
    memory_limits: memory,
    file_sizes: sizes.map((s) => s.label),
    ...passed.all(),
    stop_on_failure: Boolean(v["stop-on-failure"]),
    picoshare: { path: picoshare.path, version: picoshare.version, sha256: picoshare.sha256 },
    work_dir: workDir,
    iterations,
    warmup,
    concurrency_levels: levels,
    ...(shard ? { shard } : {}),
    ...(control ? { control } : {}),
  };
  return MatrixRun.create({
    resultsDir,
    dbPath,
    options,
    host: hostFacts(workDir ?? defaultWorkDir()),
    prepSeconds: (performance.now() - t0) / 1000,
  });
}

/** An interrupted matrix, continued with its stored options. */
async function resume(v: Values, t0: number): Promise<MatrixRun> {
  const extra = Object.keys(v).filter((k) => !RESUME_OVERRIDES.includes(k));
  const dir = resolve(v.resume as string);
  if (extra.length > 0) {
    throw new UsageError(
      `--resume continues ${displayPath(dir)} with the options stored in its matrix.json: drop ${extra.map((k) => `--${k}`).join(", ")} ` +
        `(only --timeout and --stop-on-failure may be given again)`,
    );
  }
  const timeout = v.timeout === undefined ? undefined : passedByMatrix(v).get("timeout");
  const { state, lock } = MatrixRun.load(dir);
  try {
    const o = state.options;
    const picoshare = await resolvePicoShare(o.picoshare.path);
    if (picoshare.sha256 !== o.picoshare.sha256) {
      throw new UsageError(
        `--resume ${displayPath(dir)}: PicoShare at ${o.picoshare.path} has changed since the matrix started ` +
          `(sha256 ${picoshare.sha256.slice(0, 12)}, was ${o.picoshare.sha256.slice(0, 12)}); results would mix two builds: start a new matrix`,
      );
    }
    if (timeout !== undefined) o.timeout = timeout;
    if (v["stop-on-failure"]) o.stop_on_failure = true;
    const sizes = o.file_sizes.map((s) => parseSize(s));
    const left = pendingTests(state);
    const pendingSizes = sizes.filter((s) => left.some((t) => t.size.label === s.label));
    await ensureTestFiles(pendingSizes, o.test_files, false, false);
    await preflight(
      o.backend, picoshare, o.memory_limits, pendingSizes.length > 0 ? pendingSizes : sizes, o.work_dir, o.allow_memory_backed_work_dir, o.drop_caches,
      Math.max(...levelsOf(o)), twinChoice(o),
    );
    return MatrixRun.resume(dir, state, lock, (performance.now() - t0) / 1000);
  } catch (err) {
    lock.release();
    throw err;
  }
}

function closingBlock(run: MatrixRun, status: EndStatus): void {
  const c = run.counts();
  if (status === "complete") log("Test matrix complete!");
  else if (status === "stopped on failure") log(`Test matrix stopped at the first failure (--stop-on-failure): ${c.done} of ${run.totalTests} tests run`);
  else if (status === "stopped on drift") log(`Test matrix stopped: the control cell drifted (--stop-on-drift): ${c.done} of ${run.totalTests} tests run`);
  else log(`Test matrix interrupted: ${c.done} of ${run.totalTests} tests run`);
  log(`  Passed: ${c.passed}`);
  log(`  Failed: ${c.failed}`);
  const warmups = c.warmups > 0 ? ` (${c.warmups} warm-up${c.warmups === 1 ? "" : "s"}, not counted)` : "";
  log(`  Total: ${c.done} of ${run.totalTests} tests${warmups}, ${formatDuration(run.totalSeconds())}`);
  log(`  Overhead: ${formatOverhead(run.overheadPerTest())}`);
  log(`  Results: ${displayPath(run.dir)}`);
  log(`  CSV: ${displayPath(run.csvPath)}`);
  log(`  Summary: ${displayPath(run.summaryPath)}`);
  log(`  Database: ${displayPath(run.state.db)} (run ${run.runId})`);
  if (run.state.options.iterations > 1) for (const w of run.cellStatistics().flatMap((s) => s.warnings)) warn(w);
  if (run.pending().length > 0) log(`Resume with: ${resumeCommand(run.dir)}`);
}

await runMain(async () => {
  const t0 = performance.now();
  const { values: v } = parseCli(flagSpec(flagsOf(GROUPS)), USAGE);
  const resuming = v.resume !== undefined;
  const run = resuming ? await resume(v, t0) : await startNew(v, t0);
  const o = run.state.options;
  const cells = run.cells();
  const todo = run.pending();

  // From here on, however the matrix ends, its folder holds the partial picture.
  const progress = matrixProgress({
    totalTests: cells.length,
    doneTests: cells.length - todo.length,
    remainingBytes: todo.reduce((s, c) => s + c.size.bytes, 0),
    doneBytes: run.state.cells.filter((c) => c.wall_seconds > 0).reduce((s, c) => s + c.bytes, 0),
    doneSeconds: run.state.cells.reduce((s, c) => s + c.wall_seconds, 0),
  });
  // Only for what it keeps across tests: each test's environment is made by its run-test.
  const backend = await loadBackend(o.backend, { reuseVm: o.reuse_vm && o.backend === "vagrant" });
  const forgetFinish = onCleanup("write the partial matrix results", async () => {
    progress.stop();
    await backend.endRun?.();
    run.finish("interrupted");
    closingBlock(run, "interrupted");
  });

  log("PicoShare Performance Test Matrix");
  log(`Memory configs: ${o.memory_limits.join(" ")}`);
  log(`File sizes: ${o.file_sizes.join(" ")}`);
  if (levelsOf(o).some((n) => n > 1)) log(`Concurrency levels: ${levelsOf(o).join(" ")} uploads at once`);
  if (o.shard) log(`Shard: ${o.shard.index} of ${o.shard.count} (${o.shard.source}): ${new Set(cells.map(testCellName)).size} cell(s) of this matrix`);
  if (run.repeated) log(`Iterations: ${o.iterations} per cell${o.warmup > 0 ? `, after ${o.warmup} warm-up${o.warmup === 1 ? "" : "s"}` : ""}`);
  log(`Total tests: ${cells.length}`);
  log(`Results directory: ${displayPath(run.dir)}`);
  log(`Backend: ${o.backend}; PicoShare ${o.picoshare.version} (${o.picoshare.path}, sha256 ${o.picoshare.sha256.slice(0, 12)})`);
  log(`Database: ${displayPath(run.state.db)} (run ${run.runId})`);
  if (resuming) {
    const adopted = run.adoptOrphanResults();
    if (adopted.length > 0) log(`Found results written before the interruption: ${adopted.join(", ")}`);
    const left = run.pending();
    log(`Resuming: ${cells.length - left.length} of ${cells.length} tests have results, ${left.length} to run`);
    todo.splice(0, todo.length, ...left);
  }

  // The drift sentinel: its watch replays the controls already run (a resumed matrix's too).
  const watch = controlWatch();
  for (const c of run.controls) watch.add(c, `control after test ${c.after_tests}`);
  const runControl = async (): Promise<boolean> => {
    const ctl = o.control!;
    const n = run.controls.length + 1;
    const test = controlTest(ctl, n);
    const after = run.state.totals.tests_run;
    log(`Control ${n} (${ctl.cell}, after test ${after})`);
    const outcome = await runCell(test, {
      dir: controlDir, runId: run.controlRunId(), db: run.state.db, options: o, claimed: new Set(), onStart: (pid) => run.lock.setChild(pid),
    });
    run.lock.setChild(null);
    const record = controlRecord(after, isoTimestamp(new Date()), outcome.result, outcome.resultFile);
    record.drift = watch.add(record, `control ${n} (after test ${after})`);
    run.recordControl(record);
    log(`Control ${n}: ${record.success ? `${record.throughput_mbps} MB/s, CPU ${record.cpu_seconds} s` : `FAILED (${outcome.result?.exit_reason ?? outcome.error})`}`);
    if (record.drift) warn(record.drift);
    return record.drift !== null;
  };
  const controlDir = join(run.dir, "control");
  if (o.control) mkdirSync(controlDir, { recursive: true });

  run.startLoop();
  let status: EndStatus = "complete";
  const drifted = async () => o.control !== undefined && (await runControl()) && o.control.stop_on_drift;
  if (o.control && run.controls.length === 0 && todo.length > 0 && (await drifted())) status = "stopped on drift";
  for (let i = 0; i < todo.length && status === "complete"; i++) {
    const cell = todo[i];
    if (interrupted()) throw interruptSignal.reason;
    const name = `[${cell.index}/${cells.length}]`;
    const atOnce = cell.concurrency > 1 ? `, ${cell.concurrency} uploads at once` : "";
    log(`${name} Running: ${cell.ram}MB RAM, ${cell.size.label} file${atOnce}${run.suffix(cell)}`);
    progress.cellStarted(`${testCellName(cell)}${run.suffix(cell)}`, cell.size.bytes);
    const outcome = await runCell(cell, {
      dir: run.dir,
      runId: run.runId,
      db: run.state.db,
      options: o,
      claimed: run.claimed(),
      onStart: (pid) => run.lock.setChild(pid),
    });
    run.lock.setChild(null);
    const record = run.recordOutcome(cell, outcome);
    const took = `(took ${outcome.wallSeconds.toFixed(1)}s${cell.warmup ? "; warm-up, not counted" : ""})`;
    if (record.row.success) success(`${name} PASS ${took}`);
    else {
      failure(`${name} FAIL ${took}`);
      const why = record.error ?? outcome.result?.error ?? "see the result file";
      log(`  ${record.row.exit_reason}: ${why.length > 240 ? `${why.slice(0, 240)}...` : why}`);
      log(`  log: ${displayPath(record.log_file)}`);
    }
    progress.cellFinished(cell.size.bytes, outcome.wallSeconds);
    if (!record.row.success && !cell.warmup && o.stop_on_failure && i < todo.length - 1) {
      log(`Stopping: ${testCellName(cell)}${run.suffix(cell)} failed and --stop-on-failure is set`);
      status = "stopped on failure";
      break;
    }
    if (o.control && run.state.totals.tests_run % o.control.every === 0 && i < todo.length - 1 && (await drifted())) {
      log("Stopping: the control cell drifted and --stop-on-drift is set");
      status = "stopped on drift";
    }
  }

  progress.stop();
  forgetFinish();
  await backend.endRun?.();
  run.finish(status);
  closingBlock(run, status);
  if (status === "stopped on drift") return EXIT.drift;
  return run.counts().failed > 0 ? EXIT.failed : EXIT.ok;
}, USAGE);
