// A comparison's section of the report: B / A per cell as a chart, and the
// tables and notes compare prints.
import type { Comparison } from "../../stats/comparison.ts";
import { functionTables } from "../exporters/compare-functions.ts";
import { cellTables, methodLine, notes, outcomeTable, primaryTable } from "../exporters/compare-common.ts";
import { chartHtml, listWarningHtml, notesHtml, scrollHtml, tableHtml, warningsHtml } from "./html.ts";
import { CAPTIONS, renderSvg } from "./charts.ts";
import { ratioSpec, servedRatioSpec } from "./ratio-chart.ts";

export async function comparisonSection(c: Comparison): Promise<string> {
  const { warnings, noise, notes: extra } = notes(c);
  const parts = [
    `<h2 id="comparison">Comparison: run ${c.b.run_id} (B) against run ${c.a.run_id} (A)</h2>`,
    warningsHtml(warnings),
    noise ? listWarningHtml(noise.intro, noise.items, noise.causes) : "",
  ];
  if (c.cells.length > 0) {
    const served = servedRatioSpec(c);
    parts.push(
      `<div class="charts">${chartHtml("ratio", await renderSvg(ratioSpec(c)), CAPTIONS.ratio)}` +
        `${served ? chartHtml("ratio-served", await renderSvg(served), CAPTIONS.ratio) : ""}</div>`,
    );
  }
  const where = functionTables(c);
  for (const t of [primaryTable(c), ...cellTables(c), ...where.tables, outcomeTable(c)]) {
    parts.push(scrollHtml(tableHtml({ header: t.header, rows: t.rows, numeric: t.align.map((a) => a === "right") }, t.title)));
  }
  parts.push(notesHtml([...where.missing, methodLine(c), ...extra]));
  return parts.join("\n");
}
