// Runs read back from the SQLite results log for comparisons and reports:
// the run, its results as the records run-test wrote, its harness errors,
// its floors (a ram-floor run), and its environment fingerprint.
import { existsSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import type { HostFacts } from "../upload/host.ts";
import { UsageError } from "../core/errors.ts";
import { runFingerprint, type Fingerprint } from "../stats/fingerprint.ts";
import { readResult, type TestResult } from "../upload/result.ts";
import { ResultsDb, type FloorRow, type HarnessErrorRow, type PairedRunRow } from "./results-db.ts";
import type { SideInput } from "../stats/comparison.ts";
import { command } from "../core/paths.ts";

export interface StoredRun {
  run: PairedRunRow;
  results: TestResult[];
  harnessErrors: HarnessErrorRow[];
  /** Where each result's JSON was written (the row's result_file): the files a result names sit beside it. */
  resultFiles: Map<TestResult, string | null>;
  /** A ram-floor run's floor per file size (none for other kinds). */
  floors: FloorRow[];
  fingerprint: Fingerprint;
}

/** Opens an existing results log (exit 2 when there is none: a report of nothing helps no one). */
export function openExistingDb(path: string): ResultsDb {
  if (!existsSync(path)) {
    throw new UsageError(`no results log at ${path}: give the right one with --db PATH (run-test and the matrix write it)`);
  }
  return ResultsDb.open(path);
}

/** Parses "12" as a run id for `flag`, exit 2 otherwise. */
export function parseRunId(text: string, flag: string): number {
  if (!/^[1-9][0-9]*$/.test(text)) throw new UsageError(`${flag} must be a run id (a whole number above 0), got "${text}" (e.g. ${flag} 12)`);
  return Number(text);
}

export function loadRun(db: ResultsDb, id: number, dbPath: string): StoredRun {
  const run = db.pairedRun(id);
  if (!run) {
    throw new UsageError(`run ${id} is not in ${dbPath}: list the runs with \`${command("results", "list")}\``);
  }
  // Warm-up runs are recorded but never counted: they stay out of every statistic.
  const rows = db.results(id).filter((row) => !row.warmup);
  // Records written before a field existed read as today's, with the value declared for them.
  const results = rows.map((row) => readResult(JSON.parse(row.raw_json)));
  const resultFiles = new Map(results.map((r, i) => [r, rows[i].result_file]));
  const harnessErrors = db.harnessErrors(id).filter((e) => !e.warmup);
  let host: Partial<HostFacts> = {};
  try {
    host = JSON.parse(run.host_json) as Partial<HostFacts>;
  } catch {
    // an unreadable host record: compared as unknown
  }
  return { run, results, harnessErrors, resultFiles, floors: db.floors(id), fingerprint: runFingerprint(host, run.backend, results) };
}

/**
 * Where a file a result names (log_file, timeline_file: relative to the
 * writer's folder then, or absolute) is now: as named when that exists, else
 * by its name beside the result's JSON (the results folder may have moved or
 * been copied), else relative to here; null when it is in none of them.
 */
export function findResultFile(named: string, resultFile: string | null): string | null {
  const candidates = [
    isAbsolute(named) ? named : null,
    resultFile === null ? null : join(dirname(resultFile), basename(named)),
    isAbsolute(named) ? null : resolve(named),
  ];
  return candidates.find((p): p is string => p !== null && existsSync(p)) ?? null;
}

/** The folder of the live comparison a run is a side of (its options' `dir`); null for any other run. */
function liveCompareOf(run: PairedRunRow): string | null {
  if (run.kind !== "compare-a" && run.kind !== "compare-b") return null;
  try {
    const dir = (JSON.parse(run.options_json) as { dir?: unknown }).dir;
    return typeof dir === "string" ? dir : null;
  } catch {
    return null;
  }
}

/** A stored run as one side of a comparison. */
export function sideOf(s: StoredRun, label: string): SideInput {
  const versions = [...new Set(s.results.map((r) => r.picoshare_version))];
  const shas = [...new Set(s.results.map((r) => r.picoshare_sha256))];
  return {
    label,
    run_id: s.run.id,
    picoshare_version: s.run.picoshare_version ?? (versions.length === 1 ? versions[0] : versions.join(", ") || null),
    picoshare_sha256: s.run.picoshare_sha256 ?? (shas.length === 1 ? shas[0] : null),
    fingerprint: s.fingerprint,
    results: s.results,
    harness_errors: s.harnessErrors.map((e) => ({ ram_mb: e.ram_mb, file_size: e.file_size, concurrency: e.concurrency ?? 1 })),
    live_compare: liveCompareOf(s.run),
  };
}
