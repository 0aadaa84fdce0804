// lib/result/: the declared fields are the one source of the record's
// columns, CSVs, summary columns, cell statistics, compared metrics and the
// docs' reference; the original's CSV header stays as it was; old records read.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { FIELDS, NO_VALUES, readResult } from "../lib/result/fields.ts";
import { REFERENCE_END, REFERENCE_PAGE, REFERENCE_START, referenceTable } from "../lib/result/reference.ts";
import { COUNTERS_CSV_COLUMNS, MATRIX_CSV_HEADER, rowFromResult } from "../lib/store/csv.ts";
import { COMPARED_METRICS, DERIVED_METRICS } from "../lib/stats/metrics.ts";
import { CELL_METRICS } from "../lib/stats/cells.ts";
import { RESULT_COLUMNS } from "../lib/store/results-db.ts";
import { resultsTable } from "../lib/output/summary.ts";
import { fakeResult } from "./helpers/results.ts";

test("docs/result-fields.md holds the table made from the declarations (bun scripts/result-fields.ts --write)", () => {
  const page = readFileSync(REFERENCE_PAGE, "utf8");
  const inside = page.slice(page.indexOf(REFERENCE_START) + REFERENCE_START.length, page.indexOf(REFERENCE_END)).trim();
  expect(inside).toBe(referenceTable());
  for (const f of FIELDS) expect(inside).toContain(`| \`${f.name}\` |`);
});

test("the original's matrix CSV header is exactly as it was", () => {
  expect(MATRIX_CSV_HEADER).toBe("ram_mb,file_size,duration_seconds,throughput_mbps,peak_memory_mb,http_status,exit_reason,success,result_file");
});

test("every field is declared once, with a meaning and a source; every stored one has a column", () => {
  const names = FIELDS.map((f) => f.name);
  expect(new Set(names).size).toBe(names.length);
  for (const f of FIELDS) {
    expect(f.doc.length).toBeGreaterThan(10);
    expect(f.source.length).toBeGreaterThan(2);
  }
  const columns = RESULT_COLUMNS.map(([c]) => c);
  for (const f of FIELDS.filter((x) => "migration" in x)) expect(columns).toContain(f.kind === "json" ? `${f.name}_json` : f.name);
  // A column added to a table with rows needs a value for them.
  for (const [name, , sql, migration] of RESULT_COLUMNS) if (migration > 0 && sql.includes("NOT NULL")) expect(`${name}: ${sql}`).toContain("DEFAULT");
});

test("the lists others use come from the declarations, in their order", () => {
  const declared = (key: string) => FIELDS.filter((f) => key in f).map((f) => f.name as string);
  expect(COUNTERS_CSV_COLUMNS.slice(4, -1)).toEqual(FIELDS.filter((f) => "csv" in f && f.csv === "counters").map((f) => f.name));
  expect([...CELL_METRICS] as string[]).toEqual(declared("cell"));
  expect(COMPARED_METRICS.map((m) => m.key).sort()).toEqual(FIELDS.flatMap((f) => (f.compare ? [f.compare.key] : [])).sort());
  expect(COMPARED_METRICS.findIndex((m) => m.family === "secondary")).toBe(COMPARED_METRICS.filter((m) => m.family === "primary").length);
  expect(DERIVED_METRICS.map((m) => m.key)).toEqual(["duration", "write_amplification"]);
  // summary.txt's measured columns, between the cell's and the outcome's.
  const header = resultsTable([rowFromResult(fakeResult({}), null)]).split("\n")[0];
  expect(header).toMatch(/RAM \(MB\)\s+File\s+Duration \(s\)\s+Throughput \(MB\/s\)\s+Peak memory \(MB\)\s+PicoShare RSS \(MB\)\s+Anon peak \(MB\)\s+HTTP/);
});

test("a record written before later fields existed reads with their declared values", () => {
  const old = { ram_mb: 256, file_size: "1G", duration_seconds: 2, throughput_mbps: 512, success: true };
  const r = readResult(old);
  expect(r.concurrency).toBe(1);
  expect(r.iteration).toBe(1);
  expect(r.warmup).toBe(false);
  expect(r.caches_dropped).toBe(false);
  expect(r.upload_durations_seconds).toEqual([]);
  expect(r.cpu_seconds).toBeNull();
  expect(r.download_counters).toBeNull();
  expect(r.throughput_mbps).toBe(512);
  // A field the record has keeps its value.
  expect(readResult({ ...old, concurrency: 3 }).concurrency).toBe(3);
  // The base records are built on: a value for every field a record may lack, and none for those it must have.
  expect(NO_VALUES.cpu_seconds).toBeNull();
  expect(NO_VALUES.concurrency).toBe(1);
  expect("ram_mb" in NO_VALUES).toBe(false);
});
