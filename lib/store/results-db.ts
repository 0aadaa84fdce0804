// The SQLite results log: every run and every test result, kept across runs
// so they can be listed, compared and queried (also with the sqlite3 CLI).
// This module alone reads and writes it.
import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { isWarmup, iterationOf, type TestResult } from "../upload/result.ts";
import type { Floor } from "../floor/search.ts";
import { parseSize } from "../core/sizes.ts";

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

/** A stored test result: the record's fields as columns (booleans as 0/1, objects as JSON), plus where it came from. */
export type ResultRow = Omit<
  TestResult,
  "success" | "verified" | "phases" | "backend_settings" | "host" | "warmup" | "test_counters" | "memory_at_peak" | "memory_pressure"
> & {
  id: number;
  success: number;
  /** 1 for a warm-up run (never counted), 0 otherwise. */
  warmup: number;
  verified: number | null;
  phases_json: string;
  backend_settings_json: string;
  host_json: string;
  test_counters_json: string | null;
  memory_at_peak_json: string | null;
  memory_pressure_json: string | null;
  result_file: string | null;
  raw_json: string;
};

type Bindable = string | number | null;
const flag = (b: boolean | null) => (b === null ? null : b ? 1 : 0);

/**
 * The results table's columns (but id), each with how it is had from a
 * record, its SQL declaration and the migration that added it (none: the
 * first). The table's CREATE, the ADD COLUMNs of later migrations and the
 * INSERT are made from this one list; a new column is a new entry here with
 * the number of the migration that adds it (a test checks the list against
 * the table).
 */
