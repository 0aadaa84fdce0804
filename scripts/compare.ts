#!/usr/bin/env bun
// Is build B faster, slower or lighter than build A? Live: runs both over the
// same cells, interleaved, and compares. Stored: compares two runs of the
// results log. stdout: the comparison (table, --json or --markdown) alone.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseCli } from "../lib/core/cli.ts";
import { runMain } from "../lib/core/main.ts";
import { error, log, warn } from "../lib/core/log.ts";
import { UsageError } from "../lib/core/errors.ts";
import { defaultWorkDir, ensureWritableDir, writeFileAtomic } from "../lib/core/files.ts";
import { RESULTS_DIR, command, displayPath } from "../lib/core/paths.ts";
import { requireTestFile } from "../lib/upload/testfiles.ts";
import { VERSION_FORM, resolvePicoShare, resolvePicoShareChoice, type PicoShareBinary, type PicoShareChoice } from "../lib/upload/picoshare.ts";
import { matrixCells, parseFileSizes, parseMemoryLimits, testCellName, type Cell } from "../lib/matrix/plan.ts";
import { preflight } from "../lib/matrix/preflight.ts";
import { checkCountInstructions, twinChoice } from "../lib/upload/instructions.ts";
import { RUN_TEST_OPTIONS, passedByMatrix, passedTwinChoice } from "../lib/upload/options.ts";
import { FILE_SIZES_DEFAULT, FLAG } from "../lib/core/flags.ts";
import { flagSpec, flagsOf, switchFlag, usageText, valueFlag, valueOf, withDefault, type Flag } from "../lib/core/flag-kit.ts";
import { buildComparisons, type Comparison, type ComparisonOptions } from "../lib/stats/comparison.ts";
import { candidateLabels, continueLiveCompare, loadLiveCompare, runLiveCompare, type LiveCompareOutcome } from "../lib/matrix/live-compare.ts";
import { COMPARE_STATE_FILE } from "../lib/matrix/compare-state.ts";
import { parseSize } from "../lib/core/sizes.ts";
import { nwayJson, nwayMarkdown, nwayText } from "../lib/output/exporters/compare-nway.ts";
import { EXPORT_FORMATS, exportPoints, exportText, type ExportFormat } from "../lib/output/exporters/ci-formats.ts";
import { loadRun, openExistingDb, parseRunId, sideOf } from "../lib/store/stored-runs.ts";
import { describeDifferences } from "../lib/stats/fingerprint.ts";
import { comparisonText } from "../lib/output/exporters/compare-table.ts";
import { comparisonMarkdown } from "../lib/output/exporters/compare-markdown.ts";
import { comparisonJson } from "../lib/output/exporters/compare-json.ts";
import { DEFAULT_ALPHA, runsNeeded } from "../lib/stats/verdict.ts";
import { PRIMARY_METRICS } from "../lib/stats/metrics.ts";
import { MIN_RUNS_FOR_CV, cellKeyOf } from "../lib/stats/cells.ts";
import { RAM_FLOOR_KIND } from "../lib/floor/search.ts";
import {
  GATE_HELP, evaluateGate, gateLines, mergeGates, parseThresholds, plannedBlindSpots, type CellHistory, type Threshold,
} from "../lib/stats/gate.ts";
import { ResultsDb } from "../lib/store/results-db.ts";
import type { SideInput } from "../lib/stats/comparison.ts";
import { addFunctionShifts, storedFileOf } from "../lib/stats/functions.ts";
import { EXIT } from "../lib/core/errors.ts";

