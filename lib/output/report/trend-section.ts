// The report's trends: each cell's metric over every stored run
// (lib/stats/trend.ts, as `results trend` prints it), a chart and a table.
import { cellKeyOf, cellName, resultCell } from "../../stats/cells.ts";
import type { ResultsDb } from "../../store/results-db.ts";
import type { StoredRun } from "../../store/stored-runs.ts";
import { cellTrend, trendRuns, trendTable, trendTitle, type TrendCell } from "../../stats/trend.ts";
import type { ComparedMetric } from "../../stats/metrics.ts";
import { chartHtml, escapeHtml, notesHtml, scrollHtml, tableHtml } from "./html.ts";
import { CAPTIONS, renderSvg } from "./charts.ts";
import { trendSpec } from "./trend-chart.ts";

/** Which trends the report draws. */
export interface TrendOptions {
  /** The cells asked for (each drawn, measured or not); null: every cell of the reported runs that two or more stored runs measured. */
  cells: TrendCell[] | null;
  metrics: ComparedMetric[];
  /** Only runs started at or after this moment (ms), as given (`text`); null: every run. */
  since: { at: number; text: string } | null;
}

/** The cells of the reported runs, in the order of their sections (largest RAM first, then smallest file, then fewest uploads at once). */
function reportedCells(runs: StoredRun[]): TrendCell[] {
  const cells = new Map<string, TrendCell>();
  for (const r of runs.flatMap((s) => s.results)) {
    const c = resultCell(r);
    cells.set(cellKeyOf(c), { ram_mb: c.ram_mb, file_size: c.file_size, file_size_bytes: c.file_size_bytes, concurrency: c.concurrency ?? 1 });
  }
  return [...cells.values()].sort((x, y) => y.ram_mb - x.ram_mb || x.file_size_bytes - y.file_size_bytes || x.concurrency - y.concurrency);
}

/**
 * Each cell's metric over every stored run (lib/stats/trend.ts, as `results
 * trend` prints it): a chart and the table. Asked-for cells are drawn however
 * few runs measured them; by default a cell of the report needs two runs with
 * a median to make a trend. "" when trends are off or nothing is drawn.
 */
export async function trendSection(db: ResultsDb, dbPath: string, reported: StoredRun[], t: TrendOptions | undefined): Promise<string> {
  if (!t) return "";
  const since = t.since ? ` since ${t.since.text}` : "";
  const stored = trendRuns(db, dbPath, t.since?.at ?? null);
  const mine = reported.map((s) => s.run.id);
  const cells = t.cells ?? reportedCells(reported);
  // The charts side by side first, then the tables: a glance along the charts shows where a step came.
  const charts: string[] = [];
  const tables: string[] = [];
  const notes: string[] = [];
  for (const cell of cells) {
    for (const metric of t.metrics) {
      const points = cellTrend(stored, cell, metric);
      const drawn = points.filter((p) => p.median !== null).length;
      if (t.cells === null && drawn < 2) continue;
      const title = trendTitle(cell, metric);
      if (points.length === 0) {
        notes.push(`${title}: no stored run${since} measured this cell.`);
        continue;
      }
      const table = trendTable(points, metric, mine);
      const name = `trend-${cellName(cell).replace(/\//g, "-")}-${metric.key}`;
      if (drawn > 0) charts.push(chartHtml(name, await renderSvg(trendSpec(points, metric, mine, `${title}${since}`)), CAPTIONS.trend));
      tables.push(
        scrollHtml(tableHtml({ header: table.header, rows: table.rows, numeric: table.align.map((a) => a === "right") }, `${title}${since}`)),
        notesHtml([...(drawn === 0 ? ["No run passed this cell in any stored run: nothing to draw."] : []), ...table.notes]),
      );
    }
  }
  if (tables.length === 0 && notes.length === 0 && t.cells === null) {
    if (cells.length === 0) return "";
    notes.push(`No cell of this report was measured by two or more stored runs${since} with a run that passed: no trend to draw.`);
  }
  return [
    `<h2 id="trends">Trends: ${escapeHtml(`${t.metrics.map((m) => m.name).join(", ")} over the stored runs${since}`)}</h2>`,
    charts.length > 0 ? `<div class="charts">${charts.join("")}</div>` : "",
    ...tables,
    notesHtml(notes),
  ].join("\n");
}