export const RESULT_COLUMNS: [name: string, value: (r: TestResult, resultFile: string | null) => Bindable, sql: string, migration?: number][] = [
  ["run_id", (r) => r.run_id, "INTEGER REFERENCES runs(id)"],
  ["timestamp", (r) => r.timestamp, "TEXT NOT NULL"],
  ["ram_mb", (r) => r.ram_mb, "INTEGER NOT NULL"],
  ["file_size", (r) => r.file_size, "TEXT NOT NULL"],
  ["file_size_mb", (r) => r.file_size_mb, "REAL NOT NULL"],
  ["file_size_bytes", (r) => r.file_size_bytes, "INTEGER NOT NULL"],
  ["duration_seconds", (r) => r.duration_seconds, "REAL NOT NULL"],
  ["throughput_mbps", (r) => r.throughput_mbps, "REAL NOT NULL"],
  ["initial_memory_bytes", (r) => r.initial_memory_bytes, "INTEGER NOT NULL"],
  ["peak_memory_bytes", (r) => r.peak_memory_bytes, "INTEGER NOT NULL"],
  ["peak_memory_mb", (r) => r.peak_memory_mb, "INTEGER NOT NULL"],
  ["http_status", (r) => r.http_status, "TEXT NOT NULL"],
  ["exit_reason", (r) => r.exit_reason, "TEXT NOT NULL"],
  ["success", (r) => flag(r.success), "INTEGER NOT NULL"],
  ["backend", (r) => r.backend, "TEXT NOT NULL"],
  ["picoshare_version", (r) => r.picoshare_version, "TEXT NOT NULL"],
  ["picoshare_sha256", (r) => r.picoshare_sha256, "TEXT NOT NULL"],
  ["kernel_peak_memory_bytes", (r) => r.kernel_peak_memory_bytes, "INTEGER"],
  ["picoshare_peak_rss_bytes", (r) => r.picoshare_peak_rss_bytes, "INTEGER"],
  ["harness_peak_rss_bytes", (r) => r.harness_peak_rss_bytes, "INTEGER NOT NULL"],
  ["memory_samples", (r) => r.memory_samples, "INTEGER NOT NULL"],
  ["memory_sample_interval_ms", (r) => r.memory_sample_interval_ms, "INTEGER NOT NULL"],
  ["oom_kills", (r) => r.oom_kills, "INTEGER NOT NULL"],
  ["entry_id", (r) => r.entry_id, "TEXT"],
  ["verified", (r) => flag(r.verified), "INTEGER"],
  ["error", (r) => r.error, "TEXT"],
  ["phases_json", (r) => JSON.stringify(r.phases), "TEXT NOT NULL"],
  ["backend_settings_json", (r) => JSON.stringify(r.backend_settings), "TEXT NOT NULL"],
  ["host_json", (r) => JSON.stringify(r.host), "TEXT NOT NULL"],
  ["log_file", (r) => r.log_file, "TEXT"],
  ["result_file", (_r, resultFile) => resultFile, "TEXT"],
  ["raw_json", (r) => JSON.stringify(r), "TEXT NOT NULL"],
  ["iteration", (r) => iterationOf(r), "INTEGER NOT NULL DEFAULT 1", 3],
  ["warmup", (r) => flag(isWarmup(r)), "INTEGER NOT NULL DEFAULT 0", 3],
  ["cpu_user_seconds", (r) => r.cpu_user_seconds ?? null, "REAL", 4],
  ["cpu_system_seconds", (r) => r.cpu_system_seconds ?? null, "REAL", 4],
  ["disk_write_bytes", (r) => r.disk_write_bytes ?? null, "INTEGER", 4],
  ["disk_write_cancelled_bytes", (r) => r.disk_write_cancelled_bytes ?? null, "INTEGER", 4],
  ["disk_read_bytes", (r) => r.disk_read_bytes ?? null, "INTEGER", 4],
  ["write_amplification", (r) => r.write_amplification ?? null, "REAL", 4],
  ["write_syscalls", (r) => r.write_syscalls ?? null, "INTEGER", 4],
  ["read_syscalls", (r) => r.read_syscalls ?? null, "INTEGER", 4],
  ["major_faults", (r) => r.major_faults ?? null, "INTEGER", 4],
  ["minor_faults", (r) => r.minor_faults ?? null, "INTEGER", 4],
  ["data_dir_bytes", (r) => r.data_dir_bytes ?? null, "INTEGER", 4],
  ["temp_files_left", (r) => r.temp_files_left ?? null, "INTEGER", 4],
  ["test_counters_json", (r) => (r.test_counters ? JSON.stringify(r.test_counters) : null), "TEXT", 4],
  ["anon_peak_bytes", (r) => r.anon_peak_bytes ?? null, "INTEGER", 4],
  ["memory_at_peak_json", (r) => (r.memory_at_peak ? JSON.stringify(r.memory_at_peak) : null), "TEXT", 4],
  ["memory_pressure_json", (r) => (r.memory_pressure ? JSON.stringify(r.memory_pressure) : null), "TEXT", 4],
  ["picoshare_go_version", (r) => r.picoshare_go_version ?? null, "TEXT", 5],
  ["picoshare_source", (r) => r.picoshare_source ?? null, "TEXT", 5],
  ["picoshare_commit", (r) => r.picoshare_commit ?? null, "TEXT", 5],
  ["picoshare_dirty", (r) => flag(r.picoshare_dirty ?? null), "INTEGER", 5],
  ["harness_commit", (r) => r.harness_commit ?? null, "TEXT", 5],
  ["harness_dirty", (r) => flag(r.harness_dirty ?? null), "INTEGER", 5],
  ["go_runtime_env_json", (r) => (r.go_runtime_env ? JSON.stringify(r.go_runtime_env) : null), "TEXT", 5],
  ["cgroup_version", (r) => r.cgroup_version ?? null, "TEXT", 5],
  ["cpu_seconds", (r) => r.cpu_seconds ?? null, "REAL", 5],
  ["instructions", (r) => r.instructions ?? null, "INTEGER", 5],
  ["caches_dropped", (r) => flag(r.caches_dropped ?? false), "INTEGER NOT NULL DEFAULT 0", 5],
  ["environment_probe_json", (r) => (r.environment_probe ? JSON.stringify(r.environment_probe) : null), "TEXT", 5],
  ["download_duration_seconds", (r) => r.download_duration_seconds ?? null, "REAL", 6],
  ["download_throughput_mbps", (r) => r.download_throughput_mbps ?? null, "REAL", 6],
  ["download_peak_memory_bytes", (r) => r.download_peak_memory_bytes ?? null, "INTEGER", 6],
  ["download_counters_json", (r) => (r.download_counters ? JSON.stringify(r.download_counters) : null), "TEXT", 6],
  ["download_exit_reason", (r) => r.download_exit_reason ?? null, "TEXT", 6],
  ["download_error", (r) => r.download_error ?? null, "TEXT", 6],
  ["upload_transfer_seconds", (r) => r.upload_transfer_seconds ?? null, "REAL", 7],
  ["upload_processing_seconds", (r) => r.upload_processing_seconds ?? null, "REAL", 7],
  ["upload_body_sent_seconds", (r) => r.upload_body_sent_seconds ?? null, "REAL", 7],
  ["concurrency", (r) => r.concurrency ?? 1, "INTEGER NOT NULL DEFAULT 1", 7],
  ["timeline_file", (r) => r.timeline_file ?? null, "TEXT", 7],
  ["recovery_json", (r) => (r.recovery ? JSON.stringify(r.recovery) : null), "TEXT", 7],
  ["proxy_json", (r) => (r.proxy ? JSON.stringify(r.proxy) : null), "TEXT", 7],
];

