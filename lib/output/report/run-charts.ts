// A run's charts over its cells: median throughput and median peak memory
// against file size (one line per RAM limit), and the pass / fail / OOM grid.
import type { TopLevelSpec } from "vega-lite";
import { cellName, type CellSummary } from "../../stats/cells.ts";
import { MiB } from "../../core/sizes.ts";
import { HEIGHT, WIDTH, frame, seriesColor, seriesDomain, seriesName, sizeAxis } from "./charts.ts";

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
