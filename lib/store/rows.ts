// The rows of the results log's tables as SQLite returns them (lib/store/results-db.ts reads and writes them).

export type RunStatus = "running" | "complete" | "interrupted";

export interface RunRow {
  id: number;
  kind: string;
  started_at: string;
  finished_at: string | null;
  status: RunStatus;
  backend: string;
  results_dir: string | null;
  picoshare_version: string | null;
  picoshare_sha256: string | null;
  options_json: string;
  host_json: string;
}

/**
 * A stored test result: each stored field as its column (booleans as 0/1,
 * records as JSON text in NAME_json), plus where it came from.
 */
export type ResultRow = Record<string, string | number | null> & {
  id: number;
  run_id: number | null;
  timestamp: string;
  ram_mb: number;
  file_size: string;
  http_status: string;
  exit_reason: string;
  success: number;
  /** 1 for a warm-up run (never counted), 0 otherwise. */
  warmup: number;
  iteration: number;
  result_file: string | null;
  raw_json: string;
};

/** A matrix cell for which run-test wrote no result (it crashed, or refused with exit 2). */
export interface HarnessErrorRow {
  id: number;
  run_id: number;
  timestamp: string;
  ram_mb: number;
  file_size: string;
  exit_reason: string;
  error: string;
  exit_code: number | null;
  signal: string | null;
  log_file: string | null;
  /** Which of the cell's tests (warm-ups first), 1 when the cell ran once. */
  iteration: number;
  /** 1 for a warm-up run (never counted), 0 otherwise. */
  warmup: number;
  /** The cell's uploads at once (1 before migration 7). */
  concurrency: number;
}

/** One file size's RAM floor as stored (table floors). */
export interface FloorRow {
  id: number;
  run_id: number;
  file_size: string;
  file_size_bytes: number;
  /** The lowest limit at which every run passed (null: not even --max). */
  lowest_passing_mb: number | null;
  /** The highest limit below it at which a run failed (null: --min passed). */
  highest_failing_mb: number | null;
  /** How that limit's failing run ended (oom_killed, thrashing, ...). */
  failure: string | null;
  /** 1 when the search stopped on its time limit (--max-minutes). */
  unfinished: number;
  probes: number;
  seconds: number;
  /** The whole Floor record. */
  floor_json: string;
}

/** A run with its tally of results (warm-up runs not counted). */
export type RunSummaryRow = RunRow & { passed: number; failed: number; harness_errors: number };

/** A run as stored since schema v3: with the label and paired run of a comparison's side. */
export type PairedRunRow = RunRow & { label: string | null; paired_run_id: number | null };
