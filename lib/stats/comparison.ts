// A comparison of two sets of runs (A and B), cell by cell: each side's
// statistics, the ratio B / A of throughput and of peak memory with its
// interval and verdict, the outcome counts side by side, and what differs
// between the two environments. The exporters print it; the report draws it.
import {
  DEFAULT_CV_THRESHOLD, cellKeyOf, cellName, describeNoise, errorCell, likelyCauses, resultCell, runHosts, summarizeRuns,
  type CellKey, type CellSummary, type NoisyMetric,
} from "./cells.ts";
import { compareFingerprints, type Fingerprint, type FingerprintDifference } from "./fingerprint.ts";
import type { TestResult } from "../upload/result.ts";
import { probeDifferences, type EnvironmentProbe } from "../upload/noise.ts";
import { DEFAULT_RESAMPLES, DEFAULT_SEED } from "./stats.ts";
import { DEFAULT_ALPHA, MIN_SAMPLES, WALL_CLOCK_ANALYSIS, compareFamily, runsNeeded, type MetricComparison, type VerdictOptions } from "./verdict.ts";
import { COMPARED_METRICS, CORRECTED_FAMILIES, DERIVED_METRICS, INSTRUCTION_METRICS, PRIMARY_METRICS, WALL_CLOCK_METRICS, familyMetrics, type ComparedMetric } from "./metrics.ts";
import { median } from "simple-statistics";
import type { FunctionShifts } from "./functions.ts";
import { pairByRound, pairsNeeded } from "./paired.ts";

/** A cell as the comparison's lists name it: cellName spells it. */
export interface CellRef {
  ram_mb: number;
  file_size: string;
  concurrency: number;
}

function refOf(key: CellKey): CellRef {
  return { ram_mb: key.ram_mb, file_size: key.file_size, concurrency: key.concurrency ?? 1 };
}

/** Cells in the order the comparison lists them: largest RAM first, then smallest file, then fewest uploads at once. */
function byCell(x: CellKey, y: CellKey): number {
  return y.ram_mb - x.ram_mb || x.file_size_bytes - y.file_size_bytes || (x.concurrency ?? 1) - (y.concurrency ?? 1);
}

/** One side as given to the comparison. */
export interface SideInput {
  /** "A" / "B", or a name such as "v1.5.4". */
  label: string;
  run_id: number | null;
  picoshare_version: string | null;
  picoshare_sha256: string | null;
  /** The binary's path, when known (live comparisons). */
  picoshare_path?: string | null;
  fingerprint: Fingerprint;
  results: TestResult[];
  /** Tests that wrote no result, by cell. */
  harness_errors: { ram_mb: number; file_size: string; concurrency?: number }[];
  /**
   * The live comparison the side was measured in (its folder); null or absent
   * for other runs. Two sides of the same one ran interleaved, round by round
   * (each result's `iteration`): their wall-clock metrics are paired by round.
   */
  live_compare?: string | null;
}

export type SideInfo = Omit<SideInput, "results" | "harness_errors">;

/** A derived figure of a cell: medians and ratio, not tested (its sources are). */
export interface DerivedComparison {
  key: string;
  metric: string;
  unit: string;
  from: string;
  median_a: number | null;
  median_b: number | null;
  ratio: number | null;
}

export interface CellComparison extends CellKey {
  a: CellSummary;
  b: CellSummary;
  /** The primary throughput verdict (also in `metrics`). */
  throughput: MetricComparison;
  /** The working set's peak (secondary; also in `metrics`). */
  peak_memory: MetricComparison;
  /** Every tested metric: changed ones first (primary before secondary), then the rest in declared order. */
  metrics: MetricComparison[];
  derived: DerivedComparison[];
}

export interface ComparisonOptions {
  alpha?: number;
  minSamples?: number;
  resamples?: number;
  seed?: number;
  cvThreshold?: number;
  /** Name each cell side's hosts; by default when either side was measured on several (runHosts). */
  hosts?: boolean;
}

export interface Comparison {
  a: SideInfo;
  b: SideInfo;
  method: {
    test: string;
    interval: string;
    alpha: number;
    min_samples: number;
    runs_needed: number;
    /** The primary family (keys), corrected together with Holm's method. */
    primary: string[];
    /** The instruction counts (keys, --count-instructions): a family of their own, corrected together the same way. */
    instructions: string[];
    correction: string;
    /** What the minimum detectable effect assumes. */
    mde: string;
    /** The wall-clock metrics (keys): paired by round when both sides are one live comparison's. */
    wall_clock: string[];
    /** How those are tested then (each metric's `analysis` says which test it got). */
    paired: string;
    resamples: number;
    seed: number;
    cv_threshold: number;
  };
  /** Environment differences that can change the measurements (empty: comparable). */
  fingerprint_differences: FingerprintDifference[];
  /** Where the host probed differently before A's tests than before B's, beyond their spread (empty: alike). */
  probe_differences: string[];
  /** Cells present on both sides, largest RAM first, then smallest file, then fewest uploads at once. */
  cells: CellComparison[];
  /** Cells that only one side has: not compared. */
  unmatched: ({ side: "a" | "b" } & CellRef)[];
  /** Cells whose runs scatter above the CV threshold, per side. */
  noise: ({ side: "a" | "b"; metrics: NoisyMetric[]; description: string } & CellRef)[];
  /** The likely causes of that scatter (empty when nothing is noisy). */
  noise_causes: string[];
  /** Where the instructions went, per cell whose instruction verdict is a change (lib/stats/functions.ts); absent when none is. */
  function_shifts?: FunctionShifts[];
}

