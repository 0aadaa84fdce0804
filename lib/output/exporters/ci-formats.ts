// A run's figures for continuous-benchmarking tools: Bencher's metric format
// (BMF: {benchmark: {measure: {value, lower_value, upper_value}}}) and
// github-action-benchmark's custom formats (a list of {name, unit, value,
// range?, extra?}, one file per direction). One benchmark per cell, named with
// the cell's spelling (256MB/1G); one measure per compared metric, in its
// display unit: the median of the cell's successful measured runs, with the
// 95 % bootstrap interval of the median as the bounds.
import { cellName, groupByCell } from "../../stats/cells.ts";
import { COMPARED_METRICS } from "../../stats/metrics.ts";
import { summarize, type BootstrapOptions } from "../../stats/stats.ts";
import { isWarmup, type TestResult } from "../../upload/result.ts";

export const EXPORT_FORMATS = ["bmf", "gab-bigger", "gab-smaller"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportPoint {
  benchmark: string;
  /** The metric's key (compare's JSON names it so). */
  measure: string;
  unit: string;
  value: number;
  lower: number | null;
  upper: number | null;
  higherIsBetter: boolean;
  runs: number;
}

/** Every cell's every measured metric, from a run's results (warm-ups and failed runs left out). */
export function exportPoints(results: TestResult[], opts: Omit<BootstrapOptions, "confidence"> = {}): ExportPoint[] {
  const points: ExportPoint[] = [];
  for (const cell of groupByCell(results.filter((r) => !isWarmup(r)))) {
    const ok = cell.filter((r) => r.success);
    for (const m of COMPARED_METRICS) {
      const values = ok.map(m.value).filter((v): v is number => v !== null && Number.isFinite(v)).map((v) => v / m.scale);
      if (values.length === 0) continue;
      const s = summarize(values, opts);
      const round = (x: number) => Number(x.toFixed(m.digits + 2));
      points.push({
        benchmark: cellName(cell[0]), measure: m.key, unit: m.unit || "count", value: round(s.median!),
        lower: s.ci95 ? round(s.ci95[0]) : null, upper: s.ci95 ? round(s.ci95[1]) : null, higherIsBetter: m.higherIsBetter, runs: s.n,
      });
    }
  }
  return points;
}

/** Bencher's BMF JSON. */
export function bmfJson(points: ExportPoint[]): string {
  const out: Record<string, Record<string, { value: number; lower_value?: number; upper_value?: number }>> = {};
  for (const p of points) {
    (out[p.benchmark] ??= {})[p.measure] = { value: p.value, ...(p.lower !== null ? { lower_value: p.lower, upper_value: p.upper! } : {}) };
  }
  return `${JSON.stringify(out, null, 2)}\n`;
}

/** github-action-benchmark's customBiggerIsBetter / customSmallerIsBetter list: only the metrics of that direction. */
export function gabJson(points: ExportPoint[], direction: "bigger" | "smaller"): string {
  const out = points
    .filter((p) => p.higherIsBetter === (direction === "bigger"))
    .map((p) => ({
      name: `${p.benchmark} ${p.measure}`,
      unit: p.unit,
      value: p.value,
      // The action shows range as text; the interval need not be symmetric, so its wider side.
      ...(p.lower !== null ? { range: `± ${Number(Math.max(p.value - p.lower, p.upper! - p.value).toPrecision(3))}` } : {}),
      extra: `median of ${p.runs} run(s)${p.lower !== null ? `; 95 % CI ${p.lower}-${p.upper}` : ""}`,
    }));
  return `${JSON.stringify(out, null, 2)}\n`;
}

export function exportText(points: ExportPoint[], format: ExportFormat): string {
  return format === "bmf" ? bmfJson(points) : gabJson(points, format === "gab-bigger" ? "bigger" : "smaller");
}
