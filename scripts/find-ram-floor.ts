#!/usr/bin/env bun
// How little RAM is enough? For each file size, the smallest memory limit at
// which the upload passes: a bisection of whole tests (each a run-test
// process in a fresh environment), the final bracket's ends run again.
import { join, resolve } from "node:path";
import { writeFileSync } from "node:fs";
import { nonNegativeInt, parseCli, positiveInt, positiveNumber } from "../lib/core/cli.ts";
import { runMain } from "../lib/core/main.ts";
import { log, warn } from "../lib/core/log.ts";
import { interruptSignal, interrupted, onCleanup } from "../lib/core/cleanup.ts";
import { UsageError } from "../lib/core/errors.ts";
import { defaultWorkDir, ensureWritableDir, makeFreeDir } from "../lib/core/files.ts";
import { RESULTS_DIR, displayPath } from "../lib/core/paths.ts";
import { formatDuration } from "../lib/core/durations.ts";
import { formatTable } from "../lib/output/table.ts";
import { RUN_TEST_OPTIONS, childEnv, matrixPassedArgs, passedByMatrix, runTestArgs } from "../lib/upload/options.ts";
import { FLAG } from "../lib/core/flags.ts";
import { flagSpec, flagsOf, numberFlag, switchFlag, usageText, valueOf, type Flag } from "../lib/core/flag-kit.ts";
import { resolvePicoShareChoice } from "../lib/upload/picoshare.ts";
import { requireTestFile } from "../lib/upload/testfiles.ts";
import { hostFacts } from "../lib/upload/host.ts";
import { fileStamp, isoTimestamp } from "../lib/upload/result.ts";
import { parseFileSizes } from "../lib/matrix/plan.ts";
import { preflight } from "../lib/matrix/preflight.ts";
import { runTestChild } from "../lib/matrix/run-test-child.ts";
import { ResultsDb } from "../lib/store/results-db.ts";
import { RAM_FLOOR_KIND, bracketEnds, findFloor, probeVerdict, thrashLimitSeconds, type Floor, type FloorProbe, type FloorSearchSettings } from "../lib/floor/search.ts";

const OWN = {
  min: numberFlag("min", positiveInt, { value: "MB", example: "16", default: "16", help: "Lowest limit tried" }),
  max: numberFlag("max", positiveInt, { value: "MB", example: "2048", default: "2048", help: "Highest limit, which must pass" }),
  resolution: numberFlag("resolution", positiveInt, { value: "MB", example: "8", default: "8", help: "Stop narrowing when the bracket is this narrow" }),
  repeat: numberFlag("repeat", nonNegativeInt, { value: "N", example: "3", default: "3", help: "Re-runs of each end of the final bracket" }),
  thrashFactor: numberFlag("thrash-factor", positiveNumber, {
    value: "X", example: "5", default: "5", help: "A probe slower than X times the upload at --max is \"thrashing\"",
  }),
  minThrashSeconds: numberFlag("min-thrash-seconds", positiveNumber, {
    value: "SEC", example: "5", default: "5", help: "The thrash limit is never below SEC seconds",
  }),
  maxMinutes: numberFlag("max-minutes", positiveNumber, {
    value: "M", example: "30", shown: "no limit",
    help: "Stop a size's search once M minutes have passed (checked before each probe, so the probe under way " +
      "ends first) and report the bracket it has, \"finished\": false (text: UNFINISHED)",
  }),
  withDownload: switchFlag("with-download",
    "Each probe also downloads the entry, under the same limit, and passes only when both do (a failed download: " +
      "\"download oom_killed\", \"download thrashing\", ...); default: the upload only (the probes' results have null download fields)"),
};
const P = RUN_TEST_OPTIONS;
const GROUPS: Array<[string, Flag<any>[]]> = [
  ["Options:", [
    FLAG.fileSize, FLAG.fileSizes, OWN.min, OWN.max, OWN.resolution, OWN.repeat, OWN.thrashFactor, OWN.minThrashSeconds,
    OWN.maxMinutes, FLAG.picoshare, FLAG.picoshareSource, FLAG.picoshareRef,
  ]],
  ["Passed to each probe, as run-test takes them (--timeout is the reference\nprobe's limit and the cap of the thrash limit):", [
    P.timeoutSec, P.testFiles, P.backend, P.verify, P.dropCaches, P.allowMemoryBackedWorkDir, P.reuseVm, P.noDownload,
    P.noRecovery, P.proxy, P.proxySettings,
  ]],
  ["The search:", [OWN.withDownload, FLAG.workDir, FLAG.resultsDir, FLAG.db, FLAG.json]],
];
const FLAGS = flagsOf(GROUPS);

