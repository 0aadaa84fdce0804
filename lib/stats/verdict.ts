// Is B different from A? For the metrics of one cell: the ratio of the
// medians B / A with its bootstrap interval, a Mann-Whitney U test corrected
// over the metric's family (Holm), and a verdict that is only called when
// both agree; otherwise the smallest change the runs could have found. Too
// few runs give "too few samples", never a guess. A wall-clock metric of a
// live comparison's rounds is analysed paired instead (lib/stats/paired.ts).
import { mean, median, sampleStandardDeviation } from "simple-statistics";
import { DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrapRatioCI, mannWhitneyU, minAttainableP } from "./stats.ts";
import { minimumDetectableEffect } from "./power.ts";
import { logRatios, minAttainablePairedP, pairedMde, pairedRatio, wilcoxonSignedRank, type RoundPairs } from "./paired.ts";
import type { MetricFamily } from "./metrics.ts";

/** Fewest measured runs per side before any verdict is given. */
export const MIN_SAMPLES = 3;
/** Significance level of the rank test unless told otherwise. */
export const DEFAULT_ALPHA = 0.05;

/**
 * How the wall-clock metrics (declared `wallClock`) of a live comparison's
 * rounds are tested: "paired" (each round's log-ratio, Wilcoxon signed-rank,
 * bootstrap of the median log-ratio) or "unpaired" (as every other metric).
 * One method for every comparison, chosen from bench-detection's
 * measurements (docs/methodology.md); the other's MDE is still shown.
 */
export const WALL_CLOCK_ANALYSIS: "paired" | "unpaired" = "paired";

/**
 * What the verdict says about B against A: its values are higher, lower,
 * not significantly different, or there are too few runs to tell.
 */
export type VerdictKind = "higher" | "lower" | "same" | "too_few";

/** How a metric reads: which direction is better, and the words for "higher" and "lower". */
export interface MetricSpec {
  name: string;
  unit: string;
  higherIsBetter: boolean;
  /** Verdict words for B higher / B lower, e.g. "faster" / "slower". */
  higher: string;
  lower: string;
}

export const THROUGHPUT: MetricSpec = { name: "throughput", unit: "MiB/s", higherIsBetter: true, higher: "faster", lower: "slower" };
export const PEAK_MEMORY: MetricSpec = { name: "peak memory", unit: "MiB", higherIsBetter: false, higher: "more memory", lower: "less memory" };
export const DURATION: MetricSpec = { name: "duration", unit: "s", higherIsBetter: false, higher: "slower", lower: "faster" };

export const SAME_LABEL = "no significant difference";
export const TOO_FEW_LABEL = "too few samples";
export const NOT_MEASURED_LABEL = "not measured";

export interface VerdictOptions {
  alpha?: number;
  minSamples?: number;
  resamples?: number;
  seed?: number;
}

export interface MetricComparison {
  metric: string;
  /** The metric's key (COMPARED_METRICS), or its name for a metric compared on its own. */
  key: string;
  /** The family its verdict is corrected with; null for a metric compared on its own. */
  family: MetricFamily | null;
  unit: string;
  n_a: number;
  n_b: number;
  median_a: number | null;
  median_b: number | null;
  /**
   * median(B) / median(A); null when a side has no value or A's median is 0.
   * Paired: the rounds' ratio, exp(median of log(B / A)).
   */
  ratio: number | null;
  /** 95 % bootstrap percentile interval of the ratio; null below 2 values a side (paired: 2 rounds). */
  ci95: [number, number] | null;
  /** "paired": signed-rank over the rounds' log-ratios; "unpaired": Mann-Whitney U over the two sides. */
  analysis: "paired" | "unpaired";
  /** The rounds both sides measured, for a wall-clock metric of one live comparison's sides; null otherwise. */
  pairs: number | null;
  /** Where the sides were paired: the MDE of each analysis at the same alpha (`mde` is the one the verdict used); null otherwise. */
  mde_by_analysis: { paired: number | null; unpaired: number | null } | null;
  /** Each side's coefficient of variation (sd / mean); null below 2 values or a zero mean. */
  cv_a: number | null;
  cv_b: number | null;
  /** Two-sided p-value of the analysis' test (Mann-Whitney U or signed-rank); null when there are too few samples. */
  p_value: number | null;
  /** The p-value after Holm's correction over its family (the p-value itself for a family of one). */
  p_adjusted: number | null;
  test: "exact" | "normal" | null;
  /**
   * The minimum detectable effect: the smallest relative change (0.04 = 4 %)
   * the rank test finds in 80 % of repeats at `mde_alpha` with these runs and
   * their spread; null when too few runs, or none up to 10 x.
   */
  mde: number | null;
  /** true when the MDE is the measurement's resolution (the runs varied less). */
  mde_floor: boolean;
  /** The significance level the MDE is computed at: alpha / family size for the primary family (Holm's first step). */
  mde_alpha: number;
  verdict: VerdictKind;
  /** The verdict in the metric's words: "faster", "slower", "no difference larger than 4.0 %", "too few samples". */
  label: string;
  /** true when B is better than A, false when worse, null when no difference was called. */
  better: boolean | null;
  /** Why this verdict, in a sentence. */
  reason: string;
}

