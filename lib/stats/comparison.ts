// A comparison of two sets of runs (A and B), cell by cell: each side's
// statistics, the ratio B / A of throughput and of peak memory with its
// interval and verdict, the outcome counts side by side, and what differs
// between the two environments. The exporters print it; the report draws it.
import {
  DEFAULT_CV_THRESHOLD, cellKeyOf, cellLabel, describeNoise, likelyCauses, summarizeRuns,
  type CellKey, type CellSummary, type NoisyMetric,
} from "./cells.ts";
import { compareFingerprints, type Fingerprint, type FingerprintDifference } from "./fingerprint.ts";
import type { TestResult } from "../upload/result.ts";
import { parseSize } from "../core/sizes.ts";
import { DEFAULT_RESAMPLES, DEFAULT_SEED } from "./stats.ts";
import {
  DEFAULT_ALPHA, MIN_SAMPLES, PEAK_MEMORY, THROUGHPUT, compareSamples, runsNeeded, type MetricComparison,
} from "./verdict.ts";

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
  harness_errors: { ram_mb: number; file_size: string }[];
}

export type SideInfo = Omit<SideInput, "results" | "harness_errors">;

export interface CellComparison extends CellKey {
  a: CellSummary;
  b: CellSummary;
  throughput: MetricComparison;
  peak_memory: MetricComparison;
}

export interface ComparisonOptions {
  alpha?: number;
  minSamples?: number;
  resamples?: number;
  seed?: number;
  cvThreshold?: number;
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
    resamples: number;
    seed: number;
    cv_threshold: number;
  };
  /** Environment differences that can change the measurements (empty: comparable). */
  fingerprint_differences: FingerprintDifference[];
  /** Cells present on both sides, largest RAM first, then smallest file. */
  cells: CellComparison[];
  /** Cells that only one side has: not compared. */
  unmatched: { side: "a" | "b"; ram_mb: number; file_size: string }[];
  /** Cells whose runs scatter above the CV threshold, per side. */
  noise: { side: "a" | "b"; ram_mb: number; file_size: string; metrics: NoisyMetric[]; description: string }[];
  /** The likely causes of that scatter (empty when nothing is noisy). */
  noise_causes: string[];
}

function keyFromLabel(ram: number, label: string): CellKey {
  let bytes: number;
  try {
    bytes = parseSize(label).bytes;
  } catch {
    bytes = -1;
  }
  return { ram_mb: ram, file_size: label, file_size_bytes: bytes };
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
  for (const r of side.results) get({ ram_mb: r.ram_mb, file_size: r.file_size, file_size_bytes: r.file_size_bytes }).results.push(r);
  for (const e of side.harness_errors) get(keyFromLabel(e.ram_mb, e.file_size)).errors++;
  return cells;
}

function infoOf(side: SideInput): SideInfo {
  const { results: _r, harness_errors: _h, ...info } = side;
  return info;
}

/** Compares B with A cell by cell; cells are matched by RAM and file size (in bytes: 1G is 1024M). */
export function buildComparison(a: SideInput, b: SideInput, opts: ComparisonOptions = {}): Comparison {
  const alpha = opts.alpha ?? DEFAULT_ALPHA;
  const minSamples = opts.minSamples ?? MIN_SAMPLES;
  const resamples = opts.resamples ?? DEFAULT_RESAMPLES;
  const seed = opts.seed ?? DEFAULT_SEED;
  const cvThreshold = opts.cvThreshold ?? DEFAULT_CV_THRESHOLD;
  const stats = { resamples, seed, cvThreshold };
  const verdictOpts = { alpha, minSamples, resamples, seed };

  const cellsA = cellsOf(a);
  const cellsB = cellsOf(b);
  const cells: CellComparison[] = [];
  const unmatched: Comparison["unmatched"] = [];
  const noise: Comparison["noise"] = [];
  for (const [k, ca] of cellsA) {
    const cb = cellsB.get(k);
    if (!cb) {
      unmatched.push({ side: "a", ram_mb: ca.key.ram_mb, file_size: ca.key.file_size });
      continue;
    }
    const sa = summarizeRuns(ca.key, ca.results, { ...stats, harnessErrors: ca.errors });
    const sb = summarizeRuns({ ...ca.key }, cb.results, { ...stats, harnessErrors: cb.errors });
    for (const [side, summary] of [["a", sa], ["b", sb]] as const) {
      if (summary.noisy.length > 0) {
        noise.push({ side, ram_mb: summary.ram_mb, file_size: summary.file_size, metrics: summary.noisy, description: describeNoise(summary.noisy) });
      }
    }
    const okA = ca.results.filter((r) => r.success);
    const okB = cb.results.filter((r) => r.success);
    cells.push({
      ...ca.key,
      a: sa,
      b: sb,
      throughput: compareSamples(okA.map((r) => r.throughput_mbps), okB.map((r) => r.throughput_mbps), THROUGHPUT, verdictOpts),
      peak_memory: compareSamples(okA.map((r) => r.peak_memory_bytes), okB.map((r) => r.peak_memory_bytes), PEAK_MEMORY, verdictOpts),
    });
  }
  for (const [k, cb] of cellsB) if (!cellsA.has(k)) unmatched.push({ side: "b", ram_mb: cb.key.ram_mb, file_size: cb.key.file_size });
  cells.sort((x, y) => y.ram_mb - x.ram_mb || x.file_size_bytes - y.file_size_bytes);
  unmatched.sort((x, y) => y.ram_mb - x.ram_mb || x.file_size.localeCompare(y.file_size));
  return {
    a: infoOf(a),
    b: infoOf(b),
    method: {
      test: "Mann-Whitney U, two-sided (exact up to 50 runs in a cell, normal approximation above)",
      interval: `95 % percentile bootstrap of the ratio of medians B / A (${resamples} resamples, seed ${seed})`,
      alpha,
      min_samples: minSamples,
      runs_needed: runsNeeded(alpha, minSamples),
      resamples,
      seed,
      cv_threshold: cvThreshold,
    },
    fingerprint_differences: compareFingerprints(a.fingerprint, b.fingerprint),
    cells,
    unmatched,
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

export { cellLabel };