const USAGE = usageText(
  `Usage: bun scripts/find-ram-floor.ts --file-size SIZE | --file-sizes LIST [OPTIONS]

For each file size, the smallest memory limit (MiB) at which the upload
passes: first one test at --max (which must pass; its upload time is the
reference), then at --min, then a bisection between the highest failing and
the lowest passing limit until they are --resolution apart, each probe a whole
test in a fresh environment, run once. The two ends of that bracket are then
run --repeat times more; when the upper end fails once, the bracket moves up
and the search goes on, until the upper end passes every run.

Thrashing: near the floor an upload can swap page cache in and out for ever
instead of dying. So every probe after the reference runs under the thrash
limit: --thrash-factor times the reference, at least --min-thrash-seconds
(a short upload's time is mostly noise on a busy host), at most --timeout.
A probe still uploading there is stopped and counts as failed, outcome
"thrashing", whichever of the three set the limit (thrash_limit_seconds says
which one applied); only the reference probe can end as "timeout". Probes
measure the upload only, with no recovery check (run-test's --no-download
--requests 0 --no-recovery) unless --with-download.

Prints per size the bracket [highest failing, lowest passing], how the highest
failing limit's failing run ended (oom_killed, thrashing, ...), the probes made
and the time taken. Stored in the results log as a run of kind ram-floor (its
probes as results, each size's floor in table floors as soon as it is found;
bun scripts/report.ts RUN draws it); the tests' results and logs, and
floors.json, go to RESULTS_DIR/ram-floor-STAMP/. With --json, stdout has the
floors as JSON: {"floors": [...]}. --file-size SIZE searches one file size,
--file-sizes LIST several.
`,
  GROUPS,
  `Exit status: 0 the search ran (whatever it found, an unfinished search too),
2 bad usage or set-up, 1 anything else.

Examples:
  bun scripts/find-ram-floor.ts --file-size 100M
  bun scripts/find-ram-floor.ts --file-sizes 100M,1G --max 1024 --repeat 3 --json
  bun scripts/find-ram-floor.ts --file-size 5G --max-minutes 30 --picoshare-source ~/picoshare
  bun scripts/find-ram-floor.ts --file-size 64M --thrash-factor 2 --min-thrash-seconds 3
  bun scripts/find-ram-floor.ts --file-size 100M --with-download
`,
);