function values(results: TestResult[], value: (r: TestResult) => number | null): number[] {
  return results.map(value).filter((v): v is number => v !== null && Number.isFinite(v));
}

const RANK = { higher: 0, lower: 0, same: 1, too_few: 2 } as const;

/**
 * Every metric of COMPARED_METRICS for one cell's successful runs: each
 * corrected family (primary, instructions) together, each secondary metric on its own;
 * changed ones first, primary before secondary, then declared order.
 * `interleaved`: the sides ran round by round in one live comparison, so
 * its wall-clock metrics are paired by round.
 */
export function compareMetrics(okA: TestResult[], okB: TestResult[], opts: VerdictOptions, interleaved = false): MetricComparison[] {
  const member = (m: ComparedMetric) => ({
    a: values(okA, m.value), b: values(okB, m.value), spec: m, key: m.key, resolution: m.resolution([...okA, ...okB]),
    pairs: interleaved && m.wallClock ? pairByRound(okA, okB, m.value) : null,
  });
  const out = [
    ...CORRECTED_FAMILIES.flatMap((family) => compareFamily(familyMetrics(family).map(member), family, opts)),
    ...COMPARED_METRICS.filter((m) => m.family === "secondary").map((m) => compareFamily([member(m)], "secondary", opts)[0]),
  ];
  const order = new Map(COMPARED_METRICS.map((m, i) => [m.key, i]));
  return out.sort((x, y) => RANK[x.verdict] - RANK[y.verdict] || order.get(x.key)! - order.get(y.key)!);
}

function probesOf(results: TestResult[]): EnvironmentProbe[] {
  return results.map((r) => r.environment_probe).filter((p): p is EnvironmentProbe => p !== null && p !== undefined);
}

/** Every cell of one side, with its results and harness-error count. */
function cellsOf(side: SideInput): Map<string, { key: CellKey; results: TestResult[]; errors: number }> {
  const cells = new Map<string, { key: CellKey; results: TestResult[]; errors: number }>();
  const get = (key: CellKey) => {
    const k = cellKeyOf(key);
    let c = cells.get(k);
    if (!c) {
      c = { key, results: [], errors: 0 };
      cells.set(k, c);
    }
    return c;
  };
  for (const r of side.results) get(resultCell(r)).results.push(r);
  for (const e of side.harness_errors) get(errorCell(e)).errors++;
  return cells;
}

function infoOf(side: SideInput): SideInfo {
  const { results: _r, harness_errors: _h, ...info } = side;
  return info;
}

/** Several candidates against one A: hosts are named in all of them when any side was measured on several, so their columns line up. */
export function buildComparisons(a: SideInput, bs: SideInput[], opts: ComparisonOptions = {}): Comparison[] {
  const hosts = opts.hosts ?? [a, ...bs].some((s) => runHosts(s.results).length > 1);
  return bs.map((b) => buildComparison(a, b, { ...opts, hosts }));
}

/** The method line's words for the wall-clock metrics: which test they got here, and when the other. */
function pairedMethod(alpha: number, minSamples: number, interleaved: boolean, cells: CellComparison[]): string {
  const names = WALL_CLOCK_METRICS.map((m) => m.name).join(", ");
  if (!interleaved) return `${names}: unpaired like the rest (the sides are not one live comparison's rounds)`;
  const need = Math.max(minSamples, pairsNeeded(alpha / PRIMARY_METRICS.length));
  const how =
    `paired by round: Wilcoxon signed-rank of each round's log(B / A), two-sided (exact up to 50 rounds), ` +
    `the ratio exp(median log-ratio) with its 95 % bootstrap interval`;
  if (WALL_CLOCK_ANALYSIS !== "paired") return `${names}: unpaired like the rest (the paired analysis, ${how}, is shown as its MDE only)`;
  const paired = cells.filter((c) => c.metrics.some((m) => m.analysis === "paired")).length;
  const here = paired === cells.length ? "every cell" : paired === 0 ? "no cell" : `${paired} of ${cells.length} cells`;
  return `${names} (wall-clock) of this live comparison: ${how}, in a cell with at least ${need} complete rounds (primary), else unpaired as the rest; paired here in ${here}`;
}