/** Fewest runs per side (equal sides) with which the rank test can reach p < alpha at all. */
export function runsNeeded(alpha: number, minSamples = MIN_SAMPLES): number {
  let n = minSamples;
  while (minAttainableP(n, n) >= alpha) n++;
  return n;
}

function fmtP(p: number): string {
  return p < 0.001 ? "p < 0.001" : `p = ${p.toFixed(3)}`;
}

/** "4.0 %", "0.35 %", "12 %": a relative change for a label. */
export function fmtPercent(x: number): string {
  const pct = x * 100;
  if (pct < 0.01) return "0.01 %";
  return `${pct >= 10 ? pct.toFixed(0) : pct >= 1 ? pct.toFixed(1) : pct.toFixed(2)} %`;
}

/** The coefficient of variation (sd / |mean|); null below 2 values or at a zero mean. */
export function cvOf(x: number[]): number | null {
  if (x.length < 2) return null;
  const m = mean(x);
  return m === 0 ? null : sampleStandardDeviation(x) / Math.abs(m);
}

/** One metric's samples, as given to compareFamily. */
export interface FamilyMember {
  a: number[];
  b: number[];
  spec: MetricSpec;
  key?: string;
  /** The smallest step of the measurement, in the samples' unit (the MDE's floor). */
  resolution?: number;
  /** A wall-clock metric of one live comparison's sides: its values by round (pairByRound). */
  pairs?: RoundPairs | null;
}

/**
 * Compares each member's measurements of B with A's, the members' verdicts
 * corrected together with Holm's step-down method (family: their family's
 * name; null for one metric on its own). A verdict is "higher" or "lower"
 * only when the Holm-adjusted Mann-Whitney U p-value is below alpha AND the
 * 95 % interval of the ratio of medians excludes 1 on the same side;
 * otherwise "same", labelled with the smallest change the runs could have
 * found. A member with `pairs` (WALL_CLOCK_ANALYSIS "paired") whose rounds
 * can reach alpha / family size is tested on its rounds instead: the
 * signed-rank test of the log-ratios, and the bootstrap interval of their
 * median as the ratio's; both must agree as above.
 * "too_few" when a side has fewer than minSamples runs, or so few
 * that the rank test could not reach alpha / family size whatever the data
 * (Holm's first step: then nothing in the family can be called).
 */
