#!/usr/bin/env bun
// Can the harness tell a change from noise? In one invocation: PicoShare
// v1.5.4 against itself (A/A: the reference, which must flag nothing) and
// against builds made from v1.5.4's own source with known patches, each a
// live comparison. Prints per metric its spread, the smallest change the runs
// could find, what A/A flagged, and whether each known change was found.
import { mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";
import { parseCli, positiveInt } from "../lib/core/cli.ts";
import { FLAG } from "../lib/core/flags.ts";
import { flagSpec, flagsOf, numberFlag, usageText, valueOf, withDefault, type Flag } from "../lib/core/flag-kit.ts";
import { runMain } from "../lib/core/main.ts";
import { log } from "../lib/core/log.ts";
import { onCleanup } from "../lib/core/cleanup.ts";
import { UsageError } from "../lib/core/errors.ts";
import { defaultWorkDir, ensureWritableDir } from "../lib/core/files.ts";
import { RESULTS_DIR } from "../lib/core/paths.ts";
import { formatTable } from "../lib/output/table.ts";
import { requireTestFile } from "../lib/upload/testfiles.ts";
import { RUN_TEST_OPTIONS, passedByMatrix, passedTwinChoice } from "../lib/upload/options.ts";
import { DEFAULT_VERSION, moduleSource, resolvePicoShareChoice, resolvePicoShareVersion, type PicoShareBinary } from "../lib/upload/picoshare.ts";
import { KNOWN_PATCHES, patchedCopy, type SourcePatch } from "../lib/bench/patches.ts";
import { countedLines } from "../lib/bench/counted.ts";
import { preflight } from "../lib/matrix/preflight.ts";
import { matrixCells } from "../lib/matrix/plan.ts";
import { runLiveCompare } from "../lib/matrix/live-compare.ts";
import { cellName } from "../lib/stats/cells.ts";
import { buildComparison, type Comparison, type SideInput } from "../lib/stats/comparison.ts";
import { runsToSee } from "../lib/stats/gate.ts";
import { pairsNeeded } from "../lib/stats/paired.ts";
import { COMPARED_METRICS } from "../lib/stats/metrics.ts";
import { fmtPercent, type MetricComparison } from "../lib/stats/verdict.ts";

const OWN = {
  runs: numberFlag("runs", positiveInt, { value: "N", example: "8", default: "8", help: "Measured runs per side of each comparison" }),
  patches: withDefault(FLAG.patches, KNOWN_PATCHES.map((p) => p.name).join(",")),
};
const RAM = withDefault(FLAG.ram, "256", "256");
const FILE_SIZE = withDefault(FLAG.fileSize, "100M");
const WARMUP = withDefault(FLAG.warmup, "1");
const P = RUN_TEST_OPTIONS;
const GROUPS: Array<[string, Flag<any>[]]> = [
  ["Options:", [RAM, FILE_SIZE, OWN.runs, WARMUP, OWN.patches, FLAG.workDir, FLAG.resultsDir]],
  ["Passed to each test, as run-test takes them:", [
    P.timeoutSec, P.testFiles, P.backend, P.dropCaches, P.countInstructions, P.instructionTwins, P.instructionSizes, P.verify, P.allowMemoryBackedWorkDir, P.reuseVm, P.noDownload,
    P.requests, P.noRecovery, P.proxy, P.proxySettings,
  ]],
];

const USAGE = usageText(
  `Usage: bun scripts/bench-detection.ts [OPTIONS]

Checks that the harness finds real changes and only those. In one invocation:
  A/A   PicoShare ${DEFAULT_VERSION} against itself: the reference; no primary metric may be flagged
  A/B   ${DEFAULT_VERSION} against builds from ${DEFAULT_VERSION}'s module source with known patches:
${KNOWN_PATCHES.map((p) => `        ${p.name}: ${p.description}`).join("\n")}
each a live comparison (as scripts/compare.ts runs one: interleaved, warm-ups
first). Prints, per metric: the coefficient of variation of A's runs, the
minimum detectable effect at the runs given, what A/A flagged, and each
patch's ratio and verdict; then whether each known change was found. With
--count-instructions also: what A/A flagged among the instruction counts,
their MDE at 5 runs a side and what the instrumented twins added per test;
and whether the fsync calls were the same in every run of a side.
`,
  GROUPS,
  `About (2 + patches) x (warmup + runs) x 2 tests: with the defaults about 6
minutes here.

Examples:
  bun scripts/bench-detection.ts
  bun scripts/bench-detection.ts --runs 5 --file-size 16M --patches chunk-4m
`,
);

interface Case {
  name: string;
  patch: SourcePatch | null;
  binary: PicoShareBinary;
  comparison?: Comparison;
  sides?: { a: SideInput; b: SideInput };
}

function metricOf(c: Comparison, key: string): MetricComparison {
  return c.cells[0].metrics.find((m) => m.key === key)!;
}

/** The MDE the verdict used; where the rounds paired the sides, both analyses': "9.9 % paired; unpaired 12 %". */
function mdeCell(m: MetricComparison): string {
  const used = m.mde === null ? (m.verdict === "too_few" ? m.label : "> 10x") : `${fmtPercent(m.mde)}${m.mde_floor ? " (resolution)" : ""}`;
  if (m.mde_by_analysis === null) return used;
  const other = m.analysis === "paired" ? "unpaired" : "paired";
  const x = m.mde_by_analysis[other];
  const none = other === "paired" && m.pairs !== null && m.pairs < pairsNeeded(m.mde_alpha) ? `needs ${pairsNeeded(m.mde_alpha)} rounds` : "> 10x";
  return `${used} ${m.analysis}; ${other} ${x === null ? none : fmtPercent(x)}`;
}

function verdictCell(m: MetricComparison): string {
  if (m.verdict === "too_few") return m.label;
  const ratio = m.ratio === null ? "-" : m.ratio.toFixed(3);
  return m.verdict === "same" ? `${ratio} same` : `${ratio} ${m.label}`;
}

await runMain(async () => {
  const { values: v } = parseCli(flagSpec(flagsOf(GROUPS)), USAGE);
  const passed = passedByMatrix(v);
  const ram = valueOf(RAM, v.ram);
  const size = valueOf(FILE_SIZE, v["file-size"]);
  const runs = valueOf(OWN.runs, v.runs);
  const warmup = valueOf(WARMUP, v.warmup);
  const names = valueOf(OWN.patches, v.patches).split(",");
  const patches = names.map((n) => {
    const p = KNOWN_PATCHES.find((x) => x.name === n);
    if (!p) throw new UsageError(`--patches: no known patch "${n}" (known: ${KNOWN_PATCHES.map((x) => x.name).join(", ")})`);
    return p;
  });
  const testFiles = passed.get("test_files");
  requireTestFile(size, testFiles);
  const resultsDir = resolve((v["results-dir"] as string | undefined) ?? RESULTS_DIR);
  ensureWritableDir(resultsDir, "--results-dir");
  const workDir = v["work-dir"] ? resolve(v["work-dir"] as string) : null;

  const a = await resolvePicoShareVersion(DEFAULT_VERSION);
  await preflight(passed.get("backend"), a, [ram], [size], workDir, passed.get("allow_memory_backed_work_dir"), passed.get("drop_caches"), 1, passedTwinChoice(passed));
  const source = await moduleSource();
  const scratch = mkdtempSync(join(tmpdir(), "bench-detection-"));
  onCleanup("remove the patched sources", () => rmSync(scratch, { recursive: true, force: true }));
  const cases: Case[] = [{ name: "A/A", patch: null, binary: a }];
  for (const p of patches) {
    const dir = patchedCopy(source, join(scratch, p.name), [p]);
    cases.push({ name: p.name, patch: p, binary: await resolvePicoShareChoice({ source: dir }, "picoshare") });
  }

  const cells = matrixCells([ram], [size]);
  const t0 = performance.now();
  for (const c of cases) {
    log(`=== ${c.name}: ${DEFAULT_VERSION} against ${c.patch ? `${c.patch.name} (${c.binary.version})` : "itself"}, ${cellName({ ram_mb: ram, file_size: size.label })}, ${warmup} + ${runs} runs a side ===`);
    const out = await runLiveCompare({
      a, b: [c.binary], cells, iterations: runs, warmup, passed: passed.all(), workDir, resultsDir,
      dbPath: join(resultsDir, "results.db"), extraOptions: { bench: "detection", case: c.name, tmpdir: workDir ?? defaultWorkDir() },
    });
    c.comparison = buildComparison(out.a, out.b[0]);
    c.sides = { a: out.a, b: out.b[0] };
  }
  const minutes = (performance.now() - t0) / 60000;

  const reference = cases[0].comparison!;
  const header = ["Metric", "Family", "CV (A/A: A / B)", `MDE at n = ${runs}`, "A/A", ...cases.slice(1).map((c) => c.name)];
  const rows = COMPARED_METRICS.map((m) => {
    const ref = metricOf(reference, m.key);
    return [
      m.name,
      m.family,
      `${ref.cv_a === null ? "-" : `${(ref.cv_a * 100).toFixed(2)} %`} / ${ref.cv_b === null ? "-" : `${(ref.cv_b * 100).toFixed(2)} %`}`,
      mdeCell(ref),
      ref.verdict === "higher" || ref.verdict === "lower" ? `FLAGGED ${ref.label}` : ref.verdict === "too_few" ? ref.label : "none",
      ...cases.slice(1).map((c) => verdictCell(metricOf(c.comparison!, m.key))),
    ];
  });
  process.stdout.write(`Detection on this host: ${ram}MB, ${size.label}, ${runs} measured runs a side (after ${warmup} warm-up), ${minutes.toFixed(1)} min\n\n`);
  process.stdout.write(`${formatTable(header, rows, header.map((_, i) => (i < 2 ? "left" : "right")))}\n\n`);

  const flagged = reference.cells[0].metrics.filter((m) => m.family === "primary" && (m.verdict === "higher" || m.verdict === "lower"));
  process.stdout.write(`A/A (reference): ${flagged.length === 0 ? "no primary metric flagged" : `FLAGGED ${flagged.map((m) => `${m.metric} (${m.label})`).join(", ")}`}\n`);
  for (const c of cases.slice(1)) {
    for (const e of c.patch!.expect) {
      const m = metricOf(c.comparison!, e.key);
      const found = m.verdict === e.direction;
      process.stdout.write(
        `${c.name}: ${m.metric} ${e.direction} expected: ${found ? "found" : "NOT found"} (B/A ${m.ratio?.toFixed(3) ?? "-"}, ` +
          `p ${m.p_value?.toPrecision(2) ?? "-"}, Holm ${m.p_adjusted?.toPrecision(2) ?? "-"}: ${m.label})\n`,
      );
    }
  }
  for (const line of countedLines(cases.map((c) => ({ name: c.name, comparison: c.comparison!, sides: c.sides! })))) process.stdout.write(`${line}\n`);
  for (const key of ["cpu_seconds", "disk_write_bytes"]) {
    const m = metricOf(reference, key);
    const met = m.mde !== null && m.mde <= 0.05;
    let needs = "";
    if (!met && m.median_a !== null && m.median_b !== null) {
      // The same spread, more runs: the smallest n that would reach 5 %.
      const spec = COMPARED_METRICS.find((x) => x.key === key)!;
      const passed = (side: SideInput) => side.results.filter((r) => r.success);
      const { a: sa, b: sb } = cases[0].sides!;
      const n = runsToSee(m, spec, passed(sa), passed(sb), 0.05);
      needs = n === null ? "; not even 128 runs a side would reach 5 % with this spread" : `; with this spread 5 % needs about ${n} runs a side`;
    }
    process.stdout.write(
      `MDE of ${m.metric} at n = ${runs}: ${m.mde === null ? "none" : fmtPercent(m.mde)} (target: at most 5 %: ${met ? "met" : "NOT met"}${needs})\n`,
    );
  }
  return 0;
}, USAGE);
