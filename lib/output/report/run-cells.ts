// A stored run's cells: its results and harness errors grouped by cell, and
// each cell's statistics.
import { cellKeyOf, errorCell, resultCell, runHosts, summarizeRuns, type CellKey, type CellSummary } from "../../stats/cells.ts";
import type { ComparisonOptions } from "../../stats/comparison.ts";
import type { TestResult } from "../../upload/result.ts";
import type { StoredRun } from "../../store/stored-runs.ts";

/** A cell of a stored run: its measured results and its tests that wrote none. */
export interface CellGroup {
  key: CellKey;
  results: TestResult[];
  errors: number;
}

/** A stored run's results and harness errors by cell, largest RAM first, then smallest file first. */
export function cellGroups(s: StoredRun): CellGroup[] {
  const cells = new Map<string, CellGroup>();
  const get = (key: CellKey) => {
    const k = cellKeyOf(key);
    let c = cells.get(k);
    if (!c) cells.set(k, (c = { key, results: [], errors: 0 }));
    return c;
  };
  for (const r of s.results) get(resultCell(r)).results.push(r);
  for (const e of s.harnessErrors) get(errorCell(e)).errors++;
  return [...cells.values()].sort(
    (x, y) => y.key.ram_mb - x.key.ram_mb || x.key.file_size_bytes - y.key.file_size_bytes || (x.key.concurrency ?? 1) - (y.key.concurrency ?? 1),
  );
}

/** Every cell of a stored run, harness-error-only cells included; each names its host when the run was measured on several. */
export function runCells(s: StoredRun, opts: ComparisonOptions = {}): CellSummary[] {
  const hosts = runHosts(s.results).length > 1;
  return cellGroups(s).map((c) =>
    summarizeRuns(c.key, c.results, { seed: opts.seed, resamples: opts.resamples, cvThreshold: opts.cvThreshold, harnessErrors: c.errors, hosts }),
  );
}
