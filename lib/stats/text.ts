// Repeated tests as text: the statistics block run-test logs after its
// measured iterations, and the per-cell table of the matrix's summary.txt.
// The figures come from lib/stats/cells.ts (over each cell's passed runs).
import type { CellMetric, CellSummary } from "./cells.ts";
import type { Summary } from "./stats.ts";
import { CELL_FIELDS, field } from "../result/fields.ts";
import type { CellSpec, Field } from "../result/field.ts";
import { formatTable } from "../output/table.ts";

function value(metric: string, v: number | null): string {
  if (v === null) return "-";
  const { cell } = field(metric) as Field & { cell: CellSpec };
  return (v / cell.scale).toFixed(cell.digits);
}

export function formatCv(cv: number | null): string {
  return cv === null ? "-" : `${(cv * 100).toFixed(1)} %`;
}

function ci(metric: string, s: Summary): string {
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
  const table = formatTable(
    ["Metric", "n", "Median", "Mean", "SD", "CV", "Min", "Max", "95% CI (median)"],
    CELL_FIELDS.map(({ name: m, cell }) => {
      const s = c[m as CellMetric];
      return [
        cell.column, String(s.n), value(m, s.median), value(m, s.mean), value(m, s.stddev), formatCv(s.cv),
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
  // The declared cell metrics that have a place in this table, in its order.
  const columns = CELL_FIELDS.flatMap((f) => (f.cell.table ? [{ metric: f.name as CellMetric, ...f.cell.table }] : [])).sort((x, y) => x.rank - y.rank);
  const parallel = cells.some((c) => (c.concurrency ?? 1) > 1);
  const header = ["RAM (MB)", "File", ...(parallel ? ["At once"] : []), "n", "Passed", "Failed"];
  for (const col of columns) header.push(`${col.column} median`, "CV", "95% CI");
  return formatTable(
    header,
    cells.map((c) => {
      const row = [String(c.ram_mb), c.file_size, ...(parallel ? [String(c.concurrency ?? 1)] : []), String(c.throughput_mbps.n), String(c.passed), String(c.failed + c.harness_errors)];
      for (const { metric: m } of columns) row.push(value(m, c[m].median), formatCv(c[m].cv), ci(m, c[m]));
      return row;
    }),
    header.map(() => "right" as const),
  );
}
