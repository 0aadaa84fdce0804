// lib/store/results-db.ts: the one column list the results INSERT is made
// from covers the table as the migrations leave it, column for column.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RESULT_COLUMNS, ResultsDb } from "../lib/store/results-db.ts";

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
