// Descriptive statistics, bootstrap intervals and the Mann-Whitney U test for
// repeated measurements. The arithmetic comes from simple-statistics; what it
// lacks is built here on top of its functions: a seeded random source (so an
// interval is the same every time it is computed), the bootstrap loop, and
// the null distribution of the rank-sum statistic.
import {
  errorFunction,
  max,
  mean,
  median,
  min,
  quantile,
  sampleStandardDeviation,
  sampleWithReplacement,
  wilcoxonRankSum,
} from "simple-statistics";

/** Resamples per bootstrap interval unless told otherwise. */
export const DEFAULT_RESAMPLES = 10_000;
/** Seed of the bootstrap's random source unless told otherwise. */
export const DEFAULT_SEED = 1;

export interface BootstrapOptions {
  /** Number of bootstrap resamples (default 10 000). */
  resamples?: number;
  /** Seed of the random source (default 1): the same seed gives the same interval. */
  seed?: number;
  /** Confidence level of the interval (default 0.95). */
  confidence?: number;
}

/** What one metric's repeated measurements look like. Null where it cannot be computed. */
export interface Summary {
  n: number;
  median: number | null;
  mean: number | null;
  /** Sample standard deviation (n - 1 in the denominator); null below 2 values. */
  stddev: number | null;
  /** Coefficient of variation: stddev / mean; null below 2 values or when the mean is 0. */
  cv: number | null;
  min: number | null;
  max: number | null;
  /** 95 % bootstrap percentile interval of the median; null below 2 values. */
  ci95: [number, number] | null;
}

/**
 * A seeded pseudo-random source returning numbers in [0, 1), for
 * simple-statistics' `randomSource` parameters. Mulberry32 (32-bit state,
 * period 2^32): far more resamples than a bootstrap draws, and exactly
 * reproducible from its seed on every platform.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkValues(values: number[], what = "values"): void {
  for (const v of values) {
    if (!Number.isFinite(v)) throw new Error(`${what} must be finite numbers, got ${v}`);
  }
}

function resamplesOf(opts: BootstrapOptions): number {
  const n = opts.resamples ?? DEFAULT_RESAMPLES;
  if (!Number.isInteger(n) || n < 100) throw new Error(`resamples must be a whole number of at least 100, got ${n}`);
  return n;
}

function tailsOf(opts: BootstrapOptions): [number, number] {
  const c = opts.confidence ?? 0.95;
  if (!(c > 0 && c < 1)) throw new Error(`confidence must be between 0 and 1, got ${c}`);
  return [(1 - c) / 2, 1 - (1 - c) / 2];
}

/**
 * Percentile bootstrap interval of `statistic` over `values`: the sample is
 * resampled with replacement `resamples` times, the statistic computed on
 * each, and the interval read off the resampled statistics' quantiles.
 * Null below 2 values (one value has no spread to resample).
 */
export function bootstrapCI(
  values: number[],
  statistic: (x: number[]) => number = median,
  opts: BootstrapOptions = {},
): [number, number] | null {
  checkValues(values);
  if (values.length < 2) return null;
  const random = seededRandom(opts.seed ?? DEFAULT_SEED);
  const k = resamplesOf(opts);
  const stats = new Array<number>(k);
  for (let i = 0; i < k; i++) stats[i] = statistic(sampleWithReplacement(values, values.length, random));
  const [lo, hi] = quantile(stats, tailsOf(opts));
  return [lo, hi];
}

/**
 * Percentile bootstrap interval of statistic(b) / statistic(a) (default: the
 * ratio of the medians), each sample resampled on its own. Null when either
 * side has fewer than 2 values or a resampled statistic of `a` is 0.
 */
export function bootstrapRatioCI(
  a: number[],
  b: number[],
  statistic: (x: number[]) => number = median,
  opts: BootstrapOptions = {},
): [number, number] | null {
  checkValues(a, "sample a");
  checkValues(b, "sample b");
  if (a.length < 2 || b.length < 2) return null;
  const random = seededRandom(opts.seed ?? DEFAULT_SEED);
  const k = resamplesOf(opts);
  const ratios = new Array<number>(k);
  for (let i = 0; i < k; i++) {
    const sa = statistic(sampleWithReplacement(a, a.length, random));
    const sb = statistic(sampleWithReplacement(b, b.length, random));
    if (sa === 0) return null;
    ratios[i] = sb / sa;
  }
  const [lo, hi] = quantile(ratios, tailsOf(opts));
  return [lo, hi];
}

/** Median, mean, spread, range and the median's 95 % bootstrap interval of `values`. */
export function summarize(values: number[], opts: Omit<BootstrapOptions, "confidence"> = {}): Summary {
  checkValues(values);
  const n = values.length;
  if (n === 0) return { n, median: null, mean: null, stddev: null, cv: null, min: null, max: null, ci95: null };
  const m = mean(values);
  const sd = n >= 2 ? sampleStandardDeviation(values) : null;
  return {
    n,
    median: median(values),
    mean: m,
    stddev: sd,
    // simple-statistics' coefficientOfVariation is the same sd / mean; it is
    // divided here so that a zero mean gives null rather than Infinity.
    cv: sd === null || m === 0 ? null : sd / Math.abs(m),
    min: min(values),
    max: max(values),
    ci95: bootstrapCI(values, median, { ...opts, confidence: 0.95 }),
  };
}

