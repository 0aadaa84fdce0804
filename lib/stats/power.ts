// The smallest change the runs could have found: the minimum detectable
// effect (MDE) of the rank test for the runs per side, from the spread the
// runs showed. It turns "no significant difference" into "no difference
// larger than 4 %", and tells before a run whether a verdict is reachable.
import { probit } from "simple-statistics";
import { EXACT_LIMIT, seededRandom } from "./stats.ts";

/** The power the MDE is stated at: a change that large is found in 80 % of repeats. */
export const MDE_POWER = 0.8;
/** Simulated repeats per candidate change. */
export const MDE_REPEATS = 1000;
/** Above this relative change (10 x) the MDE is reported as unbounded. */
const MDE_CEILING = 10;

/**
 * The smallest U of side B (pairs in which B's value is the larger) at which
 * the two-sided rank test gives p < alpha, for samples without ties; null
 * when no U can reach it (too few runs for this alpha). Exact up to
 * EXACT_LIMIT pooled values (the rank-sum distribution enumerated), the
 * normal approximation above, as in mannWhitneyU.
 */
export function criticalU(na: number, nb: number, alpha: number): number | null {
  const n = na + nb;
  const pairs = na * nb;
  if (n > EXACT_LIMIT) {
    const sd = Math.sqrt((pairs * (n + 1)) / 12);
    return Math.ceil(pairs / 2 + 0.5 + probit(1 - alpha / 2) * sd);
  }
  // Counts of B's rank sum over all ways of choosing nb of the ranks 1..n.
  const maxSum = (n * (n + 1)) / 2;
  const table = Array.from({ length: nb + 1 }, () => new Float64Array(maxSum + 1));
  table[0][0] = 1;
  for (let r = 1; r <= n; r++) {
    for (let k = Math.min(r, nb); k >= 1; k--) {
      const row = table[k];
      const prev = table[k - 1];
      for (let s = maxSum; s >= r; s--) if (prev[s - r] !== 0) row[s] += prev[s - r];
    }
  }
  const counts = table[nb];
  let total = 0;
  for (const c of counts) total += c;
  const base = (nb * (nb + 1)) / 2; // rank sum when U = 0
  let tail = 0;
  for (let s = maxSum; s >= base; s--) {
    const next = tail + counts[s];
    // Not significant from s on: the threshold is s + 1, unless not even B's highest rank sum is.
    if ((2 * next) / total >= alpha) return tail === 0 ? null : s + 1 - base;
    tail = next;
  }
  return null;
}

/** Each value's relative deviation from its own side's median: the spread with any shift between the sides taken out. */
function relativeDeviations(a: number[], b: number[], medianA: number, medianB: number): number[] {
  return [...a.map((v) => v / medianA - 1), ...b.map((v) => v / medianB - 1)];
}

/** How often B multiplied by (1 + delta) is found higher, over `repeats` resampled pairs of samples. */
function power(dev: number[], na: number, nb: number, delta: number, uCrit: number, seed: number, repeats: number): number {
  const random = seededRandom(seed); // the same draws for every delta: power grows with delta
  const draw = () => dev[Math.floor(random() * dev.length)];
  const xa = new Float64Array(na);
  const xb = new Float64Array(nb);
  let found = 0;
  for (let i = 0; i < repeats; i++) {
    for (let j = 0; j < na; j++) xa[j] = 1 + draw();
    for (let j = 0; j < nb; j++) xb[j] = (1 + delta) * (1 + draw());
    let u = 0;
    for (const y of xb) for (const x of xa) u += y > x ? 1 : y === x ? 0.5 : 0;
    if (u >= uCrit) found++;
  }
  return found / repeats;
}

export interface Mde {
  /** The smallest relative change (0.04 = 4 %) found with MDE_POWER at alpha; null when none up to 10 x is. */
  mde: number | null;
  /** true when the MDE is the measurement's resolution (the runs did not vary more than it). */
  floor: boolean;
}

/**
 * The minimum detectable effect of the rank test at `alpha` for samples of
 * a's and b's sizes: the smallest relative change of B against A that the
 * test finds in MDE_POWER of repeats, simulated by resampling the runs'
 * relative deviations from their side's median. Never below
 * `resolution` / median(A), the smallest step the measurement can show.
 * Null (mde) when the runs per side cannot reach alpha at all.
 */
export function minimumDetectableEffect(
  a: number[], b: number[], medianA: number, medianB: number, alpha: number,
  opts: { resolution?: number; seed?: number; repeats?: number; /** Runs per side to project to (default: a's and b's own). */ runs?: [number, number] } = {},
): Mde | null {
  if (a.length === 0 || b.length === 0 || medianA <= 0 || medianB <= 0) return null;
  const [na, nb] = opts.runs ?? [a.length, b.length];
  const uCrit = criticalU(na, nb, alpha);
  if (uCrit === null) return null;
  const floor = (opts.resolution ?? 0) / medianA;
  const dev = relativeDeviations(a, b, medianA, medianB);
  const seed = opts.seed ?? 1;
  const repeats = opts.repeats ?? MDE_REPEATS;
  return searchMde((delta) => power(dev, na, nb, delta, uCrit, seed, repeats) >= MDE_POWER, floor);
}

/**
 * The smallest relative change `found` says a test finds (found must grow
 * with the change): doubled from 0.1 % until found, then bisected to 0.01 %;
 * never below `floor`; null above 10 x.
 */
export function searchMde(found: (delta: number) => boolean, floor: number): Mde {
  let hi = 0.001;
  while (!found(hi)) {
    hi *= 2;
    if (hi > MDE_CEILING) return { mde: null, floor: false };
  }
  let lo = hi === 0.001 ? 0 : hi / 2;
  for (let i = 0; i < 14 && hi - lo > 1e-4; i++) {
    const mid = (lo + hi) / 2;
    if (found(mid)) hi = mid;
    else lo = mid;
  }
  return hi <= floor ? { mde: floor, floor: true } : { mde: hi, floor: false };
}

/** The runs per side runsForMde tries, fewest first; the last is the most it will suggest. */
export const RUNS_CANDIDATES = [5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128];

/**
 * The fewest runs per side (of `candidates`) at which the same spread gives
 * an MDE of at most `target`, projected by resampling these runs; null when
 * none of them does.
 */
export function runsForMde(
  a: number[], b: number[], medianA: number, medianB: number, alpha: number, target: number,
  opts: { resolution?: number; seed?: number; candidates?: number[] } = {},
): number | null {
  for (const n of opts.candidates ?? RUNS_CANDIDATES) {
    const m = minimumDetectableEffect(a, b, medianA, medianB, alpha, { ...opts, runs: [n, n] });
    if (m?.mde !== null && m?.mde !== undefined && m.mde <= target) return n;
  }
  return null;
}
