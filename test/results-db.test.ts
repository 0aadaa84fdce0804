// lib/store/results-db.ts: the one column list the results INSERT is made
// from covers the table as the migrations leave it, column for column; the
// floors of ram-floor runs, and the migration that adds their table.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RESULT_COLUMNS, ResultsDb, SCHEMA_VERSION } from "../lib/store/results-db.ts";
import { RAM_FLOOR_KIND, type Floor } from "../lib/floor/search.ts";

test("RESULT_COLUMNS names every column of a fresh results table but id, once each", () => {
  const dir = mkdtempSync(join(tmpdir(), "results-db-spec-"));
  try {
    const db = ResultsDb.open(join(dir, "results.db"));
    const table = (db.db.query("PRAGMA table_info(results)").all() as { name: string }[]).map((c) => c.name);
    db.close();
    const listed = RESULT_COLUMNS.map(([c]) => c);
    expect(new Set(listed).size).toBe(listed.length);
    expect([...listed].sort()).toEqual(table.filter((c) => c !== "id").sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A size's floor as find-ram-floor records it. */
function floor(size: string, lowest: number | null, highest: number | null, finished = true): Floor {
  return {
    file_size: size, lowest_passing_mb: lowest, highest_failing_mb: highest, failure: highest === null ? null : "oom_killed", finished,
    probes: [{ ram_mb: 2048, passed: true, outcome: "success", upload_seconds: 1, wall_seconds: 2, repeat: false, result_file: null }],
    reference_upload_seconds: 1, thrash_limit_seconds: 5, seconds: 12.5,
  };
}

test("floors: one row per run and size (a size found again replaces it), smallest file first, the whole floor kept", () => {
  const dir = mkdtempSync(join(tmpdir(), "results-db-spec-"));
  try {
    const db = ResultsDb.open(join(dir, "results.db"));
    const run = db.startRun({ kind: RAM_FLOOR_KIND, startedAt: "2026-01-29T12:00:00+00:00", backend: "local", resultsDir: dir, picoshareVersion: "v1.5.4", picoshareSha256: null, options: {}, host: {} });
    const other = db.startRun({ kind: RAM_FLOOR_KIND, startedAt: "2026-01-29T12:00:00+00:00", backend: "local", resultsDir: dir, picoshareVersion: "v1.5.4", picoshareSha256: null, options: {}, host: {} });
    db.addFloor(run, floor("1G", 40, 32, false));
    db.addFloor(run, floor("100M", 16, null));
    db.addFloor(other, floor("100M", 24, 16));
    db.addFloor(run, floor("1G", 48, 40));
    const rows = db.floors(run);
    expect(rows.map(({ id: _id, floor_json: _j, ...r }) => r)).toEqual([
      { run_id: run, file_size: "100M", file_size_bytes: 100 * 1024 * 1024, lowest_passing_mb: 16, highest_failing_mb: null, failure: null, unfinished: 0, probes: 1, seconds: 12.5 },
      { run_id: run, file_size: "1G", file_size_bytes: 1024 * 1024 * 1024, lowest_passing_mb: 48, highest_failing_mb: 40, failure: "oom_killed", unfinished: 0, probes: 1, seconds: 12.5 },
    ]);
    expect(JSON.parse(rows[1].floor_json)).toEqual(floor("1G", 48, 40));
    expect(db.floors(other).map((r) => r.lowest_passing_mb)).toEqual([24]);
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const FLOORS_MIGRATION = 8;

test("a results log of the schema before floors gets the floors table when opened, its runs kept", () => {
  const dir = mkdtempSync(join(tmpdir(), "results-db-spec-"));
  try {
    const path = join(dir, "results.db");
    const db = ResultsDb.open(path);
    expect((db.db.query("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION);
    const run = db.startRun({ kind: "matrix", startedAt: "2026-01-29T12:00:00+00:00", backend: "local", resultsDir: dir, picoshareVersion: null, picoshareSha256: null, options: {}, host: {} });
    // Back to the schema as it was before the floors migration: the columns of the fields added since go too.
    for (const [column, , , m] of RESULT_COLUMNS) if (m > FLOORS_MIGRATION) db.db.exec(`ALTER TABLE results DROP COLUMN ${column}`);
    db.db.exec(`DROP TABLE floors; PRAGMA user_version = ${FLOORS_MIGRATION}`);
    db.close();
    const again = ResultsDb.open(path);
    expect((again.db.query("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION);
    expect(again.run(run)?.kind).toBe("matrix");
    expect(again.floors(run)).toEqual([]);
    again.addFloor(run, floor("8M", 16, 8));
    expect(again.floors(run)).toHaveLength(1);
    again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
