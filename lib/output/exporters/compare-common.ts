// What every rendering of a comparison shows, as plain strings: the sides,
// the primary verdicts per cell, each cell's every metric, the outcomes,
// and the notes.
// compare-table.ts and compare-markdown.ts lay them out.
import type { Align } from "../table.ts";
import type { CellComparison, Comparison, SideInfo } from "../../stats/comparison.ts";
import { describeDifferences } from "../../stats/fingerprint.ts";
import { fmtPercent, type MetricComparison } from "../../stats/verdict.ts";
import { COMPARED_METRICS, DERIVED_METRICS, INSTRUCTION_METRICS, PRIMARY_METRICS, isCorrected } from "../../stats/metrics.ts";
import { cellName } from "../../stats/cells.ts";

export interface TextTable {
  title: string;
  header: string[];
  rows: string[][];
  align: Align[];
}

export function fmtNum(v: number | null, digits: number): string {
  return v === null ? "-" : v.toFixed(digits);
}

export function fmtRatio(v: number | null): string {
  return v === null ? "-" : v.toFixed(3);
}

export function fmtInterval(ci: [number, number] | null): string {
  return ci === null ? "-" : `[${ci[0].toFixed(3)}, ${ci[1].toFixed(3)}]`;
}

export function fmtP(p: number | null): string {
  if (p === null) return "-";
  return p < 0.001 ? "<0.001" : p.toFixed(3);
}

/** "+1.2 %" / "-3.4 %" for a ratio. */
export function fmtChange(ratio: number | null): string {
  if (ratio === null) return "-";
  const pct = (ratio - 1) * 100;
  return `${pct >= 0 ? "+" : ""}${pct.toFixed(1)} %`;
}

export function sideLine(name: string, s: SideInfo): string {
  const parts = [
    s.run_id === null ? null : `run ${s.run_id}`,
    `PicoShare ${s.picoshare_version ?? "unknown"}`,
    s.picoshare_sha256 ? `sha256 ${s.picoshare_sha256.slice(0, 12)}` : null,
    s.picoshare_path ?? null,
  ].filter(Boolean);
  return `${name}${s.label && s.label !== name ? ` (${s.label})` : ""}: ${parts.join(", ")}`;
}

function scaled(v: number | null, key: string, digits?: number): string {
  const m = COMPARED_METRICS.find((x) => x.key === key) ?? DERIVED_METRICS.find((x) => x.key === key);
  if (v === null || !m) return fmtNum(v, digits ?? 2);
  return fmtNum(v / m.scale, digits ?? m.digits);
}

function unitOf(unit: string): string {
  return unit === "" ? "" : ` (${unit})`;
}

/** "4.0 %", "= resolution 0.01 %", "-" */
function fmtMde(m: MetricComparison): string {
  if (m.verdict === "too_few") return "-";
  if (m.mde === null) return "> 10x";
  return m.mde_floor ? `${fmtPercent(m.mde)} (resolution)` : fmtPercent(m.mde);
}

/** The p-value, and the Holm-adjusted one where it differs. */
function fmtPs(m: MetricComparison): string {
  if (m.p_value === null) return "-";
  return m.p_adjusted !== null && isCorrected(m.family) ? `${fmtP(m.p_value)} (${fmtP(m.p_adjusted)})` : fmtP(m.p_value);
}

const METRIC_ALIGN: Align[] = ["left", "left", "right", "right", "right", "right", "left", "right", "right", "left"];
const METRIC_HEADER = ["Metric", "Family", "Runs A/B", "Median A", "Median B", "B/A", "95 % CI", "p (Holm)", "MDE", "Verdict"];

/** "node-1" (or "node-1, node-2"), "-" for a side with no result there. */
export function hostsText(hosts: string[] | undefined): string {
  return hosts && hosts.length > 0 ? hosts.join(", ") : "-";
}

/** Whether the comparison names hosts (a side measured on several: a merged run): its tables then say where each cell side ran. */
export function namesHosts(c: Comparison): boolean {
  return c.cells.some((cell) => cell.a.hosts || cell.b.hosts);
}

/** Columns that name a row's cell: their heads, a row's values, their alignment. */
export interface CellColumns<T> {
  header: string[];
  of: (cell: T) => string[];
  align: Align[];
}