const OWN = {
  a: valueFlag("a", { value: "PATH", help: "PicoShare binary A (the baseline)" }),
  aVersion: valueFlag("a-version", { value: "V", help: "or a release / commit of PicoShare, built and cached (e.g. v1.5.4)" }),
  aSource: valueFlag("a-source", {
    value: "DIR",
    help: "or a PicoShare source tree (a checkout), built and cached by its content and the Go version (commit and \"dirty\" recorded)",
  }),
  aRef: valueFlag("a-ref", {
    value: "REF",
    help: "with --a-source: the git ref REF of that checkout instead, built from a clean export (the working tree is not touched)",
  }),
  // Several candidates: each of these may be given more than once.
  b: { ...valueFlag("b", { value: "PATH", help: "PicoShare binary B (the candidate)" }), multiple: true },
  bVersion: { ...valueFlag("b-version", { value: "V", help: "or a release / commit for B" }), multiple: true },
  bSource: { ...valueFlag("b-source", { value: "DIR", help: "or a source tree for B, as --a-source" }), multiple: true },
  bRef: { ...valueFlag("b-ref", {
    value: "REF",
    help: "a git ref of --b-source's checkout (or, without --b-source, of --a-source's), built as --a-ref; one candidate per --b-ref. " +
      "Several candidates: give --b, --b-version, --b-source and --b-ref " +
      "as often as needed (--b-ref with one --b-source at most); they are B1, B2... (--b paths first, then versions, " +
      "then sources, then refs), all run interleaved with A in each cell (in a Williams design: each build follows every other equally often), each compared with A; " +
      "the output is first one answer per build (the changes called, the largest MDE of the rest, its failed runs), " +
      "then one table per metric with a column per build (~ <MDE where no change was called) and a geomean row over the cells",
  }), multiple: true },
  runA: valueFlag("run-a", { value: "ID", help: "Run of the results log as side A" }),
  runB: valueFlag("run-b", { value: "ID", help: "Run as side B; several as --run-b 13,14,15 (B1, B2, B3)" }),
  markdown: switchFlag("markdown", "The comparison as Markdown tables, ready for a pull request"),
  failOn: valueFlag("fail-on", {
    value: "LIST",
    help: "Thresholds, comma-separated: METRIC<-N% (a fall) or METRIC>+N% (a rise) on a metric's ratio B/A, " +
      "breached in a cell when its verdict is significant (Holm for the primary family and for the instruction counts) and the ratio lies beyond; " +
      "oom>N / failures>N, breached when B has more than N more OOM kills / failures than A. Each breach is named " +
      "first in the output; where the runs could not have seen a threshold (its MDE is larger), a NOTE says so and " +
      "how many runs would. Live, the same is told before the run, from the spread of the newest stored run of " +
      "each cell on this backend (--db).",
    verbatim: [GATE_HELP],
  }),
  export: valueFlag("export", {
    value: "FORMAT",
    help: "Also write the candidate's figures as results.ts export does: bmf, gab-bigger or gab-smaller " +
      "(with several candidates each benchmark is prefixed with its build: B2 256MB/1G)",
  }),
  exportOut: valueFlag("export-out", { value: "FILE", help: "Where (required with --export; stdout keeps the comparison)" }),
};
const ITERATIONS = withDefault(FLAG.iterations, "5");
const WARMUP = withDefault(FLAG.warmup, "1");
const P = RUN_TEST_OPTIONS;

const GROUPS: Array<[string, Flag<any>[]]> = [
  ["Live (one of each pair):", [
    OWN.a, OWN.aVersion, OWN.b, OWN.bVersion, OWN.aSource, OWN.aRef, OWN.bSource, OWN.bRef, FLAG.memoryLimits,
    withDefault(FLAG.fileSizes, FILE_SIZES_DEFAULT), ITERATIONS, WARMUP, P.timeoutSec, P.testFiles, FLAG.workDir,
    P.allowMemoryBackedWorkDir, P.verify, P.dropCaches, P.countInstructions, P.instructionTwins, P.instructionSizes, P.noDownload, P.requests, P.noRecovery, P.proxy, P.proxySettings, P.reuseVm,
    FLAG.resultsDir, P.backend, FLAG.resume,
  ]],
  ["Stored:", [OWN.runA, OWN.runB, FLAG.db]],
  ["Output and statistics:", [FLAG.json, OWN.markdown, FLAG.alpha, FLAG.seed, FLAG.cvThreshold]],
  ["Gate (for CI):", [OWN.failOn]],
  ["Export (for continuous-benchmarking tools):", [OWN.export, OWN.exportOut]],
];
const FLAGS = flagsOf(GROUPS);