await runMain(async () => {
  const { values: v } = parseCli(flagSpec(FLAGS), USAGE);
  const s = (k: string) => v[k] as string | undefined;
  if (s("file-size") !== undefined && s("file-sizes") !== undefined) throw new UsageError("give --file-size SIZE or --file-sizes LIST, not both");
  if (s("file-size") === undefined && s("file-sizes") === undefined) throw new UsageError("give the file size to search: --file-size SIZE (e.g. --file-size 100M)", true);
  const sizes = parseFileSizes(s("file-size") ?? s("file-sizes"));
  const minMb = valueOf(OWN.min, v.min);
  const maxMb = valueOf(OWN.max, v.max);
  if (minMb >= maxMb) throw new UsageError(`--min ${minMb} must be below --max ${maxMb}`);
  const resolutionMb = valueOf(OWN.resolution, v.resolution);
  const repeat = valueOf(OWN.repeat, v.repeat);
  const thrashFactor = valueOf(OWN.thrashFactor, v["thrash-factor"]);
  const minThrashSec = valueOf(OWN.minThrashSeconds, v["min-thrash-seconds"]);
  const maxMinutes = valueOf(OWN.maxMinutes, v["max-minutes"]) ?? null;
  const passed = passedByMatrix(v);
  const timeoutSec = passed.get("timeout");
  const backend = passed.get("backend");
  for (const size of sizes) requireTestFile(size, passed.get("test_files"));
  const resultsDir = resolve(s("results-dir") ?? RESULTS_DIR);
  ensureWritableDir(resultsDir, "--results-dir");
  const workDir = s("work-dir") === undefined ? null : resolve(s("work-dir")!);
  const dbPath = resolve(s("db") ?? join(resultsDir, "results.db"));
  const picoshare = await resolvePicoShareChoice({ path: s("picoshare"), source: s("picoshare-source"), ref: s("picoshare-ref") }, "picoshare");
  await preflight(backend, picoshare, [maxMb], sizes, workDir, passed.get("allow_memory_backed_work_dir"), passed.get("drop_caches"));

  const started = new Date();
  const dir = makeFreeDir(resultsDir, `ram-floor-${fileStamp(started)}`);
  // Opened for each write only: the probes (run-test children) write to it in between.
  const store = <T>(write: (db: ResultsDb) => T): T => {
    const db = ResultsDb.open(dbPath);
    try {
      return write(db);
    } finally {
      db.close();
    }
  };
  const settings: FloorSearchSettings = {
    file_sizes: sizes.map((x) => x.label), min_mb: minMb, max_mb: maxMb, resolution_mb: resolutionMb, repeat, thrash_factor: thrashFactor, min_thrash_seconds: minThrashSec, max_minutes: maxMinutes,
  };
  const runId = store((db) =>
    db.startRun({
      kind: RAM_FLOOR_KIND, startedAt: isoTimestamp(started), backend, resultsDir: dir, picoshareVersion: picoshare.version,
      picoshareSha256: picoshare.sha256, options: { ...settings, ...passed.all(), work_dir: workDir }, host: hostFacts(workDir ?? defaultWorkDir()),
    }),
  );
  const setStatus = (status: "complete" | "interrupted") => store((db) => db.setRunStatus(runId, status, isoTimestamp(new Date())));
  const forget = onCleanup("mark the floor search interrupted", () => setStatus("interrupted"));
  log(`=== RAM floor: ${sizes.map((x) => x.label).join(", ")} between ${minMb} and ${maxMb} MiB (to ${resolutionMb} MiB, ends re-run ${repeat} x) ===`);
  log(`PicoShare ${picoshare.version} (${picoshare.path}); backend ${backend}; run ${runId} in ${displayPath(dbPath)}; folder ${displayPath(dir)}`);

  const floors: Floor[] = [];
  for (const size of sizes) {
    const t0 = performance.now();
    let reference: number | null = null;
    let limit = timeoutSec;
    const probe = async (ramMb: number, isRepeat: boolean): Promise<FloorProbe> => {
      const logFile = join(dir, `test-${ramMb}MB-${size.label}.log`);
      const args = runTestArgs({
        ...matrixPassedArgs(passed.all()),
        ram: ramMb, size, resultsDir: dir, db: dbPath, picoshare: picoshare.path, workDir, timeoutSec: limit,
        // The floor is the upload's unless asked: a download adds time and its own peak.
        noDownload: !v["with-download"],
        requests: v["with-download"] ? undefined : 0,
        // A probe asks only whether the upload passes: no small entry, no restart after a failure.
        noRecovery: true,
      });
      const w0 = performance.now();
      const child = await runTestChild(args, { logFile, timeoutSec: limit, env: childEnv({ runId }), header: (pid) => `--- ${isoTimestamp(new Date())} run-test (pid ${pid}): ${args.join(" ")}` });
      if (interrupted()) throw interruptSignal.reason;
      const r = child.result;
      if (!r) {
        // No result at this limit (run-test crashed, or a VM stalled past its deadline): a failure here, not the search's end.
        warn(`${size.label} at ${ramMb} MiB: ${child.failure} (log: ${displayPath(logFile)}): counted as a failure at this limit`);
        const p: FloorProbe = {
          ram_mb: ramMb, passed: false, outcome: "no_result", upload_seconds: 0,
          wall_seconds: Math.round((performance.now() - w0) / 10) / 100, repeat: isRepeat, result_file: null,
        };
        log(`  ${size.label} at ${ramMb} MiB${isRepeat ? " (re-run)" : ""}: no result`);
        return p;
      }
      const p: FloorProbe = {
        ram_mb: ramMb, ...probeVerdict(r, { afterReference: reference !== null, withDownload: Boolean(v["with-download"]) }), upload_seconds: r.duration_seconds,
        wall_seconds: Math.round((performance.now() - w0) / 10) / 100, repeat: isRepeat, result_file: child.resultFile,
      };
      log(`  ${size.label} at ${ramMb} MiB${isRepeat ? " (re-run)" : ""}: ${p.passed ? "passed" : p.outcome}, upload ${p.upload_seconds.toFixed(2)} s`);
      if (reference === null && p.passed) {
        reference = p.upload_seconds;
        // Later probes stop at the thrash limit (never above --timeout).
        limit = thrashLimitSeconds(reference, { factor: thrashFactor, minSeconds: minThrashSec, timeoutSec });
      }
      return p;
    };
    const outcome = await findFloor({
      minMb, maxMb, resolutionMb, repeat, probe,
      outOfTime: () => maxMinutes !== null && (performance.now() - t0) / 60000 >= maxMinutes,
    });
    floors.push({
      file_size: size.label, ...outcome, reference_upload_seconds: reference ?? 0, thrash_limit_seconds: limit,
      seconds: Math.round((performance.now() - t0) / 100) / 10,
    });
    const f = floors.at(-1)!;
    store((db) => db.addFloor(runId, f));
    log(`${size.label}: ${describe(f)}`);
  }
  forget();
  setStatus("complete");
  writeFileSync(join(dir, "floors.json"), `${JSON.stringify({ run_id: runId, picoshare: picoshare.version, floors }, null, 2)}\n`);

  if (v.json) {
    process.stdout.write(`${JSON.stringify({ floors }, null, 2)}\n`);
  } else {
    const rows = floors.map((f) => [
      f.file_size,
      ...bracketEnds(f, minMb, maxMb),
      f.failure ?? "-",
      String(f.probes.length),
      formatDuration(f.seconds),
      f.finished ? "finished" : "UNFINISHED (time limit)",
    ]);
    process.stdout.write(
      `${formatTable(["File", "Highest failing (MiB)", "Lowest passing (MiB)", "Failure", "Probes", "Time", "Search"], rows, ["left", "right", "right", "left", "right", "right", "left"])}\n`,
    );
  }
  return 0;
}, USAGE);

function describe(f: Floor): string {
  const lo = f.highest_failing_mb === null ? "below --min" : `${f.highest_failing_mb} MiB (${f.failure})`;
  const hi = f.lowest_passing_mb === null ? "none up to --max" : `${f.lowest_passing_mb} MiB`;
  return `floor between ${lo} and ${hi}: ${f.probes.length} probes in ${formatDuration(f.seconds)}${f.finished ? "" : ", UNFINISHED (time limit)"}`;
}
