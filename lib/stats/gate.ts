// A CI gate on a comparison: thresholds per metric ("throughput<-5%",
// "picoshare_peak_rss>+10%") and on counts ("oom>0", "failures>0"). A metric
// threshold is breached in a cell when the verdict there is significant (the
// primary family's Holm correction included) and the ratio's point estimate
// lies beyond it; a count threshold when B has more than that many more OOM
// kills / failures than A over all cells. Where the runs could not have seen
// a change of the threshold's size (its MDE is larger), the gate says so:
// after the run from the runs' own spread, and before a live run from the
// spread a stored run showed in the same cell.
import { median } from "simple-statistics";
import { UsageError } from "../core/errors.ts";
import { COMPARED_METRICS, familyMetrics, isCorrected, type ComparedMetric } from "./metrics.ts";
import type { Comparison, SideInput } from "./comparison.ts";
import { cellKeyOf, cellName } from "./cells.ts";
import { RUNS_CANDIDATES, minimumDetectableEffect, runsForMde } from "./power.ts";
import { logRatios, pairByRound, roundsForMde } from "./paired.ts";
import { cvOf, fmtPercent } from "./verdict.ts";
import type { TestResult } from "../upload/result.ts";

export const GATE_COUNTS = ["oom", "failures"] as const;
type GateCount = (typeof GATE_COUNTS)[number];

export type Threshold =
  | { kind: "metric"; text: string; metric: string; op: "<" | ">"; /** relative change, e.g. -0.05 */ change: number }
  | { kind: "count"; text: string; count: GateCount; /** B may have this many more than A */ allowed: number };

export const GATE_HELP = `metrics: ${COMPARED_METRICS.map((m) => m.key).join(", ")}; counts: ${GATE_COUNTS.join(", ")}`;

const EXAMPLE = `--fail-on "throughput<-5%,picoshare_peak_rss>+10%,oom>0"`;

/** --fail-on's list, checked strictly: one UsageError naming the item and the form. */
export function parseThresholds(text: string): Threshold[] {
  const items = text.split(",").map((s) => s.trim());
  if (items.some((s) => s === "")) throw new UsageError(`--fail-on has an empty item in "${text}" (e.g. ${EXAMPLE})`);
  const seen = new Set<string>();
  return items.map((item) => {
    const t = parseThreshold(item);
    const key = t.kind === "metric" ? `${t.metric}${t.op}` : t.count;
    if (seen.has(key)) throw new UsageError(`--fail-on gives ${key} twice: give each threshold once (e.g. ${EXAMPLE})`);
    seen.add(key);
    return t;
  });
}

function parseThreshold(item: string): Threshold {
  const count = /^([a-z_]+)>([0-9]+)$/.exec(item);
  if (count && (GATE_COUNTS as readonly string[]).includes(count[1])) {
    return { kind: "count", text: item, count: count[1] as GateCount, allowed: Number(count[2]) };
  }
  const m = /^([a-z_]+)([<>])([+-][0-9]+(?:\.[0-9]+)?)%$/.exec(item);
  if (!m) {
    throw new UsageError(
      `--fail-on item "${item}" is not a threshold: write METRIC<-N% or METRIC>+N% (the sign is needed), or oom>N / failures>N (e.g. ${EXAMPLE})`,
    );
  }
  const [, metric, op, value] = m;
  if (!COMPARED_METRICS.some((c) => c.key === metric)) {
    throw new UsageError(`--fail-on item "${item}": unknown metric "${metric}" (${GATE_HELP})`);
  }
  const change = Number(value) / 100;
  // "<" guards against a drop, ">" against a rise: a threshold on the other side of no change is a typo.
  if ((op === "<" && change >= 0) || (op === ">" && change <= 0)) {
    throw new UsageError(`--fail-on item "${item}": ${op === "<" ? "a fall needs a negative change (e.g. <-5%)" : "a rise needs a positive change (e.g. >+10%)"}`);
  }
  if (change <= -1) throw new UsageError(`--fail-on item "${item}": a metric cannot fall by 100 % or more`);
  return { kind: "metric", text: item, metric, op: op as "<" | ">", change };
}