const USAGE = usageText(
  `Usage: bun scripts/compare.ts --a PATH|--a-version V|--a-source DIR [--a-ref REF]
                              --b PATH|--b-version V|--b-source DIR|--b-ref REF... [OPTIONS]
       bun scripts/compare.ts --resume DIR [OPTIONS]
       bun scripts/compare.ts --run-a ID --run-b ID [--db PATH] [OPTIONS]

Compares PicoShare build B with build A, cell by cell (RAM x file size, and
the uploads at once of a matrix run with --concurrency-levels), on
every metric: the ratio B/A of the medians with a 95 % bootstrap interval, a
Mann-Whitney U p-value and a verdict (faster / slower, more / less memory,
more / less CPU, writes more / less..., "no difference larger than X %" with
X the smallest change the runs could have found, or too few samples), and the
OOM and failure counts of both sides. The primary metrics (throughput,
PicoShare peak RSS, CPU seconds, disk bytes written) are corrected together
(Holm), and so are the instruction counts of --count-instructions (upload,
download), as a family of their own; the others are secondary. Logs go to stderr; the comparison alone
goes to stdout.

Live: runs both builds over the same cells, each test a run-test process,
A and B interleaved within each cell (A B, B A, A B, ...: ABBA) so that drift
on the host hits both alike; with enough rounds (8 at --alpha 0.05), throughput
and CPU seconds are tested paired by round (Wilcoxon signed-rank of each round's
log-ratio B/A; the method line says where). Warm-up runs are not counted. Both
sides are stored as runs (kind compare-a / compare-b) in the results log;
results go to RESULTS_DIR/compare-STAMP/{a,b,warmup}/, its progress to
compare.json there after every test: an interrupted comparison continues with
--resume RESULTS_DIR/compare-STAMP (only the tests not yet recorded are run).
Each build is labelled by what was given (ref, folder, version or path) with
its commit. At least 5 measured runs per side (--iterations) are needed for a
verdict on the 4 primary metrics at --alpha 0.05, 8 for a minimum detectable
effect of a few per cent.

Stored: compares two runs already in the results log, cells matched by RAM,
file size and uploads at once. Warns when the two runs' environments differ
(CPU, governor, kernel, disk, backend...).
`,
  GROUPS,
  `Exit status: 0 the comparison was made (whatever it says) and no --fail-on
threshold was breached, 3 a threshold was breached, 2 bad usage or a set-up
problem, 1 anything else (the harness failed).

Examples:
  bun scripts/compare.ts --a-version v1.5.4 --b ~/picoshare/picoshare --memory-limits 512 --file-sizes 100M,1G
  bun scripts/compare.ts --a old/picoshare --b new/picoshare --memory-limits 256 --file-sizes 100M --iterations 10 --warmup 2 --markdown
  bun scripts/compare.ts --a-source ~/picoshare --a-ref main --b-source ~/picoshare --memory-limits 256 --file-sizes 100M --iterations 8
  bun scripts/compare.ts --a-source ~/picoshare --a-ref main --b-ref batched-reads --b-ref pool-settings --memory-limits 256 --file-sizes 100M --iterations 8
  bun scripts/compare.ts --resume results/compare-20260129-120000
  bun scripts/compare.ts --run-a 12 --run-b 13
  bun scripts/compare.ts --run-a 12 --run-b 13 --db results/results.db --json
  bun scripts/compare.ts --a-version v1.5.4 --b-version v1.5.3 --b-source ~/picoshare --memory-limits 256 --file-sizes 100M --iterations 8
  bun scripts/compare.ts --run-a 12 --run-b 13,14 --markdown
  bun scripts/compare.ts --run-a 12 --run-b 13 --fail-on "throughput<-5%,picoshare_peak_rss>+10%,disk_write_bytes>+2%,oom>0"
`,
);

const LIVE_ONLY = GROUPS[0][1].map((f) => f.name);

function statsOptions(v: Values): ComparisonOptions {
  return { alpha: valueOf(FLAG.alpha, v.alpha), seed: valueOf(FLAG.seed, v.seed), cvThreshold: valueOf(FLAG.cvThreshold, v["cv-threshold"]) / 100 };
}

/**
 * The candidates' flags: each --b PATH, then each --b-version V, then each
 * --b-source DIR, then each --b-ref REF (of the one --b-source, else of
 * --a-source's checkout; with refs, the --b-source's working tree is not a
 * candidate itself), numbered B1, B2... in that order when there are
 * several; one alone is B, as before.
 */
