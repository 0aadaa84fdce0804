// Several builds against one baseline: per metric one table, a row per cell
// and a column per build with the ratio B/A and its verdict ("~" where none
// was called, as benchstat writes it), and a geomean row over the cells. As
// text, Markdown or JSON; each build's own comparison stays whole in the JSON.
// The notes are the two-way comparison's, per build where they differ.
import { nwayFunctionTables } from "./compare-functions.ts";
import type { CellComparison, Comparison } from "../../stats/comparison.ts";
import type { GateResult } from "../../stats/gate.ts";
import { cellName } from "../../stats/cells.ts";
import { COMPARED_METRICS, PRIMARY_METRICS } from "../../stats/metrics.ts";
import { formatTable, type Align } from "../table.ts";
import { fmtRatio, hostsText, methodLine, noiseNote, notes, sideLine, type CellColumns, type Notes, type TextTable } from "./compare-common.ts";
import { markdownTable, methodMarkdown, warningsMarkdown } from "./compare-markdown.ts";
import { notesText } from "./compare-table.ts";
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

/** The cells of the baseline that any build shares, in the first comparison's order, by their spelling. */
function sharedCells(cs: Comparison[]): string[] {
  return [...new Set(cs.flatMap((c) => c.cells.map(cellName)))];
}

function cellIn(c: Comparison, name: string): CellComparison | undefined {
  return c.cells.find((x) => cellName(x) === name);
}

/**
 * "Host A", "Host B1", "Host B2"... after the cell, present only when the
 * comparisons name hosts (some side measured on several: a merged run), as
 * the two-way tables show them.
 */
function hostColumns(cs: Comparison[]): CellColumns<string> {
  if (!cs.some((c) => c.cells.some((x) => x.a.hosts || x.b.hosts))) return { header: [], of: () => [], align: [] };
  return {
    header: ["Host A", ...cs.map((c) => `Host ${c.b.label}`)],
    of: (name) => [hostsText(cs.map((c) => cellIn(c, name)?.a.hosts).find((h) => h)), ...cs.map((c) => hostsText(cellIn(c, name)?.b.hosts))],
    align: ["left", ...cs.map((): Align => "left")],
  };
}

/**
 * The metric's table: cells of the baseline that any build shares, in the
 * first comparison's order, then the geomean. Shown: every primary metric,
 * each instruction count where some build counted it, and a secondary one
 * where some build changed it.
 */
export function metricTables(cs: Comparison[]): TextTable[] {
  const cells = sharedCells(cs);
  const hosts = hostColumns(cs);
  const tables: TextTable[] = [];
  for (const m of COMPARED_METRICS) {
    const of = (c: Comparison, name: string) => cellIn(c, name)?.metrics.find((x) => x.key === m.key) ?? null;
    const changed = cs.some((c) => c.cells.some((x) => x.metrics.some((y) => y.key === m.key && (y.verdict === "higher" || y.verdict === "lower"))));
    const counted = m.family === "instructions" && cs.some((c) => c.cells.some((x) => x.metrics.some((y) => y.key === m.key && y.n_a + y.n_b > 0)));
    if (!PRIMARY_METRICS.includes(m) && !counted && !changed) continue;
    const rows = cells.map((name) => {
      return [name, ...hosts.of(name), ...cs.map((c) => {
        const r = of(c, name);
        if (!r) return "-";
        return r.verdict === "higher" || r.verdict === "lower" ? `${fmtRatio(r.ratio)} ${r.label}` : r.verdict === "too_few" ? `${fmtRatio(r.ratio)} (too few)` : `${fmtRatio(r.ratio)} ~`;
      })];
    });
    rows.push(["geomean", ...hosts.header.map(() => ""), ...cs.map((c) => fmtRatio(geomean(cells.map((name) => of(c, name)?.ratio ?? null))))]);
    tables.push({
      title: `${m.name}${m.unit ? ` (${m.unit})` : ""}${m.family === "primary" ? "" : ` (${m.family})`}: ratio B/A per cell`,
      header: ["Cell", ...hosts.header, ...cs.map(buildName)],
      rows,
      align: ["left", ...hosts.align, ...cs.map(() => "right" as const)],
    });
  }
  return tables;
}