/** The results columns a migration added (0: the table's first shape). */
const addedBy = (migration: number) => RESULT_COLUMNS.filter(([, , , m]) => (m ?? 0) === migration);
/** The first shape's column lines of CREATE TABLE results. */
const firstColumns = () => addedBy(0).map(([name, , sql]) => `     ${name} ${sql}`).join(",\n");
/** A later migration's ADD COLUMN statements for the results table. */
const addedColumns = (migration: number) =>
  addedBy(migration).map(([name, , sql]) => `ALTER TABLE results ADD COLUMN ${name} ${sql};`).join("\n   ");

// Each entry moves the schema one version up; PRAGMA user_version says how
// many have been applied. Never edit an applied entry: add a new one (the
// results columns it adds go in RESULT_COLUMNS with its number).
const MIGRATIONS: string[] = [
  `CREATE TABLE runs (
     id INTEGER PRIMARY KEY,
     kind TEXT NOT NULL,
     started_at TEXT NOT NULL,
     finished_at TEXT,
     status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'interrupted')),
     backend TEXT NOT NULL,
     results_dir TEXT,
     picoshare_version TEXT,
     picoshare_sha256 TEXT,
     options_json TEXT NOT NULL,
     host_json TEXT NOT NULL
   );
   CREATE TABLE results (
     id INTEGER PRIMARY KEY,
${firstColumns()}
   );
   CREATE INDEX results_run ON results(run_id);`,
  // A matrix cell whose run-test crashed or refused (no result written): kept
  // so that a run's record is as complete as its CSV.
  `CREATE TABLE harness_errors (
     id INTEGER PRIMARY KEY,
     run_id INTEGER NOT NULL REFERENCES runs(id),
     timestamp TEXT NOT NULL,
     ram_mb INTEGER NOT NULL,
     file_size TEXT NOT NULL,
     exit_reason TEXT NOT NULL,
     error TEXT NOT NULL,
     exit_code INTEGER,
     signal TEXT,
     log_file TEXT
   );
   CREATE INDEX harness_errors_run ON harness_errors(run_id);`,
  // A live A/B comparison (scripts/compare.ts) stores each side as a run of
  // its own (kind 'compare-a' / 'compare-b'): the side's label, and the run
  // of the other side.
  `ALTER TABLE runs ADD COLUMN label TEXT;
   ALTER TABLE runs ADD COLUMN paired_run_id INTEGER REFERENCES runs(id);`,
  // Repeated tests (--iterations, --warmup): which of a cell's tests a result
  // (or a harness error) is, warm-ups first, and whether it was a warm-up run,
  // recorded but never counted. Rows from before are iteration 1, measured.
  `${addedColumns(3)}
   ALTER TABLE harness_errors ADD COLUMN iteration INTEGER NOT NULL DEFAULT 1;
   ALTER TABLE harness_errors ADD COLUMN warmup INTEGER NOT NULL DEFAULT 0;`,
  // Kernel counters of PicoShare's processes for the upload phase, what the
  // upload left on disk, and the whole test's counters (null before, and
  // where a backend cannot read them).
  `${addedColumns(4)}`,
  // What could explain a change that is not PicoShare's: how PicoShare was
  // built (Go release; source tree, commit, dirty), the harness's own commit,
  // the Go runtime variables PicoShare ran with, the cgroup version; and the
  // noise control before the test (caches dropped, the environment probe).
  `${addedColumns(5)}`,
  // The measured download after the upload (null with --no-download, and before).
  `${addedColumns(6)}`,
  // Where the upload's time went (transfer, processing), parallel uploads
  // (a cell is RAM, size and concurrency: harness errors say theirs too), the
  // memory timeline's file, recovery after a failure, the proxy in front.
  `${addedColumns(7)}
   ALTER TABLE harness_errors ADD COLUMN concurrency INTEGER NOT NULL DEFAULT 1;`,
  // A RAM-floor search's floor per file size (find-ram-floor; its probes are
  // the run's results): the bracket and how its lower end failed as columns
  // for queries, the whole floor (probes included) as JSON.
  `CREATE TABLE floors (
     id INTEGER PRIMARY KEY,
     run_id INTEGER NOT NULL REFERENCES runs(id),
     file_size TEXT NOT NULL,
     file_size_bytes INTEGER NOT NULL,
     lowest_passing_mb INTEGER,
     highest_failing_mb INTEGER,
     failure TEXT,
     unfinished INTEGER NOT NULL,
     probes INTEGER NOT NULL,
     seconds REAL NOT NULL,
     floor_json TEXT NOT NULL,
     UNIQUE (run_id, file_size)
   );`,
];


