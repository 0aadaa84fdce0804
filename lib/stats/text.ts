// Repeated tests as text: the statistics block run-test logs after its
// measured iterations, and the per-cell table of the matrix's summary.txt.
// The figures come from lib/stats/cells.ts (over each cell's passed runs).
import type { CellMetric, CellSummary } from "./cells.ts";
import type { Summary } from "./stats.ts";
import { MiB } from "../core/sizes.ts";
import { formatTable } from "../output/table.ts";

interface MetricFormat {
  label: string;
  /** The value as shown (peak memory in MiB). */
  scale: (v: number) => number;
  digits: number;
}

const FORMATS: Record<CellMetric, MetricFormat> = {
  duration_seconds: { label: "Duration (s)", scale: (v) => v, digits: 3 },
  throughput_mbps: { label: "Throughput (MB/s)", scale: (v) => v, digits: 2 },
  peak_memory_bytes: { label: "Peak memory (MB)", scale: (v) => v / MiB, digits: 1 },
  picoshare_peak_rss_bytes: { label: "PicoShare RSS (MB)", scale: (v) => v / MiB, digits: 1 },
  anon_peak_bytes: { label: "Anon peak (MB)", scale: (v) => v / MiB, digits: 1 },
};

function value(metric: CellMetric, v: number | null): string {
  if (v === null) return "-";
  const f = FORMATS[metric];
  return f.scale(v).toFixed(f.digits);
}

export function formatCv(cv: number | null): string {
  return cv === null ? "-" : `${(cv * 100).toFixed(1)} %`;
}

function ci(metric: CellMetric, s: Summary): string {
  return s.ci95 === null ? "-" : `${value(metric, s.ci95[0])}-${value(metric, s.ci95[1])}`;
}

function outcome(c: CellSummary): string {
  const failed = c.failed + c.harness_errors;
  return `${c.passed} passed, ${failed} failed`;
}

/**
 * run-test's closing block for its measured runs: one aligned line per metric
 * with n, median, mean, sd, CV, min, max and the 95 % CI of the median.
 */
export function statisticsBlock(c: CellSummary, ramMiB: number): string[] {
  const runs = c.runs + c.harness_errors;
  const metrics: CellMetric[] = ["duration_seconds", "throughput_mbps", "peak_memory_bytes", "picoshare_peak_rss_bytes", "anon_peak_bytes"];
  const table = formatTable(
    ["Metric", "n", "Median", "Mean", "SD", "CV", "Min", "Max", "95% CI (median)"],
    metrics.map((m) => {
      const s = c[m];
      return [
        FORMATS[m].label, String(s.n), value(m, s.median), value(m, s.mean), value(m, s.stddev), formatCv(s.cv),
        value(m, s.min), value(m, s.max), ci(m, s),
      ];
    }),
    ["left", "right", "right", "right", "right", "right", "right", "right", "right"],
  );
  return [
    `Statistics over ${runs} measured run${runs === 1 ? "" : "s"} of ${ramMiB}MB RAM, ${c.file_size} file${(c.concurrency ?? 1) > 1 ? `, ${c.concurrency} at once` : ""} ` +
      `(${outcome(c)}; warm-ups not counted; figures over the passed runs):`,
    ...table.split("\n").map((l) => `  ${l}`),
  ];
}

/**
 * summary.txt's table: one line per cell with n (passed runs), passed and
 * failed, and the median, CV and 95 % CI of throughput, duration and peak memory.
 */
export function cellStatsTable(cells: CellSummary[]): string {
  const metrics: CellMetric[] = ["throughput_mbps", "duration_seconds", "peak_memory_bytes", "picoshare_peak_rss_bytes"];
  const short: Record<CellMetric, string> = {
    throughput_mbps: "Throughput (MB/s)",
    duration_seconds: "Duration (s)",
    peak_memory_bytes: "Peak (MB)",
    picoshare_peak_rss_bytes: "PicoShare RSS (MB)",
    anon_peak_bytes: "Anon peak (MB)",
  };
  const parallel = cells.some((c) => (c.concurrency ?? 1) > 1);
  const header = ["RAM (MB)", "File", ...(parallel ? ["At once"] : []), "n", "Passed", "Failed"];
  for (const m of metrics) header.push(`${short[m]} median`, "CV", "95% CI");
  return formatTable(
    header,
    cells.map((c) => {
      const row = [String(c.ram_mb), c.file_size, ...(parallel ? [String(c.concurrency ?? 1)] : []), String(c.throughput_mbps.n), String(c.passed), String(c.failed + c.harness_errors)];
      for (const m of metrics) row.push(value(m, c[m].median), formatCv(c[m].cv), ci(m, c[m]));
      return row;
    }),
    header.map(() => "right" as const),
  );
}
