// Is B different from A? For one metric of one cell: the ratio of the
// medians B / A with its bootstrap interval, a Mann-Whitney U test, and a
// verdict that is only called when both agree. Too few runs give "too few
// samples", never a guess.
import { median } from "simple-statistics";
import { DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrapRatioCI, mannWhitneyU, minAttainableP } from "./stats.ts";

/** Fewest measured runs per side before any verdict is given. */
export const MIN_SAMPLES = 3;
/** Significance level of the rank test unless told otherwise. */
export const DEFAULT_ALPHA = 0.05;

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

export interface VerdictOptions {
  alpha?: number;
  minSamples?: number;
  resamples?: number;
  seed?: number;
}

export interface MetricComparison {
  metric: string;
  unit: string;
  n_a: number;
  n_b: number;
  median_a: number | null;
  median_b: number | null;
  /** median(B) / median(A); null when a side has no value or A's median is 0. */
  ratio: number | null;
  /** 95 % bootstrap percentile interval of the ratio; null below 2 values a side. */
  ci95: [number, number] | null;
  /** Two-sided Mann-Whitney U p-value; null when there are too few samples. */
  p_value: number | null;
  test: "exact" | "normal" | null;
  verdict: VerdictKind;
  /** The verdict in the metric's words: "faster", "slower", "no significant difference", "too few samples". */
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

/**
 * Compares one metric's measurements of B with A's. The verdict is "higher"
 * or "lower" only when the Mann-Whitney U test is significant at alpha AND
 * the 95 % interval of the ratio of medians excludes 1 on the same side;
 * otherwise "same". "too_few" when a side has fewer than minSamples runs, or
 * so few that the rank test could not reach alpha whatever the data.
 */
export function compareSamples(a: number[], b: number[], spec: MetricSpec, opts: VerdictOptions = {}): MetricComparison {
  const alpha = opts.alpha ?? DEFAULT_ALPHA;
  const minSamples = opts.minSamples ?? MIN_SAMPLES;
  if (!(alpha > 0 && alpha < 1)) throw new Error(`alpha must be between 0 and 1, got ${alpha}`);
  const boot = { resamples: opts.resamples ?? DEFAULT_RESAMPLES, seed: opts.seed ?? DEFAULT_SEED };
  const medianA = a.length > 0 ? median(a) : null;
  const medianB = b.length > 0 ? median(b) : null;
  const ratio = medianA !== null && medianB !== null && medianA !== 0 ? medianB / medianA : null;
  const ci95 = ratio === null ? null : bootstrapRatioCI(a, b, median, boot);
  const base = {
    metric: spec.name, unit: spec.unit, n_a: a.length, n_b: b.length,
    median_a: medianA, median_b: medianB, ratio, ci95,
  };
  const tooFew = (reason: string): MetricComparison => ({
    ...base, p_value: null, test: null, verdict: "too_few", label: TOO_FEW_LABEL, better: null, reason,
  });

  if (a.length < minSamples || b.length < minSamples) {
    return tooFew(`${a.length} vs ${b.length} measured runs: at least ${minSamples} per side are needed`);
  }
  if (minAttainableP(a.length, b.length) >= alpha) {
    return tooFew(
      `with ${a.length} vs ${b.length} runs the rank test cannot reach p < ${alpha} whatever the data: ` +
        `run at least ${runsNeeded(alpha, minSamples)} per side`,
    );
  }

  const mw = mannWhitneyU(a, b);
  const tested = { ...base, p_value: mw.p, test: mw.method };
  const same = (reason: string): MetricComparison => ({ ...tested, verdict: "same", label: SAME_LABEL, better: null, reason });
  if (mw.p >= alpha) return same(`${fmtP(mw.p)} (Mann-Whitney U) is not below ${alpha}`);
  if (ratio === null || ci95 === null) return same(`${fmtP(mw.p)} but the ratio of medians is undefined (median of A is 0)`);
  const bHigher = mw.uB > mw.uA;
  if (ci95[0] <= 1 && ci95[1] >= 1) {
    return same(`${fmtP(mw.p)} but the 95 % interval of the ratio [${ci95[0].toFixed(3)}, ${ci95[1].toFixed(3)}] includes 1`);
  }
  if (bHigher !== ci95[0] > 1) {
    return same(`${fmtP(mw.p)} but the rank test and the ratio of medians point in opposite directions`);
  }
  const verdict: VerdictKind = bHigher ? "higher" : "lower";
  return {
    ...tested,
    verdict,
    label: bHigher ? spec.higher : spec.lower,
    better: bHigher === spec.higherIsBetter,
    reason: `${fmtP(mw.p)} < ${alpha} (Mann-Whitney U) and the 95 % interval of the ratio excludes 1`,
  };
}
