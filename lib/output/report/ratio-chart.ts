// A comparison's charts: B / A per cell with its interval, coloured by verdict, for
// the upload's throughput and peak memory, and for the download's and the requests' metrics.
import type { TopLevelSpec } from "vega-lite";
import { cellName } from "../../stats/cells.ts";
import type { CellComparison, Comparison } from "../../stats/comparison.ts";
import { metricByKey } from "../../stats/metrics.ts";
import type { MetricComparison } from "../../stats/verdict.ts";
import { frame } from "./charts.ts";

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
  return {
    ...frame("B / A per cell"),
    hconcat: [ratioPanel(c, (cell) => cell.throughput, "Throughput"), ratioPanel(c, (cell) => cell.peak_memory, "Peak memory")],
    resolve: { scale: { color: "shared" } },
  };
}

/** The download's and the requests' compared metrics (their keys), drawn apart from the upload's. */
export const SERVED_METRICS = ["download_throughput", "download_cpu_seconds", "download_peak_rss", "list_page_seconds", "info_page_seconds", "download_first_byte_seconds"];

/** The same for the download's and the requests' metrics, a panel each that some cell has a ratio of; null when none has. */
export function servedRatioSpec(c: Comparison): TopLevelSpec | null {
  const of = (key: string) => (cell: CellComparison) => cell.metrics.find((m) => m.key === key);
  const keys = SERVED_METRICS.filter((key) => c.cells.some((cell) => (of(key)(cell)?.ratio ?? null) !== null));
  if (keys.length === 0) return null;
  return {
    ...frame("B / A per cell: download and requests"),
    concat: keys.map((key) => ratioPanel(c, of(key), metricByKey(key).name)),
    columns: 3,
    resolve: { scale: { color: "shared" } },
  };
}

/** One metric's panel: B/A per cell with its interval, coloured by verdict. */
function ratioPanel(c: Comparison, pick: (cell: CellComparison) => MetricComparison | undefined, title: string) {
  const order = c.cells.map(cellName);
  const values = c.cells
    .filter((cell) => (pick(cell)?.ratio ?? null) !== null)
    .map((cell) => {
      const m = pick(cell)!;
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
}
