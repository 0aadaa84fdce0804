// Assembles the report of one or more stored runs: per run its facts, charts,
// per-cell statistics (with each cell's host, for a run measured on several),
// the drift sentinel's control series and memory timelines; for two runs (or a live
// comparison's run, whose paired run comes along) the comparison B / A with
// its intervals; for ram-floor runs their floors, builds side by side.
// Each section is made in a file of its own; this one picks the runs and the
// pair to compare, and puts the sections on one page.
import { DEFAULT_CV_THRESHOLD } from "../../stats/cells.ts";
import { buildComparison, type Comparison, type ComparisonOptions } from "../../stats/comparison.ts";
import { UsageError } from "../../core/errors.ts";
import { isoTimestamp } from "../../upload/result.ts";
import type { ResultsDb } from "../../store/results-db.ts";
import { loadRun, sideOf, type StoredRun } from "../../store/stored-runs.ts";
import { CONTROL_KIND } from "../../matrix/sentinel.ts";
import { controlSection } from "./controls.ts";
import { notesHtml, pageHtml } from "./html.ts";
import { runCells } from "./run-cells.ts";
import { runSection } from "./run-section.ts";
import { trendSection, type TrendOptions } from "./trend-section.ts";
import { floorRunSection, floorSection, isFloorRun } from "./floor-section.ts";
import { comparisonSection } from "./comparison-section.ts";
import { addFunctionShifts, storedFileOf } from "../../stats/functions.ts";

export type { TrendOptions };

export interface ReportOptions extends ComparisonOptions {
  dbPath: string;
  /** None: no trend section. */
  trend?: TrendOptions;
}

/** Which two runs to compare: the two given, or a live comparison's run and its pair. */
export function comparisonPair(runs: StoredRun[]): [number, number] | null {
  if (runs.length === 2) return [runs[0].run.id, runs[1].run.id];
  // A control run names its matrix's run as its pair, but is no side of a comparison.
  if (runs.length === 1 && runs[0].run.paired_run_id !== null && runs[0].run.kind !== CONTROL_KIND) {
    const r = runs[0].run;
    // A compare-b run given alone is still the B side.
    return r.kind === "compare-b" ? [r.paired_run_id!, r.id] : [r.id, r.paired_run_id!];
  }
  return null;
}

export async function buildReport(db: ResultsDb, ids: number[], opts: ReportOptions): Promise<string> {
  if (ids.length === 0) throw new UsageError("give at least one run id (e.g. bun scripts/report.ts 12)", true);
  const given = ids.map((id) => loadRun(db, id, opts.dbPath));
  // A floor search's probes each ran at a limit of their own: they are no matrix, and compare's statistics do not apply.
  const floorRuns = given.filter(isFloorRun);
  const runs = given.filter((s) => !isFloorRun(s));
  const pair = comparisonPair(runs);
  if (pair) for (const id of pair) if (!runs.some((r) => r.run.id === id)) runs.push(loadRun(db, id, opts.dbPath));
  if (pair) runs.sort((x, y) => (x.run.id === pair[0] ? -1 : y.run.id === pair[0] ? 1 : 0));

  const sections: string[] = [];
  if (floorRuns.length > 0) sections.push(await floorSection(floorRuns));
  let comparison: Comparison | null = null;
  if (pair) {
    const a = runs.find((r) => r.run.id === pair[0])!;
    const b = runs.find((r) => r.run.id === pair[1])!;
    const [sa, sb] = [sideOf(a, "A"), sideOf(b, "B")];
    comparison = addFunctionShifts(buildComparison(sa, sb, opts), sa, sb, storedFileOf(a), storedFileOf(b));
    sections.push(await comparisonSection(comparison));
  } else if (runs.length > 2) {
    sections.push(notesHtml([`${runs.length} runs: no comparison (give two runs, or one run of a live comparison, for B / A).`]));
  }
  for (const s of runs) {
    sections.push(await runSection(s, runCells(s, opts), opts.cvThreshold ?? DEFAULT_CV_THRESHOLD, await controlSection(db, s)));
  }
  const trends = await trendSection(db, opts.dbPath, runs, opts.trend);
  sections.push(trends);
  for (const s of floorRuns) sections.push(floorRunSection(s));

  const all = [...runs, ...floorRuns];
  const title = comparison
    ? `PicoShare performance: run ${comparison.b.run_id} against run ${comparison.a.run_id}`
    : `PicoShare ${runs.length === 0 ? "RAM floor" : "performance"}: run${all.length > 1 ? "s" : ""} ${all.map((r) => r.run.id).join(", ")}`;
  const toc = all.length > 1 || comparison || trends
    ? `<p>${[
      floorRuns.length > 0 && all.length > 1 ? `<a href="#ram-floor">RAM floor</a>` : null,
      comparison ? `<a href="#comparison">Comparison</a>` : null,
      ...runs.map((r) => `<a href="#run-${r.run.id}">Run ${r.run.id}</a>`),
      trends ? `<a href="#trends">Trends</a>` : null,
      ...floorRuns.map((r) => `<a href="#run-${r.run.id}">Run ${r.run.id}</a>`),
    ].filter(Boolean).join(" · ")}</p>`
    : "";
  return pageHtml(
    title,
    `Results log ${opts.dbPath}; generated ${isoTimestamp(new Date())}`,
    `${toc}\n${sections.join("\n")}`,
    "Made by picoshare-perf-test scripts/report.ts. Charts: Vega-Lite, rendered to SVG when the report was made.",
  );
}
