// The SQLite results log: every run and every test result, kept across runs
// so they can be listed, compared and queried (also with the sqlite3 CLI).
// This module alone reads and writes it.
import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { TestResult } from "../upload/result.ts";
import type { FloorRow, HarnessErrorRow, PairedRunRow, ResultRow, RunRow, RunStatus, RunSummaryRow } from "./rows.ts";
export type { FloorRow, HarnessErrorRow, PairedRunRow, ResultRow, RunRow, RunStatus, RunSummaryRow } from "./rows.ts";
import { FIELDS } from "../result/fields.ts";
import { sqlColumn, sqlDeclaration, sqlValue, type Field } from "../result/field.ts";
import type { Floor } from "../floor/search.ts";
import { parseSize } from "../core/sizes.ts";

type Bindable = string | number | null;
type Column = [name: string, value: (r: TestResult, resultFile: string | null) => Bindable, sql: string, migration: number];

/**
 * The results table's columns (but id): every declared field that has a
 * migration (lib/result/), and where the row came from: the result file
 * and the raw JSON, in the first shape after its fields. CREATE TABLE, the
 * ADD COLUMNs of later migrations and the INSERT are made from this list
 * (a test checks it against the table).
 */
export const RESULT_COLUMNS: Column[] = [
  ...(FIELDS as readonly Field[])
    .filter((f) => f.migration !== undefined)
    .map((f): Column => [sqlColumn(f), (r) => sqlValue(f, (r as Record<string, unknown>)[f.name] ?? f.missing), sqlDeclaration(f), f.migration!]),
  ["result_file", (_r, resultFile) => resultFile, "TEXT", 0] satisfies Column,
  ["raw_json", (r) => JSON.stringify(r), "TEXT NOT NULL", 0] satisfies Column,
].sort((x, y) => x[3] - y[3]);

/** The results columns a migration added (0: the table's first shape). */
const addedBy = (migration: number) => RESULT_COLUMNS.filter(([, , , m]) => m === migration);
/** The first shape's column lines of CREATE TABLE results. */
const firstColumns = () => addedBy(0).map(([name, , sql]) => `     ${name} ${sql}`).join(",\n");
/** A later migration's ADD COLUMN statements for the results table. */
const addedColumns = (migration: number) =>
  addedBy(migration).map(([name, , sql]) => `ALTER TABLE results ADD COLUMN ${name} ${sql};`).join("\n   ");

// Each entry moves the schema one version up; PRAGMA user_version says how
// many have been applied. Never edit an applied entry: add a new one. The
// result fields an entry adds name its number in their declaration; a field
// that names the next number past this list gets a migration of its own
// (ADDED_FIELDS below), so a new field needs no entry here.
const WRITTEN: string[] = [
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

/** Past the written migrations: one per number the declared fields name, adding their columns. */
const LAST_FIELD_MIGRATION = Math.max(...RESULT_COLUMNS.map(([, , , m]) => m));
const ADDED_FIELDS = Array.from({ length: Math.max(0, LAST_FIELD_MIGRATION + 1 - WRITTEN.length) }, (_, i) => addedColumns(WRITTEN.length + i));
const MIGRATIONS = [...WRITTEN, ...ADDED_FIELDS];

const INSERT_RESULT =
  `INSERT INTO results (${RESULT_COLUMNS.map(([c]) => c).join(", ")}) ` +
  `VALUES (${RESULT_COLUMNS.map(() => "?").join(", ")}) RETURNING id`;

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
          floor.finished ? 0 : 1, floor.probes.length, floor.seconds, JSON.stringify(floor),
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

