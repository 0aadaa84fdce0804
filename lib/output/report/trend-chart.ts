// A trend chart: one cell's metric per stored run against when it started.
import type { TopLevelSpec } from "vega-lite";
import { trendBuild, type TrendPoint } from "../../stats/trend.ts";
import type { ComparedMetric } from "../../stats/metrics.ts";
import { HEIGHT, WIDTH, frame } from "./charts.ts";

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
