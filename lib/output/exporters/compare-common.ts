// What every rendering of a comparison shows, as plain strings: the sides,
// the rows of the throughput, peak-memory and outcome tables, and the notes.
// compare-table.ts and compare-markdown.ts lay them out.
import type { Align } from "../table.ts";
import type { CellComparison, Comparison, SideInfo } from "../../stats/comparison.ts";
import { describeDifferences } from "../../stats/fingerprint.ts";
import { MiB } from "../../core/sizes.ts";
import type { MetricComparison } from "../../stats/verdict.ts";

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

function metricRow(c: CellComparison, m: MetricComparison, scale: number, digits: number): string[] {
  return [
    String(c.ram_mb),
    c.file_size,
    `${m.n_a}/${m.n_b}`,
    fmtNum(m.median_a === null ? null : m.median_a / scale, digits),
    fmtNum(m.median_b === null ? null : m.median_b / scale, digits),
    fmtRatio(m.ratio),
    fmtInterval(m.ci95),
    fmtP(m.p_value),
    m.label,
  ];
}

const METRIC_ALIGN: Align[] = ["right", "left", "right", "right", "right", "right", "left", "right", "left"];

export function throughputTable(c: Comparison): TextTable {
  return {
    title: "Throughput (MiB/s, higher is better)",
    header: ["RAM (MB)", "File", "Runs A/B", "Median A", "Median B", "B/A", "95 % CI", "p", "Verdict"],
    rows: c.cells.map((cell) => metricRow(cell, cell.throughput, 1, 2)),
    align: METRIC_ALIGN,
  };
}

export function memoryTable(c: Comparison): TextTable {
  return {
    title: "Peak memory (MiB, lower is better)",
    header: ["RAM (MB)", "File", "Runs A/B", "Median A", "Median B", "B/A", "95 % CI", "p", "Verdict"],
    rows: c.cells.map((cell) => metricRow(cell, cell.peak_memory, MiB, 1)),
    align: METRIC_ALIGN,
  };
}

function reasons(failures: Record<string, number>): string {
  return Object.entries(failures)
    .sort()
    .map(([k, n]) => `${k} x${n}`)
    .join(", ");
}

export function outcomeTable(c: Comparison): TextTable {
  return {
    title: "Outcomes (A/B)",
    header: ["RAM (MB)", "File", "Passed", "Failed", "OOM", "No result", "Failures A", "Failures B"],
    rows: c.cells.map((cell) => [
      String(cell.ram_mb),
      cell.file_size,
      `${cell.a.passed}/${cell.b.passed}`,
      `${cell.a.failed}/${cell.b.failed}`,
      `${cell.a.oom}/${cell.b.oom}`,
      `${cell.a.harness_errors}/${cell.b.harness_errors}`,
      reasons(cell.a.failures) || "-",
      reasons(cell.b.failures) || "-",
    ]),
    align: ["right", "left", "right", "right", "right", "right", "left", "left"],
  };
}

export function methodLine(c: Comparison): string {
  const m = c.method;
  return (
    `B/A is the ratio of the medians over successful runs; verdict "faster"/"slower" (or "less"/"more memory") only when ` +
    `${m.test} gives p < ${m.alpha} and the ${m.interval} excludes 1; ` +
    `fewer than ${m.runs_needed} runs per side: "too few samples".`
  );
}

/** Cells whose runs scatter above the CV threshold: one item per cell side, and the likely causes once. */
export interface NoiseNote {
  intro: string;
  items: string[];
  causes: string;
}

export function noiseNote(c: Comparison): NoiseNote | null {
  if (c.noise.length === 0) return null;
  return {
    intro: `runs scatter more than the ${(c.method.cv_threshold * 100).toFixed(0)} % coefficient of variation allows (the verdicts there are less sensitive):`,
    items: c.noise.map((n) => `${n.side.toUpperCase()} ${n.ram_mb}MB ${n.file_size}: ${n.description}`),
    causes: `Likely causes: ${c.noise_causes.join("; ")}.`,
  };
}

/** Warnings (environment differences) and notes, each a sentence; the scatter warning is noiseNote's. */
export function notes(c: Comparison): { warnings: string[]; noise: NoiseNote | null; notes: string[] } {
  const warnings: string[] = [];
  if (c.fingerprint_differences.length > 0) {
    warnings.push(`the two sides ran in different environments: ${describeDifferences(c.fingerprint_differences)}`);
  }
  const out: string[] = [];
  if (c.a.picoshare_sha256 && c.a.picoshare_sha256 === c.b.picoshare_sha256) {
    out.push("A and B are the same PicoShare binary (same SHA-256): an A/A comparison, expected to show no difference.");
  }
  for (const u of c.unmatched) out.push(`${u.ram_mb}MB ${u.file_size} was only run by ${u.side.toUpperCase()}: not compared.`);
  const tests = c.cells.reduce(
    (n, cell) => n + [cell.throughput, cell.peak_memory].filter((m) => m.verdict !== "too_few").length,
    0,
  );
  if (tests >= 10) {
    out.push(
      `${tests} tests at alpha ${c.method.alpha}: about ${(tests * c.method.alpha).toFixed(1)} of them are expected ` +
        `to show a difference by chance alone when nothing changed.`,
    );
  }
  return { warnings, noise: noiseNote(c), notes: out };
}
