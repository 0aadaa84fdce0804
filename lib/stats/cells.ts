// Per-cell statistics over repeated tests: what the runs of one (RAM, size)
// cell came to, and a warning when they scatter too much to be trusted.
import type { HostFacts } from "../upload/host.ts";
import type { TestResult } from "../upload/result.ts";
import { summarize, type BootstrapOptions, type Summary } from "./stats.ts";
import { MiB, parseSize } from "../core/sizes.ts";
import { CELL_FIELDS, CELL_METRICS, field, type CellMetric } from "../result/fields.ts";

/** Coefficient of variation above which a cell's measurements are flagged (10 %). */
export const DEFAULT_CV_THRESHOLD = 0.1;
/** Fewest measured runs for which the coefficient of variation is judged. */
export const MIN_RUNS_FOR_CV = 3;

export interface CellKey {
  ram_mb: number;
  file_size: string;
  file_size_bytes: number;
  /** Uploads at once (--concurrency); absent in records from before it: 1. */
  concurrency?: number;
}

/** The measurements summarized per cell, each over the cell's successful runs only: the declared fields with cell statistics. */
export { CELL_METRICS, type CellMetric } from "../result/fields.ts";

/** "throughput", "peak memory": a metric as warnings name it. */
export const METRIC_LABELS = Object.fromEntries(CELL_FIELDS.map((f) => [f.name, f.cell.label])) as Record<CellMetric, string>;

/** Over the successful runs, each declared cell metric: a failed run's duration, throughput and peak are cut short. */
export type CellSummary = CellKey & Record<CellMetric, Summary> & {
  /** Tests that wrote a result. */
  runs: number;
  passed: number;
  /** Failed tests of any reason, OOM kills included. */
  failed: number;
  oom: number;
  /** Failed tests by exit_reason. */
  failures: Record<string, number>;
  /** Tests that wrote no result (run-test crashed or refused). */
  harness_errors: number;
  /** The metrics whose coefficient of variation is above the threshold. */
  noisy: NoisyMetric[];
  /** The CV warning for this cell (metrics, figures, likely causes), or none. */
  warnings: string[];
  /** Which hosts measured the cell: only for a run measured on several (a merged one), so one host's output stays as it was. */
  hosts?: string[];
};

export interface CellStatsOptions extends Omit<BootstrapOptions, "confidence"> {
  /** Coefficient of variation above which a warning is given (default 0.10). */
  cvThreshold?: number;
  /** Tests of this cell that wrote no result. */
  harnessErrors?: number;
  /** Name the hosts that measured the cell (`hosts`): for runs whose results come from several (runHosts). */
  hosts?: boolean;
}

export function cellKeyOf(r: Pick<TestResult, "ram_mb" | "file_size_bytes"> & { concurrency?: number | null }): string {
  return `${r.ram_mb}/${r.file_size_bytes}/${r.concurrency ?? 1}`;
}

/**
 * A cell's one spelling, wherever a cell is named or given: RAM, size and
 * (above 1) concurrency, "256MB/1G" or "256MB/1G/x3".
 */
export function cellName(c: { ram_mb: number; file_size: string; concurrency?: number | null }): string {
  const n = c.concurrency ?? 1;
  return `${c.ram_mb}MB/${c.file_size}${n > 1 ? `/x${n}` : ""}`;
}

/** A cell spelt as cellName spells it (for flags that name a cell); throws a message naming the form. */
export function parseCellName(text: string): { ram_mb: number; file_size: string; concurrency: number } {
  const m = /^([1-9][0-9]*)MB\/([0-9]+(?:\.[0-9]+)?[KMG]?)(?:\/x([1-9][0-9]*))?$/.exec(text);
  if (!m) throw new Error(`"${text}" is not a cell: write RAM, size and (above 1) concurrency as 256MB/1G or 256MB/1G/x3`);
  return { ram_mb: Number(m[1]), file_size: m[2], concurrency: m[3] ? Number(m[3]) : 1 };
}

