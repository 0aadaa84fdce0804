// The paired analysis of a live comparison: its builds ran interleaved,
// round by round, so each round's A and B shared the host's state at that
// time. Each round gives one log-ratio log(B / A); drift of the host that
// moves both sides alike cancels in it. Tested with the Wilcoxon
// signed-rank test (exact for small n), its interval a bootstrap of the
// median log-ratio, its MDE simulated as power.ts does for the rank-sum test.
import { errorFunction, median, probit } from "simple-statistics";
import { EXACT_LIMIT, bootstrapCI, midranks, seededRandom, type BootstrapOptions } from "./stats.ts";
import { MDE_REPEATS, MDE_POWER, RUNS_CANDIDATES, searchMde, type Mde } from "./power.ts";

/** A metric's values of the rounds both sides measured, in round order: a[i] and b[i] ran in the same round. */
export interface RoundPairs {
  a: number[];
  b: number[];
  /** The rounds (the results' iteration) the pairs come from. */
  rounds: number[];
}

/** A result as pairing reads it: its round and whether it counts. */
interface RoundResult {
  iteration: number;
}

/**
 * The values of the rounds in which both sides measured `value`; null when
 * the results do not say their round (a side has two results of one round:
 * runs written before rounds were recorded, or not one live comparison).
 * A round one side lost (a failed test, an unmeasured value) is left out.
 */
export function pairByRound<R extends RoundResult>(a: R[], b: R[], value: (r: R) => number | null): RoundPairs | null {
  const byRound = (rs: R[]): Map<number, R> | null => {
    const m = new Map<number, R>();
    for (const r of rs) {
      if (m.has(r.iteration)) return null;
      m.set(r.iteration, r);
    }
    return m;
  };
  const ma = byRound(a);
  const mb = byRound(b);
  if (!ma || !mb) return null;
  const out: RoundPairs = { a: [], b: [], rounds: [] };
  for (const round of [...ma.keys()].sort((x, y) => x - y)) {
    const rb = mb.get(round);
    if (rb === undefined) continue;
    const va = value(ma.get(round)!);
    const vb = value(rb);
    if (va === null || vb === null || !Number.isFinite(va) || !Number.isFinite(vb)) continue;
    out.a.push(va);
    out.b.push(vb);
    out.rounds.push(round);
  }
  return out;
}

/** Each pair's log(B / A); null when a value is not positive (a log-ratio needs both above 0). */
export function logRatios(p: { a: number[]; b: number[] }): number[] | null {
  if (p.a.some((v) => v <= 0) || p.b.some((v) => v <= 0)) return null;
  return p.a.map((va, i) => Math.log(p.b[i] / va));
}

export interface SignedRankResult {
  /** Pairs with a non-zero difference (zeros are dropped, as Wilcoxon did). */
  n: number;
  /** Sum of the ranks of |d| over the positive differences (R's V), and over the negative ones. */
  wPlus: number;
  wMinus: number;
  /** Two-sided p-value. */
  p: number;
  /** "exact": all 2^n sign assignments enumerated (ties by their midranks); "normal": the normal approximation. */
  method: "exact" | "normal";
}

/**
 * Wilcoxon signed-rank test of differences `d` against 0, two-sided. Zeros
 * are dropped; |d| ranked with midranks for ties; exact up to EXACT_LIMIT
 * differences (every sign assignment equally likely under the null), the
 * normal approximation with tie and continuity correction above.
 */
export function wilcoxonSignedRank(d: number[]): SignedRankResult {
  for (const v of d) if (!Number.isFinite(v)) throw new Error(`differences must be finite numbers, got ${v}`);
  const nz = d.filter((v) => v !== 0);
  const n = nz.length;
  if (n === 0) return { n, wPlus: 0, wMinus: 0, p: 1, method: "exact" };
  const { ranks, tieGroups: ties } = midranks(nz.map(Math.abs));
  const wPlus = nz.reduce((s, v, i) => (v > 0 ? s + ranks[i] : s), 0);
  const total = (n * (n + 1)) / 2;
  const wMinus = total - wPlus;
  if (n <= EXACT_LIMIT) {
    // Doubled midranks are whole numbers: count the sign assignments by their doubled W+.
    const r2 = ranks.map((r) => Math.round(2 * r));
    const max = 2 * total;
    const counts = new Float64Array(max + 1);
    counts[0] = 1;
    for (const r of r2) for (let s = max; s >= r; s--) counts[s] += counts[s - r];
    const centre = total; // doubled mean of W+
    const observed = Math.abs(Math.round(2 * wPlus) - centre);
    let extreme = 0;
    for (let s = 0; s <= max; s++) if (counts[s] !== 0 && Math.abs(s - centre) >= observed) extreme += counts[s];
    return { n, wPlus, wMinus, p: Math.min(1, extreme / 2 ** n), method: "exact" };
  }
  const variance = (n * (n + 1) * (2 * n + 1)) / 24 - ties.reduce((s, t) => s + t ** 3 - t, 0) / 48;
  if (variance <= 0) return { n, wPlus, wMinus, p: 1, method: "normal" };
  const z = Math.max(0, Math.abs(wPlus - total / 2) - 0.5) / Math.sqrt(variance);
  return { n, wPlus, wMinus, p: Math.min(1, Math.max(0, 1 - errorFunction(z / Math.SQRT2))), method: "normal" };
}

