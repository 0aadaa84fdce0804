// Several builds against one baseline: per metric one table, a row per cell
// and a column per build with the ratio B/A and its verdict ("~" where none
// was called, as benchstat writes it), and a geomean row over the cells. As
// text, Markdown or JSON; each build's own comparison stays whole in the JSON.
import type { Comparison } from "../../stats/comparison.ts";
import type { GateResult } from "../../stats/gate.ts";
import { cellName } from "../../stats/cells.ts";
import { COMPARED_METRICS, PRIMARY_METRICS } from "../../stats/metrics.ts";
import { formatTable } from "../table.ts";
import { fmtRatio, methodLine, sideLine, type TextTable } from "./compare-common.ts";
import { markdownTable } from "./compare-markdown.ts";
import { COMPARISON_JSON_VERSION } from "./compare-json.ts";

/** One build's column head: its label and version. */
function buildName(c: Comparison): string {
  return `${c.b.label} ${c.b.picoshare_version ?? ""}`.trim();
}

/** Geometric mean of the ratios that exist; null without any. */
export function geomean(ratios: (number | null)[]): number | null {
  const r = ratios.filter((x): x is number => x !== null && x > 0);
  return r.length === 0 ? null : Math.exp(r.reduce((s, x) => s + Math.log(x), 0) / r.length);
}

/**
 * The metric's table: cells of the baseline that any build shares, in the
 * first comparison's order, then the geomean. Shown: every primary metric,
 * and a secondary one where some build changed it.
 */
export function metricTables(cs: Comparison[]): TextTable[] {
  const cells = [...new Map(cs.flatMap((c) => c.cells.map((x) => [cellName(x), x] as const))).values()];
  const tables: TextTable[] = [];
  for (const m of COMPARED_METRICS) {
    const of = (c: Comparison, name: string) => c.cells.find((x) => cellName(x) === name)?.metrics.find((x) => x.key === m.key) ?? null;
    const changed = cs.some((c) => c.cells.some((x) => x.metrics.some((y) => y.key === m.key && (y.verdict === "higher" || y.verdict === "lower"))));
    if (!PRIMARY_METRICS.includes(m) && !changed) continue;
    const rows = cells.map((cell) => {
      const name = cellName(cell);
      return [name, ...cs.map((c) => {
        const r = of(c, name);
        if (!r) return "-";
        return r.verdict === "higher" || r.verdict === "lower" ? `${fmtRatio(r.ratio)} ${r.label}` : r.verdict === "too_few" ? `${fmtRatio(r.ratio)} (too few)` : `${fmtRatio(r.ratio)} ~`;
      })];
    });
    rows.push(["geomean", ...cs.map((c) => fmtRatio(geomean(cells.map((cell) => of(c, cellName(cell))?.ratio ?? null))))]);
    tables.push({
      title: `${m.name}${m.unit ? ` (${m.unit})` : ""}${m.family === "primary" ? "" : " (secondary)"}: ratio B/A per cell`,
      header: ["Cell", ...cs.map(buildName)],
      rows,
      align: ["left", ...cs.map(() => "right" as const)],
    });
  }
  return tables;
}

function outcomes(cs: Comparison[]): TextTable {
  const cells = [...new Map(cs.flatMap((c) => c.cells.map((x) => [cellName(x), x] as const))).values()];
  return {
    title: "Outcomes: passed / OOM-killed / other failures (harness errors counted as failures)",
    header: ["Cell", "A", ...cs.map(buildName)],
    rows: cells.map((cell) => {
      const name = cellName(cell);
      const count = (s: { passed: number; oom: number; failed: number; harness_errors: number }) => `${s.passed}/${s.oom}/${s.failed - s.oom + s.harness_errors}`;
      const a = cs.map((c) => c.cells.find((x) => cellName(x) === name)?.a).find((x) => x);
      return [name, a ? count(a) : "-", ...cs.map((c) => {
        const b = c.cells.find((x) => cellName(x) === name)?.b;
        return b ? count(b) : "-";
      })];
    }),
    align: ["left", "right", ...cs.map(() => "right" as const)],
  };
}

const INTRO = "A ratio B/A per cell with the verdict's word where it is significant (the primary family Holm-corrected per build), ~ where no difference was called; geomean over the cells.";

export function nwayText(cs: Comparison[]): string {
  const block = (t: TextTable) => `${t.title}\n${formatTable(t.header, t.rows, t.align)}`;
  const out = [`PicoShare comparison: ${cs.length} builds against A`, sideLine("A", cs[0].a), ...cs.map((c) => sideLine(c.b.label, c.b)), "", INTRO, ""];
  for (const t of [...metricTables(cs), outcomes(cs)]) out.push(block(t), "");
  out.push(methodLine(cs[0]));
  return `${out.join("\n")}\n`;
}

export function nwayMarkdown(cs: Comparison[]): string {
  const out = [`### PicoShare comparison: ${cs.length} builds against A`, "", `- ${sideLine("A", cs[0].a)}`, ...cs.map((c) => `- ${sideLine(c.b.label, c.b)}`), "", INTRO, ""];
  for (const t of [...metricTables(cs), outcomes(cs)]) out.push(`**${t.title}**`, "", markdownTable(t), "");
  out.push(`<sub>${methodLine(cs[0])}</sub>`);
  return `${out.join("\n")}\n`;
}

/** Every build's comparison whole, and the geomean per metric. */
export function nwayJson(cs: Comparison[], gate: GateResult | null = null): string {
  const geomeans = Object.fromEntries(
    COMPARED_METRICS.map((m) => [m.key, cs.map((c) => geomean(c.cells.map((x) => x.metrics.find((y) => y.key === m.key)?.ratio ?? null)))]),
  );
  return `${JSON.stringify({ format: "picoshare-perf-comparison-n", version: COMPARISON_JSON_VERSION, ...(gate ? { gate } : {}), builds: cs.map((c) => c.b), geomeans, comparisons: cs }, null, 2)}\n`;
}