function candidateFlags(v: Values): PicoShareChoice[] {
  const all = (k: string) => ((v[k] as string[] | undefined) ?? []);
  const [paths, versions, sources, refs] = [all("b"), all("b-version"), all("b-source"), all("b-ref")];
  if (refs.length > 0 && sources.length > 1) throw new UsageError("--b-ref goes with a single --b-source: with several, build each ref as its own checkout");
  const checkout = sources[0] ?? (v["a-source"] as string | undefined);
  if (refs.length > 0 && checkout === undefined) {
    throw new UsageError(`--b-ref needs --b-source DIR (or --a-source DIR): the git checkout the ref is taken from (e.g. --a-source ~/picoshare --a-ref main --b-ref ${refs[0]})`);
  }
  const fromRefs = refs.map((ref) => ({ source: checkout, ref }));
  const trees = refs.length > 0 ? [] : sources.map((source) => ({ source }));
  const choices: PicoShareChoice[] = [...paths.map((path) => ({ path })), ...versions.map((version) => ({ version })), ...trees, ...fromRefs];
  if (choices.length === 0) sideFlags(v, "b"); // says what is missing
  for (const version of versions) {
    if (!VERSION_FORM.test(version)) throw new UsageError(`--b-version "${version}" is not a release tag or a commit hash (e.g. --b-version v1.5.4)`);
  }
  return choices;
}

/** Checks one side's flags before anything is built or run: exactly one of --X PATH / --X-version V / --X-source DIR. */
function sideFlags(v: Values, side: "a" | "b"): PicoShareChoice {
  const get = (k: string) => v[k] as string | undefined;
  const c: PicoShareChoice = { path: get(side), version: get(`${side}-version`), source: get(`${side}-source`), ref: get(`${side}-ref`) };
  if (c.ref !== undefined && c.source === undefined) throw new UsageError(`--${side}-ref needs --${side}-source DIR: the checkout the ref is taken from`);
  if (c.path === undefined && c.version === undefined && c.source === undefined) {
    throw new UsageError(
      `side ${side.toUpperCase()} is missing: give --${side} PATH, --${side}-version V or --${side}-source DIR (e.g. --${side}-version v1.5.4)`,
      true,
    );
  }
  if ([c.path, c.version, c.source].filter((x) => x !== undefined).length > 1) {
    throw new UsageError(`give one of --${side} PATH, --${side}-version V and --${side}-source DIR, not several`);
  }
  if (c.version !== undefined && !VERSION_FORM.test(c.version)) {
    throw new UsageError(`--${side}-version "${c.version}" is not a release tag or a commit hash (e.g. --${side}-version v1.5.4)`);
  }
  return c;
}

async function binary(c: PicoShareChoice, side: "a" | "b"): Promise<PicoShareBinary> {
  return resolvePicoShareChoice(c, side, true).catch((err) => {
    throw err instanceof UsageError ? new UsageError(err.message.replace("(from --picoshare)", `(from --${side})`)) : err;
  });
}

type Values = Record<string, string | boolean | string[] | undefined>;

/** A comparison with the two sides it was made from (the gate reads their values). */
interface Compared {
  /** One per candidate, in order. */
  comparisons: Comparison[];
  a: SideInput;
  b: SideInput[];
}

/**
 * For each planned cell, the newest stored run on this backend with at least
 * MIN_RUNS_FOR_CV passed results there, with those results; none without a
 * results log yet. Floor searches are left out: their probes run once each,
 * near the floor, not as the cells of a comparison run.
 */
function cellHistory(dbPath: string, backend: string, cells: Cell[]): CellHistory[] {
  if (!existsSync(dbPath)) return [];
  const wanted = new Map(cells.map((c) => [cellKeyOf({ ram_mb: c.ram, file_size_bytes: c.size.bytes, concurrency: c.concurrency }), testCellName(c)]));
  const found = new Map<string, CellHistory>();
  const db = ResultsDb.open(dbPath);
  try {
    for (const run of db.listRuns()) {
      if (found.size === wanted.size) break;
      if (run.backend !== backend || run.kind === RAM_FLOOR_KIND) continue;
      const passed = loadRun(db, run.id, displayPath(dbPath)).results.filter((r) => r.success);
      for (const [key, cell] of wanted) {
        const here = passed.filter((r) => cellKeyOf(r) === key);
        if (!found.has(key) && here.length >= MIN_RUNS_FOR_CV) found.set(key, { cell, run_id: run.id, results: here });
      }
    }
  } finally {
    db.close();
  }
  return [...wanted.keys()].flatMap((key) => found.get(key) ?? []);
}

/**
 * Before anything is built or run (a build can take minutes): whether
 * `iterations` runs a side can give a verdict at all, and with metric
 * thresholds, whether they can see each one, judged from the spread stored
 * runs showed in the same cells.
 */
