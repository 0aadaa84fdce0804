// The report's charts as Vega-Lite specifications, compiled to Vega and
// rendered to SVG strings here and now (renderer "none": no browser, no
// canvas), so the report needs nothing but itself to be viewed.
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { cellName, type CellSummary } from "../../stats/cells.ts";
import type { Comparison } from "../../stats/comparison.ts";
import { MiB } from "../../core/sizes.ts";
import type { MetricComparison } from "../../stats/verdict.ts";
import { TIMELINE_PHASES, type TimelinePhase, type TimelineSample } from "../../upload/timeline.ts";
import { DRIFT_BASELINE, DRIFT_MIN_BAND, type DriftBand } from "../../upload/noise.ts";
import { trendBuild, type TrendPoint } from "../../stats/trend.ts";
import type { ComparedMetric } from "../../stats/metrics.ts";

const WIDTH = 400;
const HEIGHT = 260;
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
function seriesName(c: { ram_mb: number; concurrency?: number | null }): string {
  const n = c.concurrency ?? 1;
  return `${c.ram_mb} MB${n > 1 ? ` x${n}` : ""}`;
}

/** The series, largest RAM limit first, then fewest uploads at once, as legend entries. */
function seriesDomain(cells: CellSummary[]): string[] {
  const sorted = [...cells].sort((a, b) => b.ram_mb - a.ram_mb || (a.concurrency ?? 1) - (b.concurrency ?? 1));
  return [...new Set(sorted.map(seriesName))];
}