/** A result's cell. */
export function resultCell(r: Pick<TestResult, "ram_mb" | "file_size" | "file_size_bytes"> & { concurrency?: number | null }): CellKey {
  return { ram_mb: r.ram_mb, file_size: r.file_size, file_size_bytes: r.file_size_bytes, concurrency: r.concurrency ?? 1 };
}

/** A harness error's cell: it has the size's label only (an unparsable one stays a cell of its own). */
export function errorCell(e: { ram_mb: number; file_size: string; concurrency?: number | null }): CellKey {
  let bytes = -1;
  try {
    bytes = parseSize(e.file_size).bytes;
  } catch {}
  return { ram_mb: e.ram_mb, file_size: e.file_size, file_size_bytes: bytes, concurrency: e.concurrency ?? 1 };
}

/**
 * The hostnames that measured these results, in the order first met, from
 * each result's own host facts (a merged run's results keep their shard's).
 * More than one: the run was measured on several hosts.
 */
export function runHosts(results: { host?: Partial<HostFacts> | null }[]): string[] {
  return [...new Set(results.flatMap((r) => (r.host?.hostname ? [r.host.hostname] : [])))];
}

/** Results grouped by cell, largest RAM first, then smallest file first. */
export function groupByCell(results: TestResult[]): TestResult[][] {
  const groups = new Map<string, TestResult[]>();
  for (const r of results) {
    const key = cellKeyOf(r);
    const list = groups.get(key) ?? [];
    list.push(r);
    groups.set(key, list);
  }
  return [...groups.values()].sort(
    (x, y) => y[0].ram_mb - x[0].ram_mb || x[0].file_size_bytes - y[0].file_size_bytes || (x[0].concurrency ?? 1) - (y[0].concurrency ?? 1),
  );
}

/**
 * The usual suspects for scattered measurements, with what the host facts
 * say about each where they say something.
 */
export function likelyCauses(metric: CellMetric, host?: Partial<HostFacts>, samples?: number[]): string[] {
  const causes = [
    "page cache state (the test file and the database cached for some runs, not others)",
    "first-iteration effects (cold caches, binary not yet in memory: use warm-up runs)",
  ];
  const disk =
    host?.data_disk_rotational === true
      ? "disk type (the data dir is on a rotational disk: seek times vary)"
      : "disk type (a rotational or network disk varies more than an SSD)";
  causes.push(disk);
  const gov = host?.cpu_governor;
  causes.push(
    gov && gov !== "performance"
      ? `CPU frequency scaling (governor "${gov}": try "performance")`
      : "CPU frequency scaling (governor, turbo)",
  );
  const load = host?.load_average_1m;
  causes.push(
    load !== undefined && host?.cpu_count && load / host.cpu_count > 0.5
      ? `noisy neighbours (load average ${load} on ${host.cpu_count} CPUs at start)`
      : "noisy neighbours (other processes or VMs on the host)",
  );
  causes.push("leftover temp files (multipart-* files in the work dir's TMPDIR filling the disk)");
  if (metric === "peak_memory_bytes" && samples && samples.length > 0 && Math.min(...samples) < 20) {
    causes.push(`few memory samples per upload (as few as ${Math.min(...samples)}): the peak falls between samples on short uploads`);
  }
  return causes;
}

function formatMetric(metric: CellMetric, v: number): string {
  const f = field(metric);
  // Bytes as MiB to one decimal, the rest in their unit to two.
  return f.unit === "bytes" ? `${(v / MiB).toFixed(1)} MiB` : `${v.toFixed(2)} ${f.unit}`;
}

/** A metric of a cell whose runs scatter more than the threshold allows. */
export interface NoisyMetric {
  metric: CellMetric;
  cv: number;
  n: number;
  min: number;
  max: number;
}

/** The metrics whose coefficient of variation is above `threshold` (judged from MIN_RUNS_FOR_CV runs on). */
export function noisyMetrics(summaries: Record<CellMetric, Summary>, threshold = DEFAULT_CV_THRESHOLD): NoisyMetric[] {
  const out: NoisyMetric[] = [];
  for (const metric of CELL_METRICS) {
    const s = summaries[metric];
    if (s.cv !== null && s.n >= MIN_RUNS_FOR_CV && s.cv > threshold) out.push({ metric, cv: s.cv, n: s.n, min: s.min!, max: s.max! });
  }
  return out;
}