/**
 * The columns that name a cell in the per-cell tables: RAM, file, the uploads
 * at once when some cell ran several, and "Host A" / "Host B" only when the
 * comparison names hosts (a side measured on several: a merged run).
 */
function cellColumns(c: Comparison): CellColumns<CellComparison> {
  // The level only where some cell ran more than one upload at once: one-upload output stays as it was.
  const parallel = c.cells.some((cell) => (cell.concurrency ?? 1) > 1);
  const hosts = namesHosts(c);
  return {
    header: ["RAM (MB)", "File", ...(parallel ? ["At once"] : []), ...(hosts ? ["Host A", "Host B"] : [])],
    of: (cell) => [
      String(cell.ram_mb), cell.file_size, ...(parallel ? [String(cell.concurrency ?? 1)] : []),
      ...(hosts ? [hostsText(cell.a.hosts), hostsText(cell.b.hosts)] : []),
    ],
    align: ["right", "left", ...(parallel ? ["right" as const] : []), ...(hosts ? ["left" as const, "left" as const] : [])],
  };
}

/** One cell's every metric: changed ones first, then the rest, then the derived figures. */
export function cellTable(cell: CellComparison): TextTable {
  const rows = cell.metrics.map((m) => [
    `${m.metric}${unitOf(m.unit)}`,
    m.family ?? "-",
    `${m.n_a}/${m.n_b}`,
    scaled(m.median_a, m.key),
    scaled(m.median_b, m.key),
    fmtRatio(m.ratio),
    fmtInterval(m.ci95),
    fmtPs(m),
    fmtMde(m),
    m.label,
  ]);
  for (const d of cell.derived) {
    rows.push([`${d.metric}${unitOf(d.unit)}`, "derived", "", scaled(d.median_a, d.key), scaled(d.median_b, d.key), fmtRatio(d.ratio), "-", "-", "-", `from ${d.from}, not tested`]);
  }
  const where = cell.a.hosts || cell.b.hosts ? ` (A on ${hostsText(cell.a.hosts)}, B on ${hostsText(cell.b.hosts)})` : "";
  return { title: `${cellName(cell)}${where}: every metric, changed first`, header: METRIC_HEADER, rows, align: METRIC_ALIGN };
}

/**
 * One row per cell: the primary metrics' ratio and verdict, and the
 * instruction counts' where some cell counted them (--count-instructions).
 */
export function primaryTable(c: Comparison): TextTable {
  const named = cellColumns(c);
  const counted = INSTRUCTION_METRICS.filter((i) => c.cells.some((cell) => cell.metrics.some((m) => m.key === i.key && m.n_a + m.n_b > 0)));
  const shown = [...PRIMARY_METRICS, ...counted];
  return {
    title: counted.length > 0
      ? "Primary metrics and instruction counts: B/A and verdict (each family Holm-corrected per cell)"
      : "Primary metrics: B/A and verdict (Holm-corrected per cell)",
    header: [...named.header, "Runs A/B", ...shown.map((m) => m.name)],
    rows: c.cells.map((cell) => [
      ...named.of(cell),
      `${cell.throughput.n_a}/${cell.throughput.n_b}`,
      ...shown.map((p) => {
        const m = cell.metrics.find((x) => x.key === p.key)!;
        return m.ratio === null ? m.label : `${fmtRatio(m.ratio)} ${m.label}`;
      }),
    ]),
    align: [...named.align, "right", ...shown.map((): Align => "left")],
  };
}

/** Every cell's metric table, in the comparison's cell order. */
export function cellTables(c: Comparison): TextTable[] {
  return c.cells.map(cellTable);
}

function reasons(failures: Record<string, number>): string {
  return Object.entries(failures)
    .sort()
    .map(([k, n]) => `${k} x${n}`)
    .join(", ");
}

export function outcomeTable(c: Comparison): TextTable {
  const named = cellColumns(c);
  return {
    title: "Outcomes (A/B)",
    header: [...named.header, "Passed", "Failed", "OOM", "No result", "Failures A", "Failures B"],
    rows: c.cells.map((cell) => [
      ...named.of(cell),
      `${cell.a.passed}/${cell.b.passed}`,
      `${cell.a.failed}/${cell.b.failed}`,
      `${cell.a.oom}/${cell.b.oom}`,
      `${cell.a.harness_errors}/${cell.b.harness_errors}`,
      reasons(cell.a.failures) || "-",
      reasons(cell.b.failures) || "-",
    ]),
    align: [...named.align, "right", "right", "right", "right", "left", "left"],
  };
}

