// One short answer per candidate of an N-way comparison, before its tables:
// the changes called (metric, cells, ratio range), how large a change the
// rest could have hidden (the largest MDE over the cells), and the runs that
// failed. The exporters word it (compare-nway.ts); --json keeps it as is.
import type { Comparison } from "./comparison.ts";
import { cellName, type CellSummary } from "./cells.ts";
import { COMPARED_METRICS, type MetricFamily } from "./metrics.ts";
import type { MetricComparison } from "./verdict.ts";

/** A change called in some cells: one direction of one metric. */
export interface AnswerChange {
  key: string;
  metric: string;
  family: MetricFamily;
  verdict: "higher" | "lower";
  /** The verdict's word ("slower", "more memory"). */
  label: string;
  better: boolean | null;
  /** The cells it was called in, cellName's spelling, in the comparison's order. */
  cells: string[];
  /** The cells the metric was measured in (either side had a value). */
  of: number;
  /** The smallest and largest ratio B/A over those cells. */
  ratio: [number, number];
}

/** A metric with no change called in any cell: the largest change it could have missed. */
export interface AnswerBound {
  key: string;
  metric: string;
  family: MetricFamily;
  /** The largest MDE over the cells where it was tested; null where some cell could not see up to 10 x. */
  mde: number | null;
  /** The cells it was tested in ("same" verdicts), and those with too few runs to tell. */
  cells: number;
  too_few: number;
}

/** Runs over the cells the build shares with A: passed, OOM-killed, any other failure (harness errors counted as failures). */
export interface AnswerOutcomes {
  passed: number;
  oom: number;
  failed: number;
}

export interface BuildAnswer {
  /** "B2" */
  build: string;
  /** The build as given and built (its picoshare_version: "list-reads-bytes (5226b34404fd)"). */
  version: string | null;
  changes: AnswerChange[];
  /** Each primary metric and each instruction count measured, where no change was called. */
  unchanged: AnswerBound[];
  /** Those metrics whose every measured cell had too few runs to tell. */
  too_few: string[];
  outcomes: { a: AnswerOutcomes; b: AnswerOutcomes };
}

/** A cell side's outcome counts as the outcomes table counts them. */
export function outcomeCounts(s: Pick<CellSummary, "passed" | "oom" | "failed" | "harness_errors">): AnswerOutcomes {
  return { passed: s.passed, oom: s.oom, failed: s.failed - s.oom + s.harness_errors };
}

function sum(xs: AnswerOutcomes[]): AnswerOutcomes {
  return xs.reduce((t, x) => ({ passed: t.passed + x.passed, oom: t.oom + x.oom, failed: t.failed + x.failed }), { passed: 0, oom: 0, failed: 0 });
}

/**
 * One build's answer. Changes: every metric called changed in some cell
 * (the secondary ones too, their family named: a pointer, not a verdict),
 * primary first. Bounds: the primary metrics and the instruction counts that
 * were measured and called changed nowhere.
 */
export function answerOf(c: Comparison): BuildAnswer {
  const changes: AnswerChange[] = [];
  const unchanged: AnswerBound[] = [];
  const tooFew: string[] = [];
  const order = (["primary", "instructions", "secondary"] as const).flatMap((f) => COMPARED_METRICS.filter((m) => m.family === f));
  for (const m of order) {
    const rows = c.cells.flatMap((cell) => {
      const r = cell.metrics.find((x) => x.key === m.key);
      return r && r.n_a + r.n_b > 0 ? [{ cell: cellName(cell), r }] : [];
    });
    if (rows.length === 0) continue;
    let called = false;
    for (const verdict of ["higher", "lower"] as const) {
      const hit = rows.filter((x) => x.r.verdict === verdict);
      if (hit.length === 0) continue;
      called = true;
      const ratios = hit.map((x) => x.r.ratio).filter((x): x is number => x !== null);
      changes.push({
        key: m.key, metric: m.name, family: m.family, verdict, label: hit[0].r.label, better: hit[0].r.better,
        cells: hit.map((x) => x.cell), of: rows.length, ratio: [Math.min(...ratios), Math.max(...ratios)],
      });
    }
    if (called || m.family === "secondary") continue;
    const same = rows.filter((x) => x.r.verdict === "same").map((x) => x.r);
    if (same.length === 0) {
      tooFew.push(m.name);
      continue;
    }
    unchanged.push({ key: m.key, metric: m.name, family: m.family, mde: largestMde(same), cells: same.length, too_few: rows.length - same.length });
  }
  return {
    build: c.b.label,
    version: c.b.picoshare_version,
    changes,
    unchanged,
    too_few: tooFew,
    outcomes: { a: sum(c.cells.map((x) => outcomeCounts(x.a))), b: sum(c.cells.map((x) => outcomeCounts(x.b))) },
  };
}

/** The largest MDE of the cells; null when one of them has none (no change up to 10 x was detectable there). */
export function largestMde(rs: MetricComparison[]): number | null {
  return rs.some((r) => r.mde === null) ? null : Math.max(...rs.map((r) => r.mde!));
}
