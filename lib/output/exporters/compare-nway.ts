// Several builds against one baseline: first one short answer per build
// (lib/stats/answers.ts), then per metric one table, a row per cell and a
// column per build with the ratio B/A and its verdict ("~ <4.0 %" where none
// was called: the change the runs could have missed), and a geomean row over
// the cells. As text, Markdown or JSON; each build's own comparison stays
// whole in the JSON. The notes are the two-way comparison's, per build where they differ.
import { nwayFunctionTables } from "./compare-functions.ts";
import type { CellComparison, Comparison, SideInfo } from "../../stats/comparison.ts";
import { answerOf, outcomeCounts, type AnswerOutcomes, type BuildAnswer } from "../../stats/answers.ts";
import { fmtPercent, type MetricComparison } from "../../stats/verdict.ts";
import type { GateResult } from "../../stats/gate.ts";
import { cellName } from "../../stats/cells.ts";
import { COMPARED_METRICS, PRIMARY_METRICS } from "../../stats/metrics.ts";
import { formatTable, type Align } from "../table.ts";
import { fmtRatio, hostsText, methodLine, namesHosts, noiseNote, notes, sideLine, type CellColumns, type Notes, type TextTable } from "./compare-common.ts";
import { markdownTable, methodMarkdown, warningsMarkdown } from "./compare-markdown.ts";
import { notesText } from "./compare-table.ts";
import { COMPARISON_JSON_VERSION } from "./compare-json.ts";

/** One build's name in column heads and answers: its label and version. */
function buildName(b: Pick<SideInfo, "label" | "picoshare_version">): string {
  return `${b.label} ${b.picoshare_version ?? ""}`.trim();
}

/**
 * A metric's cell: the ratio and the verdict's word where a change was
 * called; "~ <4.0 %" where none was (no change larger than the MDE: "the
 * same" as far as these runs can see), "(too few)" where the runs could not tell.
 */