export interface Breach {
  /** The candidate, when several are compared with A. */
  build?: string;
  threshold: string;
  /** The cell's spelling; null for a count over all cells. */
  cell: string | null;
  /** What was seen: "ratio 1.92 (+92.0 %), Holm p 0.0006", "B 2 OOM kills, A 0". */
  seen: string;
}

export interface BlindSpot {
  build?: string;
  threshold: string;
  cell: string;
  /** The MDE there (null: none up to 10 x, or too few runs). */
  mde: number | null;
  /** Runs per side that would reach it with this spread; null when not even 128 would. */
  runs_needed: number | null;
  message: string;
}

export interface GateResult {
  thresholds: string[];
  breaches: Breach[];
  /** Thresholds the runs could not have seen breached, per cell. */
  blind: BlindSpot[];
}

/** The gate over a comparison; `sides` give the raw values for how many runs a blind threshold needs. */
export function evaluateGate(c: Comparison, thresholds: Threshold[], sides: { a: SideInput; b: SideInput }): GateResult {
  const breaches: Breach[] = [];
  const blind: BlindSpot[] = [];
  for (const t of thresholds) {
    if (t.kind === "count") {
      const total = (side: "a" | "b") => c.cells.reduce((n, cell) => n + (t.count === "oom" ? cell[side].oom : cell[side].failed + cell[side].harness_errors), 0);
      const [a, b] = [total("a"), total("b")];
      const what = t.count === "oom" ? "OOM kills" : "failures";
      if (b - a > t.allowed) breaches.push({ threshold: t.text, cell: null, seen: `B ${b} ${what}, A ${a}` });
      continue;
    }
    const spec = COMPARED_METRICS.find((m) => m.key === t.metric)!;
    for (const cell of c.cells) {
      const m = cell.metrics.find((x) => x.key === t.metric);
      if (!m) continue;
      const name = cellName(cell);
      const significant = m.verdict === "higher" || m.verdict === "lower";
      const beyond = m.ratio !== null && (t.op === "<" ? m.ratio < 1 + t.change : m.ratio > 1 + t.change);
      if (significant && beyond) {
        const p = m.p_adjusted === null ? "" : `, ${isCorrected(m.family) ? "Holm " : ""}p ${m.p_adjusted < 0.001 ? "< 0.001" : m.p_adjusted.toFixed(4)}`;
        breaches.push({ threshold: t.text, cell: name, seen: `${m.metric} ratio ${m.ratio!.toFixed(3)} (${signed(m.ratio! - 1)})${p}` });
      }
      if (m.mde === null || m.mde > Math.abs(t.change)) blind.push(blindSpot(t, spec, cell, m.mde, sides, m));
    }
  }
  return { thresholds: thresholds.map((t) => t.text), breaches, blind };
}

function blindSpot(
  t: Extract<Threshold, { kind: "metric" }>, spec: ComparedMetric, cell: Comparison["cells"][number], mde: number | null,
  sides: { a: SideInput; b: SideInput }, m: Comparison["cells"][number]["metrics"][number],
): BlindSpot {
  const key = cellKeyOf(cell);
  const ok = (side: SideInput) => side.results.filter((r) => r.success && cellKeyOf(r) === key);
  return blindMessage(t, spec, cellName(cell), mde, runsToSee(m, spec, ok(sides.a), ok(sides.b), Math.abs(t.change)), "they can see");
}

/**
 * The runs per side at which a metric's verdict would see a change of
 * `target` (0.05 = 5 %), projected from these passed results' spread as its
 * MDE was (paired: more rounds of the same log-ratios); null when none of
 * RUNS_CANDIDATES would, or the results cannot tell.
 */
export function runsToSee(
  m: Comparison["cells"][number]["metrics"][number], spec: ComparedMetric, ra: TestResult[], rb: TestResult[], target: number,
): number | null {
  const vals = (rs: TestResult[]) => rs.map(spec.value).filter((x): x is number => x !== null);
  const resolution = spec.resolution([...ra, ...rb]);
  const logs = m.analysis === "paired" ? logRatios(pairByRound(ra, rb, spec.value) ?? { a: [], b: [] }) : null;
  if (logs && logs.length >= 2 && m.median_a) return roundsForMde(logs, m.mde_alpha, target, { floor: resolution / m.median_a });
  if (m.median_a === null || m.median_b === null || ra.length < 2 || rb.length < 2) return null;
  return runsForMde(vals(ra), vals(rb), m.median_a, m.median_b, m.mde_alpha, target, { resolution });
}