function reachBeforeRun(alpha: number, iterations: number, gate: Threshold[] | null, cells: Cell[], dbPath: string, backend: string): void {
  const needed = runsNeeded(alpha / PRIMARY_METRICS.length);
  if (iterations < needed) {
    warn(
      `${iterations} iteration(s) per side cannot give a verdict on the ${PRIMARY_METRICS.length} primary metrics at alpha ${alpha} ` +
        `(Holm: the first needs p < ${+(alpha / PRIMARY_METRICS.length).toPrecision(3)}): they will say "too few samples" (use --iterations ${needed} or more)` +
        (gate ? `, and no --fail-on threshold on them can be breached` : ""),
    );
    return;
  }
  const metric = (gate ?? []).filter((t) => t.kind === "metric");
  if (metric.length === 0) return;
  const texts = metric.map((t) => t.text).join(", ");
  const history = cellHistory(dbPath, backend, cells);
  if (history.length === 0) {
    log(`Gate: no stored run of these cells on the ${backend} backend in ${displayPath(dbPath)}: whether ${iterations} runs a side can see ${texts} is judged from their own spread, after the run`);
    return;
  }
  const blind = plannedBlindSpots(metric, history, iterations, alpha);
  for (const b of blind) warn(`Gate ${b.threshold}: ${b.message}`);
  const judged = new Set(history.map((h) => h.cell));
  const unjudged = cells.map(testCellName).filter((c) => !judged.has(c));
  log(
    `Gate: ${texts} judged from the spread of run ${[...new Set(history.map((h) => h.run_id))].join(", ")} in ${[...judged].join(", ")}: ` +
      (blind.length === 0 ? `${iterations} runs a side can see each` : `${blind.length} out of reach of ${iterations} runs a side`) +
      (unjudged.length > 0 ? `; ${unjudged.join(", ")} not stored before, judged from the runs' own spread after the run` : ""),
  );
}

async function live(v: Values, stats: ComparisonOptions, gate: Threshold[] | null): Promise<Compared> {
  const s = (k: string) => v[k] as string | undefined;
  const passed = passedByMatrix(v);
  const flagsA = sideFlags(v, "a");
  const flagsB = candidateFlags(v);
  const memory = parseMemoryLimits(s("memory-limits"));
  const sizes = parseFileSizes(s("file-sizes"));
  const iterations = valueOf(ITERATIONS, s("iterations"));
  const warmup = valueOf(WARMUP, s("warmup"));
  passed.get("timeout");
  passed.get("requests");
  const backend = passed.get("backend");
  const twins = passedTwinChoice(passed);
  checkCountInstructions(backend, twins, sizes.map((x) => x.label));
  const testFiles = passed.get("test_files");
  for (const size of sizes) requireTestFile(size, testFiles);
  const resultsDir = resolve(s("results-dir") ?? RESULTS_DIR);
  ensureWritableDir(resultsDir, "--results-dir");
  const workDir = s("work-dir") === undefined ? null : resolve(s("work-dir")!);
  if (workDir) ensureWritableDir(workDir, "--work-dir");
  const dbPath = resolve(s("db") ?? join(resultsDir, "results.db"));
  const cells = matrixCells(memory, sizes);
  reachBeforeRun(stats.alpha ?? DEFAULT_ALPHA, iterations, gate, cells, dbPath, backend);
  const a = await binary(flagsA, "a");
  const bs: PicoShareBinary[] = [];
  for (const f of flagsB) bs.push(await binary(f, "b"));
  // Once, before any test: a tmpfs work dir or a --ram the harness cannot have refuses here (exit 2), not in every test.
  await preflight(backend, a, memory, sizes, workDir, passed.get("allow_memory_backed_work_dir"), passed.get("drop_caches"), 1, twins);
  const names = candidateLabels(bs.length);
  for (const [i, b] of bs.entries()) {
    if (a.sha256 === b.sha256) warn(`A and ${names[i]} are the same binary (sha256 ${a.sha256.slice(0, 12)}): an A/A comparison`);
  }

  log(bs.length === 1 ? `=== PicoShare A/B comparison ===` : `=== PicoShare comparison: ${bs.length} builds against A ===`);
  log(`A: ${a.version} (${a.path}, sha256 ${a.sha256.slice(0, 12)})`);
  for (const [i, b] of bs.entries()) log(`${names[i]}: ${b.version} (${b.path}, sha256 ${b.sha256.slice(0, 12)})`);
  log(`Cells: ${cells.length} (RAM ${memory.join(",")} x ${sizes.map((x) => x.label).join(",")}); ${warmup} warm-up + ${iterations} measured run(s) per side each: ${cells.length * (bs.length + 1) * (warmup + iterations)} tests`);
  const out = await runLiveCompare({
    a, b: bs, cells, iterations, warmup, passed: passed.all(), workDir: workDir ?? null, resultsDir, dbPath,
    extraOptions: { alpha: stats.alpha, seed: stats.seed, tmpdir: workDir ?? defaultWorkDir() },
  });
  return liveCompared(out, dbPath, stats);
}

