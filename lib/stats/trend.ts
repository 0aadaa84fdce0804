// One cell's metric over time: its median in each stored run that measured
// the cell, oldest first, with the build it measured and a mark where the
// environment or the harness differed from the run before (a step there may
// be the host's or the harness's, not PicoShare's).
import type { StoredRun } from "../store/stored-runs.ts";
import { cellKeyOf, cellName } from "./cells.ts";
import { compareFingerprints, describeDifferences } from "./fingerprint.ts";
import { COMPARED_METRICS, type ComparedMetric } from "./metrics.ts";
import { summarize } from "./stats.ts";
import { isWarmup } from "../upload/result.ts";

export interface TrendPoint {
  run_id: number;
  started_at: string;
  kind: string;
  picoshare_version: string;
  picoshare_commit: string | null;
  harness_commit: string | null;
  /** Passed measured runs of the cell. */
  n: number;
  median: number | null;
  ci95: [number, number] | null;
  /** What differs from the previous point's run (environment, harness); empty when nothing. */
  changes: string[];
}

export function trendMetric(key: string): ComparedMetric | undefined {
  return COMPARED_METRICS.find((m) => m.key === key);
}

/** The cell's metric per run, oldest first; runs without the cell are left out. */
export function cellTrend(runs: StoredRun[], cell: { ram_mb: number; file_size_bytes: number; concurrency: number }, metric: ComparedMetric): TrendPoint[] {
  const key = cellKeyOf(cell);
  const points: TrendPoint[] = [];
  let previous: { run: StoredRun; harness: string } | null = null;
  for (const s of [...runs].sort((a, b) => a.run.started_at.localeCompare(b.run.started_at) || a.run.id - b.run.id)) {
    const mine = s.results.filter((r) => cellKeyOf(r) === key && !isWarmup(r));
    if (mine.length === 0) continue;
    const ok = mine.filter((r) => r.success);
    const values = ok.map(metric.value).filter((v): v is number => v !== null).map((v) => v / metric.scale);
    const sum = summarize(values);
    const harness = harnessOf(s);
    const changes: string[] = [];
    if (previous) {
      const diffs = compareFingerprints(previous.run.fingerprint, s.fingerprint);
      if (diffs.length > 0) changes.push(`environment: ${describeDifferences(diffs)}`);
      if (previous.harness !== harness) changes.push(`harness: ${previous.harness} -> ${harness}`);
    }
    points.push({
      run_id: s.run.id, started_at: s.run.started_at, kind: s.run.kind, picoshare_version: s.run.picoshare_version ?? mine[0].picoshare_version,
      picoshare_commit: mine[0].picoshare_commit ?? null, harness_commit: mine[0].harness_commit ?? null,
      n: sum.n, median: sum.median, ci95: sum.ci95, changes,
    });
    previous = { run: s, harness };
  }
  return points;
}

/** The harness commits a run's results were measured with ("unknown" where not recorded). */
function harnessOf(s: StoredRun): string {
  return [...new Set(s.results.map((r) => (r.harness_commit ? `${r.harness_commit.slice(0, 12)}${r.harness_dirty ? " dirty" : ""}` : "unknown")))].join(", ");
}

export function trendTitle(cell: { ram_mb: number; file_size: string; concurrency: number }, metric: ComparedMetric): string {
  return `${metric.name} (${metric.unit || "count"}) of ${cellName(cell)}, median per run`;
}