/** "upload duration 35.4 % (0.06 s to 0.12 s)", one per noisy metric, comma-separated. */
export function describeNoise(noisy: NoisyMetric[]): string {
  return noisy
    .map((m) => `${METRIC_LABELS[m.metric]} ${(m.cv * 100).toFixed(1)} % (${formatMetric(m.metric, m.min)} to ${formatMetric(m.metric, m.max)})`)
    .join(", ");
}

/**
 * The warning for a cell whose metrics scatter above `threshold`: which
 * metrics, by how much, and the likely causes; null when none does.
 */
export function cvWarning(
  what: string,
  noisy: NoisyMetric[],
  threshold = DEFAULT_CV_THRESHOLD,
  host?: Partial<HostFacts>,
  memorySamples?: number[],
): string | null {
  if (noisy.length === 0) return null;
  const withMemory = noisy.some((m) => m.metric === "peak_memory_bytes");
  return (
    `${what}: coefficient of variation above ${(threshold * 100).toFixed(0)} % over ${noisy[0].n} runs: ${describeNoise(noisy)}. ` +
    `Likely causes: ${likelyCauses(withMemory ? "peak_memory_bytes" : noisy[0].metric, host, memorySamples).join("; ")}`
  );
}

/**
 * Summarizes the results of one cell (all must share RAM and file size):
 * outcome counts, and duration, throughput and peak memory over the
 * successful runs, with a warning per metric that scatters too much.
 */
export function summarizeCell(results: TestResult[], opts: CellStatsOptions = {}): CellSummary {
  if (results.length === 0) throw new Error("summarizeCell needs at least one result (a cell with only harness errors has no key)");
  const first = results[0];
  for (const r of results) {
    if (r.ram_mb !== first.ram_mb || r.file_size_bytes !== first.file_size_bytes) {
      throw new Error(`summarizeCell: results of different cells (${cellName(first)} and ${cellName(r)})`);
    }
  }
  return summarizeRuns({ ram_mb: first.ram_mb, file_size: first.file_size, file_size_bytes: first.file_size_bytes }, results, opts);
}

/** The values a backend measured (null: not measured, e.g. a VM backend's anon peak). */
function measured(results: TestResult[], value: (r: TestResult) => number | null | undefined): number[] {
  return results.map(value).filter((v): v is number => typeof v === "number");
}

/** As summarizeCell, for a cell given by its key (it may have no result at all, only harness errors). */
export function summarizeRuns(key: CellKey, results: TestResult[], opts: CellStatsOptions = {}): CellSummary {
  const ok = results.filter((r) => r.success);
  const failures: Record<string, number> = {};
  for (const r of results) if (!r.success) failures[r.exit_reason] = (failures[r.exit_reason] ?? 0) + 1;
  const boot = { resamples: opts.resamples, seed: opts.seed };
  const summaries = Object.fromEntries(
    CELL_METRICS.map((m) => [m, summarize(measured(ok, (r) => r[m]), boot)]),
  ) as Record<CellMetric, Summary>;
  const host = results[0]?.host;
  const threshold = opts.cvThreshold ?? DEFAULT_CV_THRESHOLD;
  const noisy = noisyMetrics(summaries, threshold);
  const warning = cvWarning(cellName(key), noisy, threshold, host, ok.map((r) => r.memory_samples));
  return {
    ...key,
    runs: results.length,
    passed: ok.length,
    failed: results.length - ok.length,
    oom: results.filter((r) => r.exit_reason === "oom_killed").length,
    failures,
    harness_errors: opts.harnessErrors ?? 0,
    ...summaries,
    noisy,
    warnings: warning ? [warning] : [],
    ...(opts.hosts ? { hosts: runHosts(results) } : {}),
  };
}

/** summarizeCell for every cell among `results`, in groupByCell's order. */
export function summarizeCells(results: TestResult[], opts: Omit<CellStatsOptions, "harnessErrors"> = {}): CellSummary[] {
  return groupByCell(results).map((group) => summarizeCell(group, opts));
}