const INSERT_RESULT =
  `INSERT INTO results (${RESULT_COLUMNS.map(([c]) => c).join(", ")}) ` +
  `VALUES (${RESULT_COLUMNS.map(() => "?").join(", ")}) RETURNING id`;

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

export const SCHEMA_VERSION = MIGRATIONS.length;

export class ResultsDb {
  private constructor(readonly db: Database) {}

  static open(path: string): ResultsDb {
    mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path, { create: true, strict: true });
    // Wait for another writer instead of failing with "database is locked".
    db.exec("PRAGMA busy_timeout = 15000");
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA foreign_keys = ON");
    const store = new ResultsDb(db);
    store.migrate();
    return store;
  }

  private migrate(): void {
    // BEGIN IMMEDIATE takes the write lock first, so two processes opening a
    // new database never both apply the same migration.
    this.db.transaction(() => {
      const current = (this.db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
      if (current > MIGRATIONS.length) {
        throw new Error(`results database schema v${current} is newer than this harness (v${MIGRATIONS.length}): update the harness`);
      }
      for (let v = current; v < MIGRATIONS.length; v++) this.db.exec(MIGRATIONS[v]);
      this.db.exec(`PRAGMA user_version = ${MIGRATIONS.length}`);
    }).immediate();
  }

  startRun(run: {
    kind: string;
    startedAt: string;
    backend: string;
    resultsDir: string | null;
    picoshareVersion: string | null;
    picoshareSha256: string | null;
    options: unknown;
    host: unknown;
  }): number {
    return this.db.transaction(() => {
      const row = this.db
        .query(
          `INSERT INTO runs (kind, started_at, status, backend, results_dir, picoshare_version, picoshare_sha256, options_json, host_json)
           VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?) RETURNING id`,
        )
        .get(
          run.kind, run.startedAt, run.backend, run.resultsDir, run.picoshareVersion, run.picoshareSha256,
          JSON.stringify(run.options), JSON.stringify(run.host),
        ) as { id: number };
      return row.id;
    }).immediate();
  }

  setRunStatus(id: number, status: RunStatus, finishedAt: string | null): void {
    this.db.transaction(() => {
      this.db.query("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?").run(status, finishedAt, id);
    }).immediate();
  }

  addResult(result: TestResult, resultFile: string | null): number {
    return this.db.transaction(() => {
      const values = RESULT_COLUMNS.map(([, value]) => value(result, resultFile));
      return (this.db.query(INSERT_RESULT).get(...values) as { id: number }).id;
    }).immediate();
  }

  listRuns(limit = 50): RunRow[] {
    return this.db.query("SELECT * FROM runs ORDER BY id DESC LIMIT ?").all(limit) as RunRow[];
  }

  run(id: number): RunRow | null {
    return (this.db.query("SELECT * FROM runs WHERE id = ?").get(id) as RunRow | null) ?? null;
  }

  results(runId: number | null): ResultRow[] {
    return (
      runId === null
        ? this.db.query("SELECT * FROM results WHERE run_id IS NULL ORDER BY id").all()
        : this.db.query("SELECT * FROM results WHERE run_id = ? ORDER BY id").all(runId)
    ) as ResultRow[];
  }

  /** Runs, newest first, each with its passed / failed results and harness errors counted (warm-ups left out). */
  listRunSummaries(limit = 50): RunSummaryRow[] {
    return this.db
      .query(
        `SELECT runs.*,
           (SELECT COUNT(*) FROM results r WHERE r.run_id = runs.id AND r.success = 1 AND r.warmup = 0) AS passed,
           (SELECT COUNT(*) FROM results r WHERE r.run_id = runs.id AND r.success = 0 AND r.warmup = 0) AS failed,
           (SELECT COUNT(*) FROM harness_errors h WHERE h.run_id = runs.id AND h.warmup = 0) AS harness_errors
         FROM runs ORDER BY id DESC LIMIT ?`,
      )
      .all(limit) as RunSummaryRow[];
  }

  /** Whether a result written to `resultFile` is already recorded for run `runId`. */
  hasResultFile(runId: number, resultFile: string): boolean {
    return this.db.query("SELECT 1 FROM results WHERE run_id = ? AND result_file = ?").get(runId, resultFile) !== null;
  }

  addHarnessError(e: Omit<HarnessErrorRow, "id" | "iteration" | "warmup" | "concurrency"> & { iteration?: number; warmup?: boolean; concurrency?: number }): number {
    return this.db.transaction(() => {
      const row = this.db
        .query(
          `INSERT INTO harness_errors (run_id, timestamp, ram_mb, file_size, exit_reason, error, exit_code, signal, log_file, iteration, warmup, concurrency)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
        )
        .get(
          e.run_id, e.timestamp, e.ram_mb, e.file_size, e.exit_reason, e.error, e.exit_code, e.signal, e.log_file,
          e.iteration ?? 1, e.warmup ? 1 : 0, e.concurrency ?? 1,
        ) as {
        id: number;
      };
      return row.id;
    }).immediate();
  }

  /** Forgets a cell's harness errors (once the cell has been run again): those of one iteration, or all of them. */
  clearHarnessErrors(runId: number, ramMb: number, fileSize: string, iteration?: number, concurrency = 1): void {
    this.db.transaction(() => {
      if (iteration === undefined) {
        this.db
          .query("DELETE FROM harness_errors WHERE run_id = ? AND ram_mb = ? AND file_size = ? AND concurrency = ?")
          .run(runId, ramMb, fileSize, concurrency);
      } else {
        this.db
          .query("DELETE FROM harness_errors WHERE run_id = ? AND ram_mb = ? AND file_size = ? AND iteration = ? AND concurrency = ?")
          .run(runId, ramMb, fileSize, iteration, concurrency);
      }
    }).immediate();
  }

  harnessErrors(runId: number): HarnessErrorRow[] {
    return this.db.query("SELECT * FROM harness_errors WHERE run_id = ? ORDER BY id").all(runId) as HarnessErrorRow[];
  }

  /** Records a size's floor for a ram-floor run; the size's earlier floor in that run, if any, is replaced. */
  addFloor(runId: number, floor: Floor): number {
    return this.db.transaction(() => {
      const row = this.db
        .query(
          `INSERT OR REPLACE INTO floors (run_id, file_size, file_size_bytes, lowest_passing_mb, highest_failing_mb, failure, unfinished, probes, seconds, floor_json)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
        )
        .get(
          runId, floor.file_size, parseSize(floor.file_size).bytes, floor.lowest_passing_mb, floor.highest_failing_mb, floor.failure,
          flag(!floor.finished), floor.probes.length, floor.seconds, JSON.stringify(floor),
        ) as { id: number };
      return row.id;
    }).immediate();
  }

  /** A run's floors, smallest file first. */
  floors(runId: number): FloorRow[] {
    return this.db.query("SELECT * FROM floors WHERE run_id = ? ORDER BY file_size_bytes, id").all(runId) as FloorRow[];
  }

  /** Names a run's side of a comparison and links it with the other side's run (both ways). */
  pairRuns(a: { id: number; label: string }, b: { id: number; label: string }): void {
    this.db.transaction(() => {
      const q = this.db.query("UPDATE runs SET label = ?, paired_run_id = ? WHERE id = ?");
      q.run(a.label, b.id, a.id);
      q.run(b.label, a.id, b.id);
    }).immediate();
  }

  /** Labels a comparison side and names the run it is compared with (a further candidate against A). */
  labelRun(id: number, label: string, pairedRunId: number): void {
    this.db.query("UPDATE runs SET label = ?, paired_run_id = ? WHERE id = ?").run(label, pairedRunId, id);
  }

  /** A run with its comparison label and paired run (null for runs that are not a comparison's side). */
  pairedRun(id: number): PairedRunRow | null {
    return (this.db.query("SELECT * FROM runs WHERE id = ?").get(id) as PairedRunRow | null) ?? null;
  }

  /** The runs of `kind` that name run `id` as theirs (a matrix's control run), oldest first. */
  runsPairedWith(id: number, kind: string): PairedRunRow[] {
    return this.db.query("SELECT * FROM runs WHERE paired_run_id = ? AND kind = ? ORDER BY id").all(id, kind) as PairedRunRow[];
  }

  close(): void {
    this.db.close();
  }
}

/** A run as stored since schema v3: with the label and paired run of a comparison's side. */
export type PairedRunRow = RunRow & { label: string | null; paired_run_id: number | null };