/** A blind spot in the words of the gate's NOTE: what the runs cannot see, what they can (`can`: who sees it), and the runs a side that would. */
function blindMessage(
  t: Extract<Threshold, { kind: "metric" }>, spec: ComparedMetric, cell: string, mde: number | null, runs: number | null, can: string, from = "",
): BlindSpot {
  const need = runs === null ? `not even ${RUNS_CANDIDATES.at(-1)} runs a side would with this spread` : `need about ${runs} per side`;
  return {
    threshold: t.text, cell, mde, runs_needed: runs,
    message: `${cell}: these runs cannot see ${signed(t.change)} ${spec.name} (${can} ${mde === null ? "no change up to 10 x" : fmtPercent(mde)}${from}); ${need}`,
  };
}

/** The spread a planned cell is judged from before a live run: a stored run's passed, measured results in that cell. */
export interface CellHistory {
  /** The cell's spelling (cellName). */
  cell: string;
  run_id: number;
  results: TestResult[];
}

/**
 * Before a live run: the metric thresholds that `iterations` runs a side
 * could not see, per cell, judged from the spread the stored run of that
 * cell showed (its values stand for both sides, as the MDE resamples each
 * side's deviations from its median); a cell whose metric was not measured
 * there, or is 0 throughout, is left to the result.
 */
export function plannedBlindSpots(thresholds: Threshold[], history: CellHistory[], iterations: number, alpha: number): BlindSpot[] {
  const out: BlindSpot[] = [];
  for (const t of thresholds) {
    if (t.kind !== "metric") continue;
    const spec = COMPARED_METRICS.find((m) => m.key === t.metric)!;
    for (const h of history) {
      const vals = (m: ComparedMetric) => h.results.map(m.value).filter((x): x is number => x !== null);
      const v = vals(spec);
      const cv = cvOf(v);
      if (v.length < 2 || cv === null) continue;
      const med = median(v);
      // As compareFamily tests it: a metric of a corrected family at alpha over its family's metrics measured (Holm's first step), a secondary one at alpha.
      const at = isCorrected(spec.family) ? alpha / Math.max(1, familyMetrics(spec.family).filter((p) => vals(p).length > 0).length) : alpha;
      const resolution = spec.resolution(h.results);
      const m = minimumDetectableEffect(v, v, med, med, at, { resolution, runs: [iterations, iterations] });
      if (m === null || (m.mde !== null && m.mde <= Math.abs(t.change))) continue;
      const runs = runsForMde(v, v, med, med, at, Math.abs(t.change), { resolution });
      out.push(blindMessage(t, spec, h.cell, m.mde, runs, `${iterations} a side can see`, `, from the spread of run ${h.run_id} there: CV ${(cv * 100).toFixed(1)} %`));
    }
  }
  return out;
}

function signed(x: number): string {
  return `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)} %`;
}

/** Several candidates' gates as one, each breach and blind spot naming its build. */
export function mergeGates(gates: { build: string; gate: GateResult }[]): GateResult {
  return {
    thresholds: gates[0]?.gate.thresholds ?? [],
    breaches: gates.flatMap(({ build, gate }) => gate.breaches.map((b) => ({ build, ...b }))),
    blind: gates.flatMap(({ build, gate }) => gate.blind.map((s) => ({ build, ...s }))),
  };
}

/** The gate's lines for the top of the output: each breach first, then what the runs could not see. */
export function gateLines(g: GateResult): string[] {
  const by = (x: { build?: string }) => (x.build ? `${x.build} ` : "");
  const lines = g.breaches.map((b) => `BREACH ${by(b)}${b.threshold}${b.cell ? ` in ${b.cell}` : ""}: ${b.seen}`);
  if (g.breaches.length === 0) lines.push(`Gate passed: no breach of ${g.thresholds.join(", ")}`);
  for (const s of g.blind) lines.push(`NOTE ${by(s)}${s.threshold}: ${s.message}`);
  return lines;
}