/** The smallest two-sided p-value the signed-rank test can give with n pairs: every difference on one side. */
export function minAttainablePairedP(n: number): number {
  return n < 1 ? 1 : Math.min(1, 2 / 2 ** n);
}

/** Fewest pairs with which the signed-rank test can reach p < alpha at all. */
export function pairsNeeded(alpha: number): number {
  let n = 1;
  while (minAttainablePairedP(n) >= alpha) n++;
  return n;
}

/**
 * The smallest W+ at which the two-sided signed-rank test of n pairs without
 * ties gives p < alpha; null when none can (too few pairs for this alpha).
 */
export function criticalW(n: number, alpha: number): number | null {
  if (minAttainablePairedP(n) >= alpha) return null;
  const total = (n * (n + 1)) / 2;
  if (n > EXACT_LIMIT) return Math.ceil(total / 2 + 0.5 + probit(1 - alpha / 2) * Math.sqrt((n * (n + 1) * (2 * n + 1)) / 24));
  const counts = new Float64Array(total + 1);
  counts[0] = 1;
  for (let r = 1; r <= n; r++) for (let s = total; s >= r; s--) counts[s] += counts[s - r];
  let tail = 0;
  for (let w = total; w >= 0; w--) {
    if ((2 * (tail + counts[w])) / 2 ** n >= alpha) return w + 1;
    tail += counts[w];
  }
  return null;
}

/** W+ of differences `x` (midranks for ties; zeros rank but count for neither side). */
function wPlusOf(x: Float64Array): number {
  const { ranks } = midranks(Array.from(x, Math.abs));
  return ranks.reduce((w, r, i) => (x[i] > 0 ? w + r : w), 0);
}

/**
 * The minimum detectable effect of the paired analysis at `alpha`: the
 * smallest relative change of B against A that the signed-rank test finds
 * in MDE_POWER of repeats, simulated by resampling these log-ratios'
 * deviations from their median (`pairs` of them, default as many as
 * given) shifted by log(1 + change). Never below `floor` (the
 * measurement's resolution, relative). Null when the pairs cannot reach
 * alpha at all.
 */
export function pairedMde(
  logs: number[], alpha: number, opts: { floor?: number; seed?: number; repeats?: number; pairs?: number } = {},
): Mde | null {
  if (logs.length === 0) return null;
  const n = opts.pairs ?? logs.length;
  const wCrit = criticalW(n, alpha);
  if (wCrit === null) return null;
  const centre = median(logs);
  const dev = logs.map((l) => l - centre);
  const repeats = opts.repeats ?? MDE_REPEATS;
  const found = (delta: number) => {
    const random = seededRandom(opts.seed ?? 1); // the same draws for every delta: power grows with delta
    const shift = Math.log1p(delta);
    const x = new Float64Array(n);
    let hits = 0;
    for (let i = 0; i < repeats; i++) {
      for (let j = 0; j < n; j++) x[j] = shift + dev[Math.floor(random() * dev.length)];
      if (wPlusOf(x) >= wCrit) hits++;
    }
    return hits / repeats >= MDE_POWER;
  };
  return searchMde(found, opts.floor ?? 0);
}

/** The fewest rounds (of RUNS_CANDIDATES) at which these log-ratios' spread gives a paired MDE of at most `target`; null when none does. */
export function roundsForMde(logs: number[], alpha: number, target: number, opts: { floor?: number; seed?: number } = {}): number | null {
  for (const n of RUNS_CANDIDATES) {
    const m = pairedMde(logs, alpha, { ...opts, pairs: n });
    if (m?.mde != null && m.mde <= target) return n;
  }
  return null;
}

/** The ratio B / A of the rounds (exp of the median log-ratio) and its percentile bootstrap interval (null below 2 pairs). */
export function pairedRatio(logs: number[], opts: BootstrapOptions = {}): { ratio: number; ci95: [number, number] | null } {
  const ci = bootstrapCI(logs, median, { ...opts, confidence: 0.95 });
  return { ratio: Math.exp(median(logs)), ci95: ci === null ? null : [Math.exp(ci[0]), Math.exp(ci[1])] };
}