/** Compares B with A cell by cell; cells are matched by RAM, file size (in bytes: 1G is 1024M) and uploads at once. */
export function buildComparison(a: SideInput, b: SideInput, opts: ComparisonOptions = {}): Comparison {
  const alpha = opts.alpha ?? DEFAULT_ALPHA;
  const minSamples = opts.minSamples ?? MIN_SAMPLES;
  const resamples = opts.resamples ?? DEFAULT_RESAMPLES;
  const seed = opts.seed ?? DEFAULT_SEED;
  const cvThreshold = opts.cvThreshold ?? DEFAULT_CV_THRESHOLD;
  // A side measured on several hosts (a merged run): each cell side names its host, on both sides so they read against each other.
  const hosts = opts.hosts ?? (runHosts(a.results).length > 1 || runHosts(b.results).length > 1);
  const stats = { resamples, seed, cvThreshold, hosts };
  const verdictOpts = { alpha, minSamples, resamples, seed };
  // Both sides from one live comparison: its rounds pair them.
  const interleaved = a.live_compare != null && a.live_compare === b.live_compare;

  const cellsA = cellsOf(a);
  const cellsB = cellsOf(b);
  const cells: CellComparison[] = [];
  const unmatched: { side: "a" | "b"; key: CellKey }[] = [];
  const noise: Comparison["noise"] = [];
  for (const [k, ca] of cellsA) {
    const cb = cellsB.get(k);
    if (!cb) {
      unmatched.push({ side: "a", key: ca.key });
      continue;
    }
    const sa = summarizeRuns(ca.key, ca.results, { ...stats, harnessErrors: ca.errors });
    const sb = summarizeRuns({ ...ca.key }, cb.results, { ...stats, harnessErrors: cb.errors });
    for (const [side, summary] of [["a", sa], ["b", sb]] as const) {
      if (summary.noisy.length > 0) {
        noise.push({ side, ...refOf(summary), metrics: summary.noisy, description: describeNoise(summary.noisy) });
      }
    }
    const okA = ca.results.filter((r) => r.success);
    const okB = cb.results.filter((r) => r.success);
    const metrics = compareMetrics(okA, okB, verdictOpts, interleaved);
    cells.push({
      ...ca.key,
      a: sa,
      b: sb,
      throughput: metrics.find((m) => m.key === "throughput")!,
      peak_memory: metrics.find((m) => m.key === "peak_memory")!,
      metrics,
      derived: DERIVED_METRICS.map((d) => {
        const va = values(okA, d.value);
        const vb = values(okB, d.value);
        const ma = va.length > 0 ? median(va) : null;
        const mb = vb.length > 0 ? median(vb) : null;
        return { key: d.key, metric: d.name, unit: d.unit, from: d.from, median_a: ma, median_b: mb, ratio: ma && mb !== null ? mb / ma : null };
      }),
    });
  }
  for (const [k, cb] of cellsB) if (!cellsA.has(k)) unmatched.push({ side: "b", key: cb.key });
  cells.sort(byCell);
  unmatched.sort((x, y) => byCell(x.key, y.key));
  return {
    a: infoOf(a),
    b: infoOf(b),
    method: {
      test: "Mann-Whitney U, two-sided (exact up to 50 runs in a cell, normal approximation above)",
      interval: `95 % percentile bootstrap of the ratio of medians B / A (${resamples} resamples, seed ${seed})`,
      alpha,
      min_samples: minSamples,
      runs_needed: runsNeeded(alpha / PRIMARY_METRICS.length, minSamples),
      primary: PRIMARY_METRICS.map((m) => m.key),
      instructions: INSTRUCTION_METRICS.map((m) => m.key),
      correction:
        `Holm over the ${PRIMARY_METRICS.length} primary metrics of a cell, and apart from them over the ${INSTRUCTION_METRICS.length} instruction counts ` +
        `(where counted); secondary metrics each at alpha ${alpha}, uncorrected`,
      mde:
        `the smallest change found in 80 % of repeats at the metric's alpha (primary: ${alpha} / ${PRIMARY_METRICS.length}, ` +
        `instructions: ${alpha} / ${INSTRUCTION_METRICS.length}; over the metrics measured), simulated from the runs' spread; never below the measurement's resolution`,
      wall_clock: WALL_CLOCK_METRICS.map((m) => m.key),
      paired: pairedMethod(alpha, minSamples, interleaved, cells),
      resamples,
      seed,
      cv_threshold: cvThreshold,
    },
    fingerprint_differences: compareFingerprints(a.fingerprint, b.fingerprint),
    probe_differences: probeDifferences(probesOf(a.results), probesOf(b.results)),
    cells,
    unmatched: unmatched.map((u) => ({ side: u.side, ...refOf(u.key) })),
    noise,
    noise_causes:
      noise.length === 0
        ? []
        : likelyCauses(
            noise.some((n) => n.metrics.some((m) => m.metric === "peak_memory_bytes")) ? "peak_memory_bytes" : "throughput_mbps",
            a.fingerprint.host,
            [...a.results, ...b.results].filter((r) => r.success).map((r) => r.memory_samples),
          ),
  };
}

export { cellName };