function outcomes(cs: Comparison[]): TextTable {
  const hosts = hostColumns(cs);
  return {
    title: "Outcomes: passed / OOM-killed / other failures (harness errors counted as failures)",
    header: ["Cell", ...hosts.header, "A", ...cs.map(buildName)],
    rows: sharedCells(cs).map((name) => {
      const count = (s: { passed: number; oom: number; failed: number; harness_errors: number }) => `${s.passed}/${s.oom}/${s.failed - s.oom + s.harness_errors}`;
      const a = cs.map((c) => cellIn(c, name)?.a).find((x) => x);
      return [name, ...hosts.of(name), a ? count(a) : "-", ...cs.map((c) => {
        const b = cellIn(c, name)?.b;
        return b ? count(b) : "-";
      })];
    }),
    align: ["left", ...hosts.align, "right", ...cs.map(() => "right" as const)],
  };
}

/**
 * Every build's notes as one set: a warning or note that every build gives
 * alike once, as it is, and so one that names its build ("only run by B2");
 * any other after the names of the builds that give it ("B2: ..."); the
 * scatter warning's items once each (each names its side).
 */
export function nwayNotes(cs: Comparison[]): Notes {
  const each = cs.map(notes);
  const merged = (pick: (n: Notes) => string[]) => {
    const builds = new Map<string, string[]>();
    each.forEach((n, i) => {
      for (const line of pick(n)) builds.set(line, [...(builds.get(line) ?? []), cs[i].b.label]);
    });
    const named = (line: string, by: string[]) => by.length === 1 && line.split(/\W+/).includes(by[0]);
    return [...builds].map(([line, by]) => (by.length === cs.length || named(line, by) ? line : `${by.join(", ")}: ${line}`));
  };
  return { warnings: merged((n) => n.warnings), noise: noiseNote(cs), notes: merged((n) => n.notes) };
}

const INTRO = "A ratio B/A per cell with the verdict's word where it is significant (the primary family and the instruction counts each Holm-corrected per build), ~ where no difference was called; geomean over the cells.";

export function nwayText(cs: Comparison[]): string {
  const block = (t: TextTable) => `${t.title}\n${formatTable(t.header, t.rows, t.align)}`;
  const out = [`PicoShare comparison: ${cs.length} builds against A`, sideLine("A", cs[0].a), ...cs.map((c) => sideLine(c.b.label, c.b)), "", INTRO, ""];
  const where = nwayFunctionTables(cs);
  for (const t of [...metricTables(cs), ...where.tables, outcomes(cs)]) out.push(block(t), "");
  if (where.missing.length > 0) out.push(...where.missing, "");
  out.push(methodLine(cs[0]), ...notesText(nwayNotes(cs)));
  return `${out.join("\n")}\n`;
}

export function nwayMarkdown(cs: Comparison[]): string {
  const n = nwayNotes(cs);
  const out = [`### PicoShare comparison: ${cs.length} builds against A`, "", `- ${sideLine("A", cs[0].a)}`, ...cs.map((c) => `- ${sideLine(c.b.label, c.b)}`), "", INTRO, ""];
  out.push(...warningsMarkdown(n));
  const where = nwayFunctionTables(cs);
  for (const t of [...metricTables(cs), ...where.tables, outcomes(cs)]) out.push(`**${t.title}**`, "", markdownTable(t), "");
  for (const line of where.missing) out.push(`- ${line}`, "");
  out.push(methodMarkdown(methodLine(cs[0]), n));
  return `${out.join("\n")}\n`;
}

/** Every build's comparison whole, and the geomean per metric. */
export function nwayJson(cs: Comparison[], gate: GateResult | null = null): string {
  const geomeans = Object.fromEntries(
    COMPARED_METRICS.map((m) => [m.key, cs.map((c) => geomean(c.cells.map((x) => x.metrics.find((y) => y.key === m.key)?.ratio ?? null)))]),
  );
  return `${JSON.stringify({ format: "picoshare-perf-comparison-n", version: COMPARISON_JSON_VERSION, ...(gate ? { gate } : {}), builds: cs.map((c) => c.b), geomeans, comparisons: cs }, null, 2)}\n`;
}
