#!/usr/bin/env bun
// The maintainer's study, reproduced in one invocation: a git checkout of
// PicoShare v1.5.4 with a branch per study patch (lib/bench/patches.ts), all
// compared as refs of that one checkout by one live comparison (compare.ts):
// the base against itself (A/A) and against each branch. Prints what each
// build was answered on the metric its patch targets, what A/A called, and
// the wall time against the aim of half an hour.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";
import { parseCli } from "../lib/core/cli.ts";
import { FLAG } from "../lib/core/flags.ts";
import { flagSpec, flagsOf, usageText, valueFlag, valueOf, withDefault, type Flag } from "../lib/core/flag-kit.ts";
import { runMain } from "../lib/core/main.ts";
import { log } from "../lib/core/log.ts";
import { onCleanup } from "../lib/core/cleanup.ts";
import { UsageError } from "../lib/core/errors.ts";
import { ensureWritableDir } from "../lib/core/files.ts";
import { RESULTS_DIR, displayPath, scriptArgv } from "../lib/core/paths.ts";
import { $ } from "../lib/core/shell.ts";
import { formatTable } from "../lib/output/table.ts";
import { RUN_TEST_OPTIONS, matrixPassedArgs, passedByMatrix, runTestArgs, type RunTestArgs } from "../lib/upload/options.ts";
import { DEFAULT_VERSION } from "../lib/upload/picoshare.ts";
import { STUDY_PATCHES } from "../lib/bench/patches.ts";
import { makeCheckout } from "../lib/bench/checkout.ts";
import { largestMde, type BuildAnswer } from "../lib/stats/answers.ts";
import { fmtPercent, type MetricComparison } from "../lib/stats/verdict.ts";

const BASE = "base";
/** The aim for the whole study on a 2-core host: it decides in less than this. */
const AIM_MINUTES = 30;

const OWN = {
  patches: withDefault(FLAG.patches, STUDY_PATCHES.map((p) => p.name).join(",")),
  checkout: valueFlag("checkout", { value: "DIR", help: "Make the checkout in DIR/picoshare and keep it (default: a temporary folder, removed at the end)" }),
};
const MEMORY = withDefault(FLAG.memoryLimits, "256");
const SIZES = withDefault(FLAG.fileSizes, "100M,500M");
const ITERATIONS = withDefault(FLAG.iterations, "8");
const WARMUP = withDefault(FLAG.warmup, "1");
const P = RUN_TEST_OPTIONS;
const PASSED = [
  P.timeoutSec, P.testFiles, P.dropCaches, P.countInstructions, P.instructionTwins, P.instructionSizes, P.noDownload, P.requests,
  P.noRecovery, P.allowMemoryBackedWorkDir,
];
const GROUPS: Array<[string, Flag<any>[]]> = [
  ["Options:", [MEMORY, SIZES, ITERATIONS, WARMUP, OWN.patches, OWN.checkout, FLAG.workDir, FLAG.resultsDir]],
  ["Passed to each test, as run-test takes them:", PASSED],
];

const USAGE = usageText(
  `Usage: bun scripts/bench-study.ts [OPTIONS]

The study a PicoShare maintainer runs before a release, reproduced: a git
checkout of ${DEFAULT_VERSION}'s source with a branch "${BASE}" and a branch per patch:
${STUDY_PATCHES.map((p) => `  ${p.name}: ${p.description}`).join("\n")}
compared in one command, as refs of that checkout:
  bun scripts/compare.ts --a-source CHECKOUT --a-ref ${BASE} --b-ref ${BASE} --b-ref PATCH ...
(the base against itself is the A/A reference). Prints that command, then per
build the answer on each metric its patch is expected to move (the verdict, the
ratio B/A over the cells, or the largest change that could have been missed),
what A/A called, and the wall time against the aim of ${AIM_MINUTES} minutes.
compare's own output (its answers and tables) is kept in the results folder
as study-compare.txt, its JSON as study-compare.json.
`,
  GROUPS,
  `Examples:
  bun scripts/bench-study.ts --count-instructions --instruction-sizes 100M --instruction-twins 5
  bun scripts/bench-study.ts --file-sizes 16M --iterations 5 --patches list-reads-bytes
`,
);

/**
 * One expected move as compare answered the build: the change it called
 * there (answers.ts: "more memory 2.402-2.434 (2/2 cells)"), else the largest
 * change the cells that tested it could have missed.
 */
function answerOn(answer: BuildAnswer, cells: MetricComparison[], key: string, direction: "higher" | "lower"): { text: string; found: boolean } {
  const change = (verdict: "higher" | "lower") => answer.changes.find((c) => c.key === key && c.verdict === verdict);
  const span = ([lo, hi]: [number, number]) => (lo === hi ? lo.toFixed(3) : `${lo.toFixed(3)}-${hi.toFixed(3)}`);
  const hit = change(direction);
  if (hit) return { text: `${hit.label} ${span(hit.ratio)} (${hit.cells.length}/${hit.of} cells)`, found: true };
  const other = change(direction === "higher" ? "lower" : "higher");
  if (other) return { text: `${other.label} ${span(other.ratio)} (the other way)`, found: false };
  const same = cells.filter((m) => m.verdict === "same");
  if (same.length === 0) return { text: cells[0]?.label ?? "not measured", found: false };
  const worst = largestMde(same);
  return { text: `no change larger than ${worst === null ? "10x" : fmtPercent(worst)}`, found: false };
}