export function compareFamily(members: FamilyMember[], family: MetricFamily | null, opts: VerdictOptions = {}): MetricComparison[] {
  const alpha = opts.alpha ?? DEFAULT_ALPHA;
  const minSamples = opts.minSamples ?? MIN_SAMPLES;
  if (!(alpha > 0 && alpha < 1)) throw new Error(`alpha must be between 0 and 1, got ${alpha}`);
  const boot = { resamples: opts.resamples ?? DEFAULT_RESAMPLES, seed: opts.seed ?? DEFAULT_SEED };
  const measured = members.filter((m) => m.a.length > 0 && m.b.length > 0).length;
  const size = Math.max(1, measured);
  const stepAlpha = alpha / size;

  const rows = members.map(({ a, b, spec, key, resolution, pairs }) => {
    const medianA = a.length > 0 ? median(a) : null;
    const medianB = b.length > 0 ? median(b) : null;
    const unpairedPower = medianA !== null && medianB !== null
      ? minimumDetectableEffect(a, b, medianA, medianB, stepAlpha, { resolution, seed: boot.seed })
      : null;
    const logs = pairs ? logRatios(pairs) : null;
    const pairedPower = logs && logs.length > 0 && medianA
      ? pairedMde(logs, stepAlpha, { floor: (resolution ?? 0) / medianA, seed: boot.seed })
      : null;
    // Paired where the rounds can reach the metric's alpha at all (a design fact, never the data's outcome); else as every other metric.
    const paired = WALL_CLOCK_ANALYSIS === "paired" && logs !== null && logs.length >= minSamples && minAttainablePairedP(logs.length) < stepAlpha;
    const power = paired ? pairedPower : unpairedPower;
    const unpairedRatio = medianA !== null && medianB !== null && medianA !== 0 ? medianB / medianA : null;
    const { ratio, ci95 } = paired
      ? pairedRatio(logs!, boot)
      : { ratio: unpairedRatio, ci95: unpairedRatio === null ? null : bootstrapRatioCI(a, b, median, boot) };
    const base = {
      metric: spec.name, key: key ?? spec.name, family, unit: spec.unit, n_a: a.length, n_b: b.length,
      median_a: medianA, median_b: medianB, ratio, ci95, analysis: paired ? "paired" as const : "unpaired" as const, pairs: logs?.length ?? null,
      mde_by_analysis: logs === null ? null : { paired: pairedPower?.mde ?? null, unpaired: unpairedPower?.mde ?? null },
      cv_a: cvOf(a), cv_b: cvOf(b), mde: power?.mde ?? null, mde_floor: power?.floor ?? false, mde_alpha: stepAlpha,
    };
    let tooFew: string | null = null;
    if (a.length === 0 || b.length === 0) {
      tooFew = a.length + b.length === 0 ? "not measured by this backend" : `measured on one side only (${a.length} vs ${b.length} runs)`;
    } else if (a.length < minSamples || b.length < minSamples) {
      tooFew = `${a.length} vs ${b.length} measured runs: at least ${minSamples} per side are needed`;
    } else if (minAttainableP(a.length, b.length) >= stepAlpha) {
      tooFew =
        `with ${a.length} vs ${b.length} runs the rank test cannot reach p < ${+stepAlpha.toPrecision(3)}` +
        `${size > 1 ? ` (alpha ${alpha} over ${size} ${family} metrics)` : ""} whatever the data: run at least ${runsNeeded(stepAlpha, minSamples)} per side`;
    }
    const mw = tooFew === null ? testOf(a, b, paired ? logs : null) : null;
    return { spec, base, tooFew, mw };
  });

  // Holm: the k-th smallest p (0-based) times (size - k), never below the one before.
  const adjusted = new Map<number, number>();
  const tested = rows.map((r, i) => ({ i, p: r.mw?.p })).filter((x): x is { i: number; p: number } => x.p !== undefined);
  tested.sort((x, y) => x.p - y.p);
  let running = 0;
  tested.forEach(({ i, p }, k) => {
    running = Math.max(running, Math.min(1, (size - k) * p));
    adjusted.set(i, running);
  });

  return rows.map(({ spec, base, tooFew, mw }, i): MetricComparison => {
    if (tooFew !== null || mw === null) {
      const label = base.n_a + base.n_b === 0 ? NOT_MEASURED_LABEL : TOO_FEW_LABEL;
      return { ...base, p_value: null, p_adjusted: null, test: null, verdict: "too_few", label, better: null, reason: tooFew ?? "" };
    }
    const pAdj = adjusted.get(i)!;
    const pText = size > 1 ? `${fmtP(mw.p)}, ${fmtP(pAdj).replace("p", "Holm-adjusted p")}` : fmtP(mw.p);
    const tested = { ...base, p_value: mw.p, p_adjusted: pAdj, test: mw.method };
    const allZero = base.median_a === 0 && [...members[i].a, ...members[i].b].every((v) => v === 0);
    const sameLabel = allZero ? "no difference (0 in every run)" : base.mde === null ? SAME_LABEL : `no difference larger than ${fmtPercent(base.mde)}`;
    const same = (reason: string): MetricComparison => ({ ...tested, verdict: "same", label: sameLabel, better: null, reason });
    if (pAdj >= alpha) return same(`${pText} (${mw.name}) is not below ${alpha}`);
    const { ratio, ci95 } = base;
    if (ratio === null || ci95 === null) return same(`${pText} but the ratio of medians is undefined (median of A is 0)`);
    const bHigher = mw.bHigher;
    if (ci95[0] <= 1 && ci95[1] >= 1) {
      return same(`${pText} but the 95 % interval of the ratio [${ci95[0].toFixed(3)}, ${ci95[1].toFixed(3)}] includes 1`);
    }
    if (bHigher !== ci95[0] > 1) return same(`${pText} but the rank test and the ratio of medians point in opposite directions`);
    return {
      ...tested,
      verdict: bHigher ? "higher" : "lower",
      label: bHigher ? spec.higher : spec.lower,
      better: bHigher === spec.higherIsBetter,
      reason: `${pText} < ${alpha} (${mw.name}) and the 95 % interval of the ratio excludes 1`,
    };
  });
}

/** The test of one metric: Mann-Whitney U over the sides, or the signed-rank test over the rounds' log-ratios (`logs`). */
function testOf(a: number[], b: number[], logs: number[] | null): { p: number; method: "exact" | "normal"; bHigher: boolean; name: string } {
  if (logs !== null) {
    const w = wilcoxonSignedRank(logs);
    return { p: w.p, method: w.method, bHigher: w.wPlus > w.wMinus, name: `Wilcoxon signed-rank over ${logs.length} rounds` };
  }
  const mw = mannWhitneyU(a, b);
  return { p: mw.p, method: mw.method, bHigher: mw.uB > mw.uA, name: "Mann-Whitney U" };
}

/** One metric compared on its own (a family of one: no correction). */
export function compareSamples(a: number[], b: number[], spec: MetricSpec, opts: VerdictOptions & { resolution?: number } = {}): MetricComparison {
  return compareFamily([{ a, b, spec, resolution: opts.resolution }], null, opts)[0];
}