/** The comparison a live run (whole or resumed) came to, and where its runs are stored. */
function liveCompared(out: LiveCompareOutcome, dbPath: string, stats: ComparisonOptions): Compared {
  log(`Stored as runs ${out.runA} (A) and ${out.runB.map((id, i) => `${id} (${out.b[i].label})`).join(", ")}: ` +
    `\`${command("compare", `--run-a ${out.runA} --run-b ${out.runB.join(",")} --db ${displayPath(dbPath)}`)}\`, ` +
    `\`${command("report", `${out.runA} --db ${displayPath(dbPath)}`)}\``);
  // The dumps' paths are as the tests named them from this same folder.
  return { comparisons: buildComparisons(out.a, out.b, stats).map((c, i) => addFunctionShifts(c, out.a, out.b[i])), a: out.a, b: out.b };
}

/** An interrupted live comparison, continued with the builds and options stored in its folder. */
async function resumed(v: Values, stats: ComparisonOptions): Promise<Compared> {
  const given = LIVE_ONLY.filter((k) => k !== "resume" && v[k] !== undefined);
  const dir = resolve(v.resume as string);
  const storedFlags = ["run-a", "run-b", "db"].filter((k) => v[k] !== undefined);
  if (given.length > 0 || storedFlags.length > 0) {
    const drop = [...given, ...storedFlags];
    throw new UsageError(
      `--resume continues ${displayPath(dir)} with the builds and options stored in its ${COMPARE_STATE_FILE}: drop ${drop.map((k) => `--${k}`).join(", ")} ` +
        `(only output, statistics, gate and export options may be given again)`,
    );
  }
  const { state, lock } = loadLiveCompare(dir);
  try {
    const sides = state.sides.map((n) => state.runs[n].options);
    const o = sides[0];
    const binaries: PicoShareBinary[] = [];
    for (const [i, s] of sides.entries()) {
      const bin = await resolvePicoShare(s.picoshare.path).catch(() => null);
      if (bin?.sha256 !== s.picoshare.sha256) {
        throw new UsageError(
          `--resume ${displayPath(dir)}: ${state.sides[i].toUpperCase()}'s PicoShare at ${s.picoshare.path} is ${bin ? `not the build the comparison started with (sha256 ${bin.sha256.slice(0, 12)}, was ${s.picoshare.sha256.slice(0, 12)})` : "gone"}; ` +
            `results would mix two builds: start a new comparison`,
        );
      }
      binaries.push(bin);
      log(`${state.sides[i].toUpperCase()}: ${s.picoshare.version} (${s.picoshare.path}, sha256 ${s.picoshare.sha256.slice(0, 12)})`);
    }
    const sizes = o.file_sizes.map((x) => parseSize(x));
    for (const size of sizes) requireTestFile(size, o.test_files);
    await preflight(o.backend, binaries[0], o.memory_limits, sizes, o.work_dir, o.allow_memory_backed_work_dir, o.drop_caches, 1, twinChoice(o));
  } catch (err) {
    lock.release();
    throw err;
  }
  return liveCompared(await continueLiveCompare(dir, state, lock), state.db, stats);
}

