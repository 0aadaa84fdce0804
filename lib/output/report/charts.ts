// What the report's charts share: each is a Vega-Lite specification (one
// file per chart: run-charts.ts, floor-chart.ts, timeline-chart.ts,
// ratio-chart.ts, control-chart.ts, trend-chart.ts), compiled to Vega and
// rendered to an SVG string here and now (renderer "none": no browser, no
// canvas), so the report needs nothing but itself to be viewed; here too the
// look, the captions and the size and series axes they have in common.
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { CellSummary } from "../../stats/cells.ts";
import { DRIFT_BASELINE, DRIFT_MIN_BAND } from "../../upload/noise.ts";

export const WIDTH = 400;
export const HEIGHT = 260;
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";

const CONFIG = {
  font: FONT,
  background: "white",
  view: { stroke: "#ddd" },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: "#eee" },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  title: { fontSize: 14, anchor: "start" as const, offset: 12 },
};

/** Vega-Lite spec -> SVG markup. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const compiled = compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * What each chart shows, for a caption under it in the page. (Not a Vega
 * subtitle: without a canvas Vega can only guess text widths, and a long
 * guessed subtitle widens the chart.)
 */
export const CAPTIONS = {
  throughput: "Median throughput of the successful runs against file size, one line per RAM limit; bars: 95 % bootstrap interval of the median.",
  memory: "Median peak working set of the successful runs against file size, one line per RAM limit; dashed: each RAM limit.",
  outcomes: "Per cell: runs passed out of all runs, OOM kills, other failures, runs without a result.",
  ratio: "B / A: ratio of the medians per cell with its 95 % bootstrap interval, coloured by verdict; dashed: no change.",
  floor:
    "RAM floor against file size, one line per build: the point is the lowest limit at which every run passed, its bar reaches down to " +
    "the highest limit at which a run failed (the floor lies between them); an open point: the search stopped on its time limit. " +
    "Builds are drawn side by side at each size.",
  control:
    `The drift sentinel's control runs: each one's figure against the matrix tests run before it. Shaded: the band, the first ${DRIFT_BASELINE} ` +
    `controls' spread widened to at least ${DRIFT_MIN_BAND * 100} % of their median (dashed); a control outside it drifted: the host ` +
    "changed under the matrix, and the cells measured after it are not measured on the same host as those before.",
  trend:
    "The median of the cell's passed runs in each stored run against when the run started; bars: the median's 95 % bootstrap interval; " +
    "labelled where the build (PicoShare version, commit) changes; coloured, and a dashed line, where the environment or the harness " +
    "differs from the run before (a step there may be the host's or the harness's, not PicoShare's); ringed: the run(s) this report is of.",
  timeline:
    "Memory against time: the working set (and, where the backend tells them apart, anonymous and file-backed memory); shaded: " +
    "the phases; dashed: the memory limit.",
};

/** "1G", "100M", "512K" on a MiB axis. */
const SIZE_LABEL_EXPR =
  "datum.value >= 1024 ? format(datum.value / 1024, '~g') + 'G' : datum.value >= 1 ? format(datum.value, '~g') + 'M' : format(datum.value * 1024, '~g') + 'K'";

/**
 * A line's (and a grid row's) name: the RAM limit, and the uploads at once
 * above 1; its cells differ only in size, each one named by cellName.
 */
export function seriesName(c: { ram_mb: number; concurrency?: number | null }): string {
  const n = c.concurrency ?? 1;
  return `${c.ram_mb} MB${n > 1 ? ` x${n}` : ""}`;
}

/** The series, largest RAM limit first, then fewest uploads at once, as legend entries. */
export function seriesDomain(cells: CellSummary[]): string[] {
  const sorted = [...cells].sort((a, b) => b.ram_mb - a.ram_mb || (a.concurrency ?? 1) - (b.concurrency ?? 1));
  return [...new Set(sorted.map(seriesName))];
}

/** File size in MiB on a log axis, labelled at each size drawn. */
export function sizeAxis(sizesMiB: number[]) {
  const sizes = [...new Set(sizesMiB)].sort((a, b) => a - b);
  const lo = sizes[0] ?? 1;
  const hi = sizes.at(-1) ?? 1;
  return {
    field: "size_mib",
    type: "quantitative" as const,
    title: "File size (log scale)",
    scale: { type: "log" as const, domain: [lo / 1.6, hi * 1.6] },
    axis: { values: sizes, labelExpr: SIZE_LABEL_EXPR, grid: true },
  };
}

export function seriesColor(cells: CellSummary[]) {
  return {
    field: "series",
    type: "nominal" as const,
    title: cells.some((c) => (c.concurrency ?? 1) > 1) ? "RAM limit, uploads at once" : "RAM limit",
    scale: { domain: seriesDomain(cells), scheme: "category10" },
    legend: { titleLimit: 260 },
  };
}

/** What every chart spec starts with: the Vega-Lite schema, its title and the shared look. */
export function frame(title: string) {
  return { $schema: "https://vega.github.io/schema/vega-lite/v6.json", title, config: CONFIG };
}