/** n choose k, as a float (exact while below 2^53). */
export function binomial(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  let r = 1;
  for (let i = 1; i <= Math.min(k, n - k); i++) r = (r * (n - Math.min(k, n - k) + i)) / i;
  return Math.round(r);
}

/**
 * The smallest two-sided p-value the rank test can give for samples of these
 * sizes (no ties: every value of one side above every value of the other).
 * When it is not below alpha, no difference can ever be called significant.
 */
export function minAttainableP(na: number, nb: number): number {
  if (na < 1 || nb < 1) return 1;
  return Math.min(1, 2 / binomial(na + nb, na));
}

/** Pooled ranks of a and b (1-based; ties get the mean of the ranks they span); b empty: the ranks of a alone. */
export function midranks(a: ArrayLike<number>, b: ArrayLike<number> = []): { ranks: number[]; tieGroups: number[] } {
  const pooled = [...Array.from(a), ...Array.from(b)].map((v, i) => ({ v, i })).sort((x, y) => x.v - y.v);
  const ranks = new Array<number>(pooled.length);
  const tieGroups: number[] = [];
  for (let start = 0; start < pooled.length; ) {
    let end = start;
    while (end + 1 < pooled.length && pooled[end + 1].v === pooled[start].v) end++;
    const rank = (start + end) / 2 + 1;
    for (let j = start; j <= end; j++) ranks[pooled[j].i] = rank;
    tieGroups.push(end - start + 1);
    start = end + 1;
  }
  return { ranks, tieGroups };
}

/** Pooled sample size up to which the rank test's null distribution is enumerated exactly. */
export const EXACT_LIMIT = 50;

export interface MannWhitneyResult {
  /** U of sample a: the number of (a, b) pairs in which a is larger (ties count one half). */
  uA: number;
  /** U of sample b: na * nb - uA. */
  uB: number;
  /** Rank sum of sample a (Wilcoxon's W). */
  rankSumA: number;
  /** Two-sided p-value: how often samples this far apart arise when both come from one distribution. */
  p: number;
  /** "exact": the permutation distribution of the ranks, enumerated (ties included); "normal": its normal approximation. */
  method: "exact" | "normal";
}

/**
 * Mann-Whitney U test (Wilcoxon rank-sum), two-sided. The rank sum comes
 * from simple-statistics' wilcoxonRankSum; the p-value from the exact
 * permutation distribution of the (mid)ranks up to EXACT_LIMIT pooled
 * values, from the normal approximation with tie and continuity correction
 * above that.
 */
export function mannWhitneyU(a: number[], b: number[]): MannWhitneyResult {
  checkValues(a, "sample a");
  checkValues(b, "sample b");
  const na = a.length;
  const nb = b.length;
  if (na === 0 || nb === 0) throw new Error("Mann-Whitney U needs at least one value on each side");
  const N = na + nb;
  const rankSumA = wilcoxonRankSum(a, b);
  const uA = rankSumA - (na * (na + 1)) / 2;
  const uB = na * nb - uA;
  const { ranks, tieGroups } = midranks(a, b);

  if (N <= EXACT_LIMIT) {
    // Every way of choosing na of the N ranks is equally likely when both
    // samples come from one distribution. Doubled midranks are whole numbers:
    // count the na-subsets by their doubled rank sum (a subset-sum table).
    const r2 = ranks.map((r) => Math.round(2 * r));
    const maxSum = r2.reduce((s, r) => s + r, 0);
    const table: Float64Array[] = Array.from({ length: na + 1 }, () => new Float64Array(maxSum + 1));
    table[0][0] = 1;
    r2.forEach((r, i) => {
      for (let k = Math.min(i + 1, na); k >= 1; k--) {
        const row = table[k];
        const prev = table[k - 1];
        for (let s = maxSum; s >= r; s--) if (prev[s - r] !== 0) row[s] += prev[s - r];
      }
    });
    const counts = table[na];
    const centre = na * (N + 1); // doubled mean rank sum
    const observed = Math.abs(Math.round(2 * rankSumA) - centre);
    let extreme = 0;
    let total = 0;
    for (let s = 0; s <= maxSum; s++) {
      if (counts[s] === 0) continue;
      total += counts[s];
      if (Math.abs(s - centre) >= observed) extreme += counts[s];
    }
    return { uA, uB, rankSumA, p: Math.min(1, extreme / total), method: "exact" };
  }

  const tieTerm = tieGroups.reduce((s, t) => s + (t ** 3 - t), 0) / (N * (N - 1));
  const variance = ((na * nb) / 12) * (N + 1 - tieTerm);
  if (variance <= 0) return { uA, uB, rankSumA, p: 1, method: "normal" };
  const z = Math.max(0, Math.abs(uA - (na * nb) / 2) - 0.5) / Math.sqrt(variance);
  // Two-sided tail of the standard normal: 2 * (1 - Phi(z)) = 1 - erf(z / sqrt 2).
  const p = Math.min(1, Math.max(0, 1 - errorFunction(z / Math.SQRT2)));
  return { uA, uB, rankSumA, p, method: "normal" };
}