function stored(v: Values, stats: ComparisonOptions): Compared {
  const given = LIVE_ONLY.filter((k) => v[k] !== undefined);
  if (given.length > 0) {
    throw new UsageError(`--run-a/--run-b compare stored runs: drop ${given.map((k) => `--${k}`).join(", ")} (live options)`);
  }
  if (v["run-a"] === undefined || v["run-b"] === undefined) {
    throw new UsageError(`a stored comparison needs both --run-a ID and --run-b ID (e.g. --run-a 12 --run-b 13)`, true);
  }
  const idA = parseRunId(v["run-a"] as string, "--run-a");
  // Several candidates: --run-b 13,14,15.
  const idsB = (v["run-b"] as string).split(",").map((x) => parseRunId(x, "--run-b"));
  const dbPath = resolve((v.db as string | undefined) ?? join(RESULTS_DIR, "results.db"));
  const db = openExistingDb(dbPath);
  try {
    const ra = loadRun(db, idA, displayPath(dbPath));
    const rbs = idsB.map((id) => loadRun(db, id, displayPath(dbPath)));
    // Each probe of a floor search has a limit of its own: there are no cells to compare.
    for (const r of [ra, ...rbs]) {
      if (r.run.kind === RAM_FLOOR_KIND) {
        throw new UsageError(`run ${r.run.id} is a RAM-floor search, not a matrix: put floors side by side with bun scripts/report.ts ${idA} ${idsB.join(" ")}`);
      }
    }
    const names = candidateLabels(rbs.length);
    const a = sideOf(ra, "A");
    const b = rbs.map((r, i) => sideOf(r, names[i]));
    const comparisons = buildComparisons(a, b, stats).map((c, i) => addFunctionShifts(c, a, b[i], storedFileOf(ra), storedFileOf(rbs[i])));
    return { comparisons, a, b };
  } finally {
    db.close();
  }
}

await runMain(async () => {
  const { values: v } = parseCli(flagSpec(FLAGS), USAGE);
  if (v.json && v.markdown) throw new UsageError("give --json or --markdown, not both");
  const stats = statsOptions(v);
  // Checked before anything runs: a bad threshold is bad usage.
  const thresholds = v["fail-on"] === undefined ? null : parseThresholds(v["fail-on"] as string);
  const exportFormat = v.export as string | undefined;
  if (exportFormat !== undefined && !(EXPORT_FORMATS as readonly string[]).includes(exportFormat)) {
    throw new UsageError(`--export must be one of ${EXPORT_FORMATS.join(", ")}, got "${exportFormat}"`);
  }
  if ((exportFormat === undefined) !== (v["export-out"] === undefined)) throw new UsageError("--export FORMAT and --export-out FILE go together (e.g. --export bmf --export-out bmf.json)");
  const isStored = v["run-a"] !== undefined || v["run-b"] !== undefined;
  const { comparisons, a, b } = v.resume !== undefined ? await resumed(v, stats) : isStored ? stored(v, stats) : await live(v, stats, thresholds);
  for (const c of comparisons) {
    if (c.fingerprint_differences.length > 0) {
      warn(`runs ${c.a.run_id} and ${c.b.run_id} ran in different environments: ${describeDifferences(c.fingerprint_differences)}`);
    }
  }
  const noisy = comparisons.reduce((n, c) => n + c.noise.length, 0);
  if (noisy > 0) {
    warn(`${noisy} cell side(s) scatter more than the coefficient-of-variation threshold: see the warning under the comparison`);
  }
  const single = comparisons.length === 1;
  const gate = !thresholds
    ? null
    : single
      ? evaluateGate(comparisons[0], thresholds, { a, b: b[0] })
      : mergeGates(comparisons.map((c, i) => ({ build: b[i].label, gate: evaluateGate(c, thresholds, { a, b: b[i] }) })));
  if (gate) for (const line of gateLines(gate)) (line.startsWith("BREACH") ? error : line.startsWith("NOTE") ? warn : log)(line);
  const head = gate && !v.json ? `${gateLines(gate).join("\n")}\n\n` : "";
  const body = single
    ? v.json ? comparisonJson(comparisons[0], gate) : v.markdown ? comparisonMarkdown(comparisons[0]) : comparisonText(comparisons[0])
    : v.json ? nwayJson(comparisons, gate) : v.markdown ? nwayMarkdown(comparisons) : nwayText(comparisons);
  process.stdout.write(v.markdown && gate ? `${gateLines(gate).map((l) => `- ${l}`).join("\n")}\n\n${body}` : head + body);
  if (exportFormat) {
    const points = b.flatMap((side) => exportPoints(side.results).map((p) => (single ? p : { ...p, benchmark: `${side.label} ${p.benchmark}` })));
    writeFileAtomic(resolve(v["export-out"] as string), exportText(points, exportFormat as ExportFormat));
    log(`Exported ${b.length === 1 ? "B's" : "the candidates'"} figures as ${exportFormat} to ${displayPath(resolve(v["export-out"] as string))}`);
  }
  return gate && gate.breaches.length > 0 ? EXIT.breach : EXIT.ok;
}, USAGE);