await runMain(async () => {
  const { values: v } = parseCli(flagSpec(flagsOf(GROUPS)), USAGE);
  const passed = passedByMatrix(v);
  const names = valueOf(OWN.patches, v.patches).split(",");
  const patches = names.map((n) => {
    const p = STUDY_PATCHES.find((x) => x.name === n);
    if (!p) throw new UsageError(`--patches: no study patch "${n}" (known: ${STUDY_PATCHES.map((x) => x.name).join(", ")})`);
    return p;
  });
  const cells = [
    "--memory-limits", valueOf(MEMORY, v["memory-limits"]).join(","),
    "--file-sizes", valueOf(SIZES, v["file-sizes"]).map((s) => s.label).join(","),
    "--iterations", String(valueOf(ITERATIONS, v.iterations)), "--warmup", String(valueOf(WARMUP, v.warmup)),
  ];
  // The flags passed to each test, as given (compare checks them again as its own).
  const perTest = runTestArgs(matrixPassedArgs(passed.all()) as RunTestArgs);
  const resultsDir = resolve((v["results-dir"] as string | undefined) ?? RESULTS_DIR);
  ensureWritableDir(resultsDir, "--results-dir");
  const given = v.checkout as string | undefined;
  const place = given ? resolve(given) : mkdtempSync(join(tmpdir(), "bench-study-"));
  if (given) ensureWritableDir(place, "--checkout");
  else onCleanup("remove the study's checkout", () => rmSync(place, { recursive: true, force: true }));

  const t0 = performance.now();
  const checkout = await makeCheckout(place, BASE, patches.map((p) => [p.name, p]));
  log(`Checkout: ${displayPath(checkout.repo)} (branches ${[BASE, ...names].join(", ")})`);
  const args = [
    "--a-source", checkout.repo, "--a-ref", BASE, "--b-ref", BASE, ...names.flatMap((n) => ["--b-ref", n]),
    ...cells,
    ...(v["work-dir"] ? ["--work-dir", resolve(v["work-dir"] as string)] : []),
    "--results-dir", resultsDir,
    ...perTest,
  ];
  log(`The study: bun scripts/compare.ts ${args.join(" ")}`);
  const json = join(resultsDir, "study-compare.json");
  const child = $`${scriptArgv("compare", [...args, "--json"])}`.nothrow();
  child.stderr.pipe(process.stderr);
  const ran = await child;
  if (ran.exitCode !== 0 && ran.exitCode !== 3) return ran.exitCode ?? 1;
  writeFileSync(json, ran.stdout);
  const minutes = (performance.now() - t0) / 60000;
  const out = JSON.parse(ran.stdout) as {
    comparisons: { a: { run_id: number }; b: { run_id: number }; cells: { metrics: MetricComparison[] }[] }[];
    answers: BuildAnswer[];
  };
  // compare's own answers and tables, from the stored runs.
  const ids = ["--run-a", String(out.comparisons[0].a.run_id), "--run-b", out.comparisons.map((c) => c.b.run_id).join(","), "--db", join(resultsDir, "results.db")];
  const text = await $`${scriptArgv("compare", ids)}`.nothrow();
  writeFileSync(join(resultsDir, "study-compare.txt"), text.stdout);

  const metricsOf = (i: number, key: string) => out.comparisons[i].cells.flatMap((c) => c.metrics.filter((m) => m.key === key));
  const rows: string[][] = [];
  let decided = 0;
  for (const [i, p] of patches.entries()) {
    const answers = p.expect.map((e) => ({ e, a: answerOn(out.answers[i + 1], metricsOf(i + 1, e.key), e.key, e.direction) }));
    if (answers.some((x) => x.a.found)) decided++;
    for (const [j, { e, a }] of answers.entries()) {
      rows.push([j === 0 ? `B${i + 2} ${p.name}` : "", `${e.key} ${e.direction}`, a.text, a.found ? "yes" : "no"]);
    }
  }
  const aa = out.answers[0];
  const aaCalled = aa.changes.filter((c) => c.family !== "secondary");
  process.stdout.write(`The study on this host: ${DEFAULT_VERSION} (${BASE}) against ${patches.length} branches of one checkout and itself, ${minutes.toFixed(1)} min\n\n`);
  process.stdout.write(`${formatTable(["Build", "Expected", "Answer", "Called"], rows, ["left", "left", "left", "left"])}\n\n`);
  process.stdout.write(
    `A/A (B1, ${BASE} against itself): ${aaCalled.length === 0 ? "no primary metric or instruction count called" : `CALLED ${aaCalled.map((c) => `${c.metric} ${c.label} in ${c.cells.join(", ")}`).join("; ")}`}` +
      `${aa.changes.length > aaCalled.length ? `; secondary pointers: ${aa.changes.filter((c) => c.family === "secondary").map((c) => `${c.metric} ${c.label}`).join(", ")}` : ""}\n`,
  );
  process.stdout.write(`Builds with a targeted change called: ${decided} of ${patches.length}\n`);
  process.stdout.write(`Wall time: ${minutes.toFixed(1)} min (aim: under ${AIM_MINUTES}: ${minutes < AIM_MINUTES ? "met" : "NOT met"})\n`);
  process.stdout.write(`compare's answers and tables: ${displayPath(join(resultsDir, "study-compare.txt"))}, its JSON: ${displayPath(json)}\n`);
  return 0;
}, USAGE);