export function methodLine(c: Comparison): string {
  const m = c.method;
  return (
    `B/A is the ratio of the medians over successful runs; a metric changed ("faster", "more memory"...) only when ` +
    `${m.test} gives p < ${m.alpha} after correction and the ${m.interval} excludes 1. ` +
    `Primary metrics (${m.primary.join(", ")}), instruction counts (${m.instructions.join(", ")}): ${m.correction}; read a secondary change as a pointer, not a verdict. ` +
    `"No difference larger than X": X is the minimum detectable effect (MDE), ${m.mde}. ` +
    `${m.paired[0].toUpperCase()}${m.paired.slice(1)}. ` +
    `Fewer than ${m.runs_needed} runs per side: "too few samples" for the primary metrics.`
  );
}

/** Cells whose runs scatter above the CV threshold: one item per cell side, and the likely causes once. */
export interface NoiseNote {
  intro: string;
  items: string[];
  causes: string;
}

/** The candidate's name in notes: "B", or "B2" among several. */
function bName(c: Comparison): string {
  return c.b.label || "B";
}

/** The scatter warning of one or several comparisons with the same A: each item names its side, A's given once. */
export function noiseNote(cs: Comparison[]): NoiseNote | null {
  const items = [...new Set(cs.flatMap((c) => c.noise.map((n) => `${n.side === "a" ? "A" : bName(c)} ${cellName(n)}: ${n.description}`)))];
  if (items.length === 0) return null;
  return {
    intro: `runs scatter more than the ${(cs[0].method.cv_threshold * 100).toFixed(0)} % coefficient of variation allows (the verdicts there are less sensitive):`,
    items,
    causes: `Likely causes: ${[...new Set(cs.flatMap((c) => c.noise_causes))].join("; ")}.`,
  };
}

/** What a comparison warns of and notes beside its tables. */
export interface Notes {
  warnings: string[];
  noise: NoiseNote | null;
  notes: string[];
}

/** Warnings (environment differences) and notes, each a sentence; the scatter warning is noiseNote's. */
export function notes(c: Comparison): Notes {
  const b = bName(c);
  const warnings: string[] = [];
  if (c.fingerprint_differences.length > 0) {
    warnings.push(`the two sides ran in different environments: ${describeDifferences(c.fingerprint_differences)}`);
  }
  if ((c.probe_differences ?? []).length > 0) {
    warnings.push(
      `the host probed differently before A's tests than before ${b}'s (a change of the host, not of PicoShare, may explain a difference): ` +
        `${c.probe_differences.join("; ")}`,
    );
  }
  const out: string[] = [];
  if (c.a.picoshare_sha256 && c.a.picoshare_sha256 === c.b.picoshare_sha256) {
    out.push(`A and ${b} are the same PicoShare binary (same SHA-256): an A/A comparison, expected to show no difference.`);
  }
  for (const u of c.unmatched) out.push(`${cellName(u)} was only run by ${u.side === "a" ? "A" : b}: not compared.`);
  const tests = c.cells.reduce((n, cell) => n + cell.metrics.filter((m) => m.family === "secondary" && m.verdict !== "too_few").length, 0);
  if (tests >= 10) {
    out.push(
      `${tests} secondary tests at alpha ${c.method.alpha}: about ${(tests * c.method.alpha).toFixed(1)} of them are expected ` +
        `to show a difference by chance alone when nothing changed.`,
    );
  }
  const families = c.cells.filter((cell) => cell.metrics.some((m) => m.family === "primary" && m.verdict !== "too_few")).length;
  if (families >= 10) {
    out.push(
      `${families} cells, each a primary family at alpha ${c.method.alpha}: about ${(families * c.method.alpha).toFixed(1)} cell(s) ` +
        `may show a primary change by chance alone when nothing changed.`,
    );
  }
  return { warnings, noise: noiseNote([c]), notes: out };
}