/** File size in MiB on a log axis, labelled at each size drawn. */
function sizeAxis(sizesMiB: number[]) {
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

function seriesColor(cells: CellSummary[]) {
  return {
    field: "series",
    type: "nominal" as const,
    title: cells.some((c) => (c.concurrency ?? 1) > 1) ? "RAM limit, uploads at once" : "RAM limit",
    scale: { domain: seriesDomain(cells), scheme: "category10" },
    legend: { titleLimit: 260 },
  };
}

/** What every chart spec starts with: the Vega-Lite schema, its title and the shared look. */
function frame(title: string) {
  return { $schema: "https://vega.github.io/schema/vega-lite/v6.json", title, config: CONFIG };
}

/** One point per cell: its median and the median's 95 % interval (the median alone where there is none), divided by `scale`. */
function medianPoints(cells: CellSummary[], metric: "throughput_mbps" | "peak_memory_bytes", scale = 1) {
  return cells
    .filter((c) => c[metric].median !== null)
    .map((c) => {
      const s = c[metric];
      return {
        series: seriesName(c),
        cell: cellName(c),
        size_mib: c.file_size_bytes / MiB,
        median: s.median! / scale,
        lo: (s.ci95?.[0] ?? s.median!) / scale,
        hi: (s.ci95?.[1] ?? s.median!) / scale,
        n: s.n,
      };
    });
}

/** Median throughput against file size, one line per RAM limit, with the median's 95 % interval. */
export function throughputSpec(cells: CellSummary[], title: string): TopLevelSpec {
  const values = medianPoints(cells, "throughput_mbps");
  const x = sizeAxis(cells.map((c) => c.file_size_bytes / MiB));
  const color = seriesColor(cells);
  return {
    ...frame(title),
    width: WIDTH,
    height: HEIGHT,
    data: { values },
    encoding: { x, color },
    layer: [
      { mark: { type: "line", strokeWidth: 2 }, encoding: { y: { field: "median", type: "quantitative", title: "Throughput (MiB/s)" } } },
      { mark: { type: "rule", strokeWidth: 1.5 }, encoding: { y: { field: "lo", type: "quantitative" }, y2: { field: "hi" } } },
      {
        mark: { type: "point", filled: true, size: 60 },
        encoding: {
          y: { field: "median", type: "quantitative" },
          tooltip: [{ field: "cell" }, { field: "median", format: ".2f" }, { field: "n" }],
        },
      },
    ],
  };
}

/** Median peak memory against file size, one line per RAM limit, each limit drawn as a dashed rule. */
export function memorySpec(cells: CellSummary[], title: string): TopLevelSpec {
  const values = medianPoints(cells, "peak_memory_bytes", MiB);
  // A rule per series, coloured as its line; the limit's label once per RAM limit (series of one limit share its rule).
  const limits = seriesDomain(cells).map((series) => {
    const ram = cells.find((c) => seriesName(c) === series)!.ram_mb;
    return { series, limit: ram, label: `${ram} MB` };
  });
  const labels = limits.filter((l, i) => limits.findIndex((m) => m.limit === l.limit) === i);
  const peaks = values.map((v) => v.lo).filter((v) => v > 0);
  const lo = Math.min(...peaks, ...limits.map((l) => l.limit)) / 1.5;
  const hi = Math.max(...values.map((v) => v.hi), ...limits.map((l) => l.limit)) * 1.5;
  const x = sizeAxis(cells.map((c) => c.file_size_bytes / MiB));
  const color = seriesColor(cells);
  const y = { type: "quantitative" as const, scale: { type: "log" as const, domain: [lo, hi] } };
  return {
    ...frame(title),
    width: WIDTH,
    height: HEIGHT,
    layer: [
      {
        data: { values: limits },
        mark: { type: "rule", strokeDash: [6, 4], strokeWidth: 1.5 },
        encoding: { y: { ...y, field: "limit", title: "Peak memory (MiB, log scale)" }, color },
      },
      {
        data: { values: labels },
        mark: { type: "text", align: "right", dx: WIDTH / 2 - 4, dy: -7, fontSize: 10 },
        encoding: { y: { ...y, field: "limit" }, text: { field: "label" }, color },
      },
      {
        data: { values },
        encoding: { x, color },
        layer: [
          { mark: { type: "line", strokeWidth: 2 }, encoding: { y: { ...y, field: "median", title: "Peak memory (MiB, log scale)" } } },
          { mark: { type: "rule", strokeWidth: 1.5 }, encoding: { y: { ...y, field: "lo" }, y2: { field: "hi" } } },
          {
            mark: { type: "point", filled: true, size: 60 },
            encoding: {
              y: { ...y, field: "median" },
              tooltip: [{ field: "cell" }, { field: "median", format: ".1f", title: "peak MiB" }],
            },
          },
        ],
      },
    ],
    resolve: { scale: { y: "shared" } },
  };
}

/** One build's floor at one file size, for the floor chart. */
export interface FloorPoint {
  build: string;
  size: string;
  file_size_bytes: number;
  lowest_passing_mb: number | null;
  highest_failing_mb: number | null;
  failure: string | null;
  finished: boolean;
  probes: number;
}

/** The RAM floor (lowest passing limit) against file size, one line per build, each point with its bracket down to the highest failing limit. */
export function floorSpec(points: FloorPoint[], builds: string[], title: string): TopLevelSpec {
  // Several builds at one size would hide each other's brackets: each is nudged a few per cent along the (log) size axis.
  const values = points
    .filter((p) => p.lowest_passing_mb !== null)
    .map((p) => ({
      ...p,
      size_mib: (p.file_size_bytes / MiB) * 1.07 ** (builds.indexOf(p.build) - (builds.length - 1) / 2),
      search: p.finished ? "finished" : "unfinished (time limit)",
    }));
  const x = sizeAxis(points.map((p) => p.file_size_bytes / MiB));
  const color = {
    field: "build",
    type: "nominal" as const,
    title: "Build",
    scale: { domain: builds, scheme: "category10" },
    legend: { orient: "bottom" as const, direction: "vertical" as const, labelLimit: 560 },
  };
  const y = { type: "quantitative" as const, title: "RAM floor (MiB)", scale: { zero: true } };
  const point = (finished: boolean) => ({
    transform: [{ filter: finished ? "datum.finished" : "!datum.finished" }],
    mark: { type: "point" as const, filled: finished, size: 70, strokeWidth: 2 },
    encoding: {
      y: { ...y, field: "lowest_passing_mb" },
      tooltip: [
        { field: "build" }, { field: "size" }, { field: "lowest_passing_mb", title: "lowest passing MiB" },
        { field: "highest_failing_mb", title: "highest failing MiB" }, { field: "failure" }, { field: "probes" }, { field: "search" },
      ],
    },
  });
  return {
    ...frame(title),
    width: WIDTH,
    height: HEIGHT,
    data: { values },
    encoding: { x, color },
    layer: [
      {
        transform: [{ filter: "datum.highest_failing_mb != null" }],
        mark: { type: "rule", strokeWidth: 3, opacity: 0.55 },
        encoding: { y: { ...y, field: "highest_failing_mb" }, y2: { field: "lowest_passing_mb" } },
      },
      { mark: { type: "line", strokeWidth: 2 }, encoding: { y: { ...y, field: "lowest_passing_mb" } } },
      point(true),
      point(false),
    ],
  };
}

/** More samples than this in a timeline are thinned for drawing. */
export const TIMELINE_MAX_POINTS = 600;

const PHASE_COLORS: Record<TimelinePhase, string> = { upload: "#a0cbe8", processing: "#ffbe7d", download: "#8cd17d" };
const TIMELINE_SERIES = [
  { name: "working set", key: "working_set_bytes", color: "#222222" },
  { name: "anon", key: "anon_bytes", color: "#b07aa1" },
  { name: "file", key: "file_bytes", color: "#9c755f" },
] as const;

/** The phases as spans of time, each from its first sample to the next phase's first (the first from 0, the last to its last sample). */
export function phaseSpans(samples: TimelineSample[]): { phase: TimelinePhase; start: number; end: number }[] {
  const spans: { phase: TimelinePhase; start: number; end: number }[] = [];
  for (const s of samples) {
    const last = spans.at(-1);
    if (last && last.phase === s.phase) last.end = s.t;
    else {
      if (last) last.end = s.t;
      spans.push({ phase: s.phase, start: spans.length === 0 ? 0 : s.t, end: s.t });
    }
  }
  return spans;
}

/**
 * At most about `max` samples, for drawing: each phase's samples in runs of
 * n / max, each run reduced to its highest working set, so that every peak
 * (each phase's among them) is kept and the page stays small.
 */
export function thinTimeline(samples: TimelineSample[], max = TIMELINE_MAX_POINTS): TimelineSample[] {
  if (samples.length <= max) return samples;
  const k = Math.ceil(samples.length / max);
  const out: TimelineSample[] = [];
  let run: TimelineSample[] = [];
  const flush = () => {
    if (run.length > 0) out.push(run.reduce((a, b) => (b.working_set_bytes > a.working_set_bytes ? b : a)));
    run = [];
  };
  for (const s of samples) {
    if (run.length === k || (run.length > 0 && run[0].phase !== s.phase)) flush();
    run.push(s);
  }
  flush();
  return out;
}

/** One test's memory against time: working set (anon, file where known), the phases shaded, the limit as a labelled rule. */
export function timelineSpec(samples: TimelineSample[], limitMb: number, title: string): TopLevelSpec {
  const spans = phaseSpans(samples);
  const phases = TIMELINE_PHASES.filter((p) => spans.some((s) => s.phase === p));
  const series = TIMELINE_SERIES.filter((x) => samples.some((s) => s[x.key] !== null));
  const values = thinTimeline(samples).flatMap((s) =>
    series.filter((x) => s[x.key] !== null).map((x) => ({ t: s.t, phase: s.phase, series: x.name, mib: s[x.key]! / MiB })),
  );
  const tMax = Math.max(0.001, samples.at(-1)?.t ?? 0);
  const peak = Math.max(0, ...values.map((v) => v.mib));
  const x = { type: "quantitative" as const, title: "Seconds since the upload began", scale: { domain: [0, tMax], nice: false } };
  const y = { type: "quantitative" as const, title: "Memory (MiB)", scale: { domain: [0, Math.max(limitMb, peak) * 1.08], nice: false } };
  const limit = [{ limit: limitMb, t: tMax, label: `limit ${limitMb} MiB` }];
  return {
    ...frame(title),
    width: WIDTH,
    height: HEIGHT,
    layer: [
      {
        data: { values: spans },
        mark: { type: "rect", opacity: 0.6 },
        encoding: {
          x: { ...x, field: "start" },
          x2: { field: "end" },
          fill: { field: "phase", type: "nominal", title: "Phase", scale: { domain: phases, range: phases.map((p) => PHASE_COLORS[p]) } },
        },
      },
      {
        data: { values },
        mark: { type: "line", strokeWidth: 1.5 },
        encoding: {
          x: { ...x, field: "t" },
          y: { ...y, field: "mib" },
          stroke: { field: "series", type: "nominal", title: "Memory", scale: { domain: series.map((s) => s.name), range: series.map((s) => s.color) } },
        },
      },
      { data: { values: limit }, mark: { type: "rule", color: "#e15759", strokeDash: [6, 4], strokeWidth: 1.5 }, encoding: { y: { ...y, field: "limit" } } },
      {
        data: { values: limit },
        mark: { type: "text", align: "right", baseline: "bottom", dy: -3, color: "#e15759", fontSize: 10 },
        encoding: { x: { ...x, field: "t" }, y: { ...y, field: "limit" }, text: { field: "label" } },
      },
    ],
  };
}

export const OUTCOMES = ["pass", "mixed", "fail", "OOM", "no result"] as const;
const OUTCOME_COLORS = ["#59a14f", "#f1ce63", "#e15759", "#7b3294", "#bab0ac"];

/** What a cell came to, across its runs. */
export function cellOutcome(c: CellSummary): { outcome: (typeof OUTCOMES)[number]; text: string } {
  const total = c.runs + c.harness_errors;
  const parts = [`${c.passed}/${total} pass`];
  if (c.oom > 0) parts.push(`${c.oom} OOM`);
  if (c.failed - c.oom > 0) parts.push(`${c.failed - c.oom} fail`);
  if (c.harness_errors > 0) parts.push(`${c.harness_errors} no result`);
  let outcome: (typeof OUTCOMES)[number];
  if (c.runs === 0) outcome = "no result";
  else if (c.passed === total) outcome = "pass";
  else if (c.passed > 0) outcome = "mixed";
  else if (c.oom === c.runs) outcome = "OOM";
  else outcome = "fail";
  return { outcome, text: parts.join(", ") };
}

/** Pass / fail / OOM grid: RAM limits (and uploads at once) down, file sizes across. */
export function outcomeGridSpec(cells: CellSummary[], title: string): TopLevelSpec {
  const values = cells.map((c) => ({ series: seriesName(c), size: c.file_size, cell: cellName(c), ...cellOutcome(c) }));
  const sizes = [...cells].sort((a, b) => a.file_size_bytes - b.file_size_bytes).map((c) => c.file_size);
  const x = { field: "size", type: "ordinal" as const, title: "File size", sort: [...new Set(sizes)], axis: { labelAngle: 0, orient: "top" as const } };
  const y = { field: "series", type: "ordinal" as const, title: seriesColor(cells).title, sort: seriesDomain(cells) };
  return {
    ...frame(title),
    data: { values },
    width: { step: 120 },
    height: { step: 44 },
    encoding: { x, y },
    layer: [
      {
        mark: { type: "rect", stroke: "white", strokeWidth: 2 },
        encoding: {
          color: { field: "outcome", type: "nominal", title: "Outcome", scale: { domain: [...OUTCOMES], range: OUTCOME_COLORS } },
          tooltip: [{ field: "cell" }, { field: "text", title: "runs" }],
        },
      },
      {
        mark: { type: "text", fontSize: 11 },
        encoding: {
          text: { field: "text" },
          // Light text on the dark cells, dark text on the light ones.
          color: { condition: { test: "datum.outcome === 'OOM' || datum.outcome === 'fail'", value: "white" }, value: "#111" },
        },
      },
    ],
  };
}

// Fixed verdict colours, so that they mean the same in every report.
const VERDICTS = ["B better", "B worse", "no significant difference", "too few samples"];
const VERDICT_COLORS = ["#59a14f", "#e15759", "#4e79a7", "#bab0ac"];
const verdictColor = {
  field: "verdict",
  type: "nominal" as const,
  title: "Verdict",
  scale: { domain: VERDICTS, range: VERDICT_COLORS },
  legend: { labelLimit: 320 },
};

function verdictClass(m: MetricComparison): string {
  if (m.verdict === "too_few") return "too few samples";
  if (m.verdict === "same") return "no significant difference";
  return m.better ? "B better" : "B worse";
}

/** B/A per cell with its 95 % interval, for throughput and for peak memory, coloured by verdict. */
export function ratioSpec(c: Comparison): TopLevelSpec {
  const order = c.cells.map(cellName);
  const panel = (metric: "throughput" | "peak_memory", title: string) => {
    const values = c.cells
      .filter((cell) => cell[metric].ratio !== null)
      .map((cell) => {
        const m = cell[metric];
        return {
          cell: cellName(cell),
          ratio: m.ratio,
          lo: m.ci95?.[0] ?? m.ratio,
          hi: m.ci95?.[1] ?? m.ratio,
          verdict: verdictClass(m),
          label: m.label,
          p: m.p_value,
        };
      });
    const all = values.flatMap((v) => [v.lo!, v.hi!, v.ratio!]).filter((v) => v > 0);
    const span = Math.max(1.1, ...all.map((v) => Math.max(v, 1 / v))) * 1.1;
    const x = { type: "quantitative" as const, scale: { type: "log" as const, domain: [1 / span, span] }, title: `${title} B/A (log scale)` };
    const y = { field: "cell", type: "ordinal" as const, sort: order, title: null };
    return {
      title: { text: title, fontSize: 12 },
      width: 300,
      height: { step: 28 },
      layer: [
        { data: { values: [{ one: 1 }] }, mark: { type: "rule" as const, color: "#888", strokeDash: [4, 3] }, encoding: { x: { ...x, field: "one" } } },
        {
          data: { values },
          encoding: { y },
          layer: [
            { mark: { type: "rule" as const, strokeWidth: 2 }, encoding: { x: { ...x, field: "lo" }, x2: { field: "hi" }, color: verdictColor } },
            {
              mark: { type: "point" as const, filled: true, size: 70 },
              encoding: {
                x: { ...x, field: "ratio" },
                color: verdictColor,
                tooltip: [{ field: "cell" }, { field: "ratio", format: ".3f" }, { field: "lo", format: ".3f" }, { field: "hi", format: ".3f" }, { field: "label" }],
              },
            },
          ],
        },
      ],
    };
  };
  return {
    ...frame("B / A per cell"),
    hconcat: [panel("throughput", "Throughput"), panel("peak_memory", "Peak memory")],
    resolve: { scale: { color: "shared" } },
  };
}

/** How a control run stands against its figure's band, in the legend's order. */
export const CONTROL_STATES = [`first ${DRIFT_BASELINE}: set the band`, "within the band", "outside the band: drift"] as const;
const CONTROL_COLORS = ["#4e79a7", "#59a14f", "#e15759"];
const CONTROL_SHAPES = ["circle", "circle", "triangle-down"];

/** One control run's figure, for the control chart. */
export interface ControlPoint {
  /** Which control run (1-based) and after how many tests of the matrix it ran. */
  control: number;
  after: number;
  value: number;
  state: (typeof CONTROL_STATES)[number];
}

/** A panel per figure (throughput, CPU seconds): the controls against the tests before them, the band shaded, drifted ones marked. */
export function controlSpec(panels: { name: string; unit: string; band: DriftBand | null; points: ControlPoint[] }[], title: string): TopLevelSpec {
  const afters = panels.flatMap((p) => p.points.map((x) => x.after));
  const x = {
    field: "after", type: "quantitative" as const, title: "After test (of the matrix)",
    scale: { domain: [Math.min(0, ...afters), Math.max(1, ...afters)], nice: false, padding: 10 }, axis: { tickMinStep: 1, format: "d" },
  };
  const state = {
    field: "state", type: "nominal" as const, title: "Control",
    scale: { domain: [...CONTROL_STATES], range: CONTROL_COLORS }, legend: { labelLimit: 320 },
  };
  // The same field and title: one legend with both colour and shape.
  const shape = { field: "state", type: "nominal" as const, title: "Control", scale: { domain: [...CONTROL_STATES], range: CONTROL_SHAPES } };
  const panel = (p: (typeof panels)[number]) => {
    const y = { type: "quantitative" as const, title: `${p.name} (${p.unit})`, scale: { zero: false, padding: 10 } };
    const band = p.band ? [{ from: p.band.from, to: p.band.to, mid: p.band.mid }] : [];
    return {
      title: { text: p.name, fontSize: 12 },
      width: 320,
      height: 200,
      layer: [
        // No x: the band spans the whole panel.
        { data: { values: band }, mark: { type: "rect" as const, color: "#4e79a7", opacity: 0.12 }, encoding: { y: { ...y, field: "from" }, y2: { field: "to" } } },
        { data: { values: band }, mark: { type: "rule" as const, color: "#4e79a7", strokeDash: [4, 3] }, encoding: { y: { ...y, field: "mid" } } },
        {
          data: { values: p.points },
          layer: [
            { mark: { type: "line" as const, color: "#999", strokeWidth: 1.5 }, encoding: { x, y: { ...y, field: "value" } } },
            {
              mark: { type: "point" as const, filled: true, size: 80 },
              encoding: {
                x,
                y: { ...y, field: "value" },
                color: state,
                shape,
                tooltip: [{ field: "control" }, { field: "after", title: "after test" }, { field: "value", title: `${p.name} (${p.unit})` }, { field: "state" }],
              },
            },
          ],
        },
      ],
    };
  };
  return { ...frame(title), hconcat: panels.map(panel), resolve: { scale: { color: "shared", shape: "shared" } } };
}

/** How a trend point's run stands against the run before, in the legend's order. */
export const TREND_STATES = ["as the run before", "environment differs", "harness differs", "environment and harness differ"] as const;
const TREND_COLORS = ["#4e79a7", "#f28e2b", "#b07aa1", "#e15759"];
const TREND_SHAPES = ["circle", "square", "diamond", "triangle-up"];

function trendState(p: TrendPoint): (typeof TREND_STATES)[number] {
  const env = p.differs.includes("environment");
  const harness = p.differs.includes("harness");
  return TREND_STATES[env && harness ? 3 : harness ? 2 : env ? 1 : 0];
}

/**
 * One cell's metric per stored run against when the run started: the median
 * with its interval, the build named where it changes, a dashed line and
 * another colour where the environment or the harness changed, and the
 * report's own runs ringed. Runs where the cell never passed have no median:
 * they are in the table only.
 */
export function trendSpec(points: TrendPoint[], metric: ComparedMetric, mine: number[], title: string): TopLevelSpec {
  const values = points.flatMap((p, i) => {
    if (p.median === null) return [];
    const build = trendBuild(p);
    return [{
      run: p.run_id, t: Date.parse(p.started_at), started: p.started_at, build, median: p.median, lo: p.ci95?.[0] ?? p.median, hi: p.ci95?.[1] ?? p.median,
      n: p.n, state: trendState(p), changes: p.changes.join("; ") || "-", mine: mine.includes(p.run_id),
      labelled: i === 0 || trendBuild(points[i - 1]) !== build,
    }];
  });
  const x = { field: "t", type: "temporal" as const, title: "Run started", scale: { padding: 24 } };
  const y = { type: "quantitative" as const, title: `${metric.name}${metric.unit ? ` (${metric.unit})` : ""}`, scale: { zero: false, padding: 16 } };
  const state = { field: "state", type: "nominal" as const, title: "Against the run before", scale: { domain: [...TREND_STATES], range: TREND_COLORS }, legend: { orient: "bottom" as const, columns: 2, labelLimit: 320, titleLimit: 320 } };
  // The same field and title: one legend with both colour and shape.
  const shape = { field: "state", type: "nominal" as const, title: "Against the run before", scale: { domain: [...TREND_STATES], range: TREND_SHAPES } };
  return {
    ...frame(title),
    width: WIDTH,
    height: HEIGHT,
    data: { values },
    encoding: { x },
    layer: [
      // No y: the line spans the whole height, at the run that differs.
      { transform: [{ filter: `datum.state !== '${TREND_STATES[0]}'` }], mark: { type: "rule", strokeDash: [4, 3], opacity: 0.7 }, encoding: { color: state } },
      { mark: { type: "line", color: "#999", strokeWidth: 1.5 }, encoding: { y: { ...y, field: "median" } } },
      { mark: { type: "rule", strokeWidth: 1.5 }, encoding: { y: { ...y, field: "lo" }, y2: { field: "hi" }, color: state } },
      {
        transform: [{ filter: "datum.mine" }],
        mark: { type: "point", filled: false, size: 280, color: "#222", strokeWidth: 1.5 },
        encoding: { y: { ...y, field: "median" } },
      },
      {
        mark: { type: "point", filled: true, size: 70 },
        encoding: {
          y: { ...y, field: "median" },
          color: state,
          shape,
          tooltip: [
            { field: "run" }, { field: "started" }, { field: "build" }, { field: "median", format: `.${metric.digits}f` },
            { field: "lo", format: `.${metric.digits}f` }, { field: "hi", format: `.${metric.digits}f` }, { field: "n" }, { field: "changes" },
          ],
        },
      },
      {
        transform: [{ filter: "datum.labelled" }],
        // Beside the point, clear of the interval's bar and of the dashed line through it.
        mark: { type: "text", align: "left", baseline: "bottom", dx: 6, dy: -4, fontSize: 10, color: "#333" },
        encoding: { y: { ...y, field: "median" }, text: { field: "build" } },
      },
    ],
  };
}