export function nwayCell(r: MetricComparison | null): string {
  if (!r) return "-";
  if (r.verdict === "higher" || r.verdict === "lower") return `${fmtRatio(r.ratio)} ${r.label}`;
  if (r.verdict === "too_few") return `${fmtRatio(r.ratio)} (too few)`;
  return `${fmtRatio(r.ratio)} ~ ${r.mde === null ? "MDE >10x" : `<${fmtPercent(r.mde)}`}`;
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
  if (!cs.some(namesHosts)) return { header: [], of: () => [], align: [] };
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
      return [name, ...hosts.of(name), ...cs.map((c) => nwayCell(of(c, name)))];
    });
    rows.push(["geomean", ...hosts.header.map(() => ""), ...cs.map((c) => fmtRatio(geomean(cells.map((name) => of(c, name)?.ratio ?? null))))]);
    tables.push({
      title: `${m.name}${m.unit ? ` (${m.unit})` : ""}${m.family === "primary" ? "" : ` (${m.family})`}: ratio B/A per cell`,
      header: ["Cell", ...hosts.header, ...cs.map((c) => buildName(c.b))],
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
    header: ["Cell", ...hosts.header, "A", ...cs.map((c) => buildName(c.b))],
    rows: sharedCells(cs).map((name) => {
      const count = (s: CellComparison["a"]) => {
        const o = outcomeCounts(s);
        return `${o.passed}/${o.oom}/${o.failed}`;
      };
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

const INTRO =
  "A ratio B/A per cell with the verdict's word where it is significant (the primary family and the instruction counts each Holm-corrected per build); " +
  "~ <X where no difference was called, X the smallest change these runs could have found there (MDE); (too few) where the runs could not tell; geomean over the cells.";

const ANSWERS = "Answers: per build the changes called (cells, ratio B/A), the largest change the rest could have missed (the largest MDE over the cells), and the failed runs.";

function ratioRange([lo, hi]: [number, number]): string {
  return fmtRatio(lo) === fmtRatio(hi) ? fmtRatio(lo) : `${fmtRatio(lo)}-${fmtRatio(hi)}`;
}

function runsText(o: { a: AnswerOutcomes; b: AnswerOutcomes }): string {
  return `runs: ${o.b.passed} passed, ${o.b.oom} OOM-killed, ${o.b.failed} other failures (A: ${o.a.passed}, ${o.a.oom}, ${o.a.failed})`;
}

/**
 * One build's answer as a line: "B2 list-reads-bytes (5226b34404fd): list page slower in 2 of 2
 * cells (256MB/100M, 256MB/500M; B/A 64.000-422.000; secondary); no change larger than 4.0 % on
 * throughput, ...; runs: 16 passed, 0 OOM-killed, 0 other failures (A: 16, 0, 0)".
 */
export function answerText(a: BuildAnswer): string {
  const parts = a.changes.map((c) =>
    `${c.metric} ${c.label} in ${c.cells.length} of ${c.of} cell${c.of > 1 ? "s" : ""} (${c.cells.join(", ")}; B/A ${ratioRange(c.ratio)}${c.family === "secondary" ? "; secondary" : ""})`);
  const bounded = a.unchanged.filter((u) => u.mde !== null);
  const fewNote = (n: number) => (n > 0 ? ` (${n} cell${n > 1 ? "s" : ""} too few)` : "");
  if (bounded.length > 0) parts.push(`no change larger than ${bounded.map((u) => `${fmtPercent(u.mde!)} on ${u.metric}${fewNote(u.too_few)}`).join(", ")}`);
  const blind = a.unchanged.filter((u) => u.mde === null);
  if (blind.length > 0) parts.push(`no change called on ${blind.map((u) => u.metric).join(", ")}, where some cell could not see one up to 10x`);
  if (a.too_few.length > 0) parts.push(`too few runs to tell on ${a.too_few.join(", ")}`);
  parts.push(runsText(a.outcomes));
  return `${buildName({ label: a.build, picoshare_version: a.version })}: ${parts.join("; ")}`;
}

export function nwayText(cs: Comparison[]): string {
  const block = (t: TextTable) => `${t.title}\n${formatTable(t.header, t.rows, t.align)}`;
  const out = [`PicoShare comparison: ${cs.length} builds against A`, sideLine("A", cs[0].a), ...cs.map((c) => sideLine(c.b.label, c.b)), ""];
  out.push(ANSWERS, ...cs.map((c) => `  ${answerText(answerOf(c))}`), "", INTRO, "");
  const where = nwayFunctionTables(cs);
  for (const t of [...metricTables(cs), ...where.tables, outcomes(cs)]) out.push(block(t), "");
  if (where.missing.length > 0) out.push(...where.missing, "");
  out.push(methodLine(cs[0]), ...notesText(nwayNotes(cs)));
  return `${out.join("\n")}\n`;
}

export function nwayMarkdown(cs: Comparison[]): string {
  const n = nwayNotes(cs);
  const out = [`### PicoShare comparison: ${cs.length} builds against A`, "", `- ${sideLine("A", cs[0].a)}`, ...cs.map((c) => `- ${sideLine(c.b.label, c.b)}`), ""];
  out.push(ANSWERS, "", ...cs.map((c) => `- ${answerText(answerOf(c))}`), "");
  out.push(...warningsMarkdown(n), INTRO, "");
  const where = nwayFunctionTables(cs);
  for (const t of [...metricTables(cs), ...where.tables, outcomes(cs)]) out.push(`**${t.title}**`, "", markdownTable(t), "");
  for (const line of where.missing) out.push(`- ${line}`, "");
  out.push(methodMarkdown(methodLine(cs[0]), n));
  return `${out.join("\n")}\n`;
}

/** Every build's answer (its words in `text`), every build's comparison whole, and the geomean per metric. */
export function nwayJson(cs: Comparison[], gate: GateResult | null = null): string {
  const answers = cs.map((c) => {
    const a = answerOf(c);
    return { ...a, text: answerText(a) };
  });
  const geomeans = Object.fromEntries(
    COMPARED_METRICS.map((m) => [m.key, cs.map((c) => geomean(c.cells.map((x) => x.metrics.find((y) => y.key === m.key)?.ratio ?? null)))]),
  );
  return `${JSON.stringify({ format: "picoshare-perf-comparison-n", version: COMPARISON_JSON_VERSION, ...(gate ? { gate } : {}), builds: cs.map((c) => c.b), answers, geomeans, comparisons: cs }, null, 2)}\n`;
}
