// scripts/results.ts: listing runs and showing one, read from a results log
// that real matrices wrote.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { $ } from "zx";
import { runScript, startScript, waitFor } from "./helpers/run.ts";
import { CSV_HEADER, makeFixture, matrixArgs, matrixDirs, newCase, parseCsv, type Case, type Fixture } from "./helpers/matrix.ts";

setDefaultTimeout(120_000);

let f: Fixture;
let c: Case;
let db: string;
const dirs: string[] = [];

beforeAll(async () => {
  f = await makeFixture("results-cli-spec", ["4M", "8M"]);
  c = newCase(f);
  // A results folder whose name needs CSV quoting: a comma and a double quote.
  c.results = join(c.base, 'res,"q"');
  db = join(c.results, "results.db");
  // Run 1: two cells pass. Run 2: one passes, one has no result (its file vanishes).
  const first = await runScript("run-test-matrix", matrixArgs(f, c, "--memory-limits", "256,128", "--file-sizes", "4M"));
  if (first.code !== 0) throw new Error(first.stderr);
  const files = join(c.base, "files");
  mkdirSync(files);
  for (const n of ["4M.bin", "8M.bin"]) copyFileSync(join(f.files, n), join(files, n));
  const second = startScript("run-test-matrix", [...matrixArgs(f, c, "--memory-limits", "256", "--file-sizes", "8M,4M"), "--test-files", files]);
  await waitFor("the first cell", () => second.stderr().includes("[1/2] Running"));
  rmSync(join(files, "4M.bin"));
  if ((await second.done).code !== 1) throw new Error("the second matrix should fail");
  dirs.push(...matrixDirs(c.results).sort());
}, 300_000);
afterAll(() => rmSync(f.root, { recursive: true, force: true }));

const results = (...args: string[]) => runScript("results", [...args, "--db", db]);

describe("list", () => {
  test("runs newest first as an aligned table with passed and failed counts", async () => {
    const ran = await results("list");
    expect(ran.code).toBe(0);
    const lines = ran.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+Kind\s+Started\s+Status\s+Backend\s+PicoShare\s+Passed\s+Failed$/);
    expect(lines[1]).toMatch(/^[- ]+$/);
    expect(lines[2]).toMatch(/^ 2\s+matrix\s+\d{4}-\d\d-\d\dT\S+\s+complete\s+local\s+v1\.5\.4\s+1\s+1$/);
    expect(lines[3]).toMatch(/^ 1\s+matrix\s+\S+\s+complete\s+local\s+v1\.5\.4\s+2\s+0$/);
    // Aligned: text columns start, and count columns end, at the same offset on every line.
    for (const col of ["Kind", "Status", "PicoShare"]) {
      const at = lines[0].indexOf(col);
      expect(lines.slice(2).every((l) => l[at - 1] === " " && l[at] !== " ")).toBe(true);
    }
    const end = lines[0].indexOf("Passed") + "Passed".length - 1;
    expect(lines.slice(2).every((l) => l[end] !== " " && l[end + 1] === " ")).toBe(true);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
  });
});

describe("show", () => {
  test("a run's results as a table, harness errors included", async () => {
    const ran = await results("show", "2");
    expect(ran.code).toBe(0);
    expect(ran.stdout).toMatch(/^Run 2: matrix, complete, started /);
    expect(ran.stdout).toContain("Tests: 2, passed 1, failed 1");
    expect(ran.stdout).toMatch(/RAM \(MB\)\s+File\s+Duration \(s\)\s+Throughput \(MB\/s\)\s+Peak memory \(MB\)\s+PicoShare RSS \(MB\)\s+Anon peak \(MB\)\s+HTTP\s+Result\s+Exit reason/);
    expect(ran.stdout).toMatch(/^\s+256\s+8M\s+[\d.]+\s+[\d.]+\s+\d+\s+\d+\s+\d+\s+200\s+PASS\s+success$/m);
    expect(ran.stdout).toMatch(/^\s+256\s+4M\s+-\s+-\s+-\s+-\s+-\s+-\s+FAIL\s+harness_error$/m);
    expect(ran.stdout).toMatch(/256MB\/4M: harness_error: run-test exited with code 2/);
  });

  test("--csv is the matrix's own CSV, byte for byte, quoting included", async () => {
    for (const [id, dir] of [["1", dirs[0]], ["2", dirs[1]]]) {
      const ran = await results("show", id, "--csv");
      expect(ran.code).toBe(0);
      expect(ran.stdout).toBe(readFileSync(join(dir, "matrix-results.csv"), "utf8"));
    }
    const csv = (await results("show", "1", "--csv")).stdout;
    expect(csv.split("\n")[0]).toBe(CSV_HEADER);
    expect(csv).toContain(`"${c.base}/res,""q""/matrix-`);
    const rows = parseCsv(csv).slice(1);
    expect(rows.map((r) => r.slice(0, 2))).toEqual([["256", "4M"], ["128", "4M"]]);
    for (const r of rows) expect(JSON.parse(readFileSync(r[8], "utf8")).run_id).toBe(1);
    const second = parseCsv((await results("show", "2", "--csv")).stdout).slice(1);
    expect(second.map((r) => [r[1], r[6], r[8]])).toEqual([["8M", "success", second[0][8]], ["4M", "harness_error", ""]]);
  });

  test("--json: the run with its options, the full result records and the harness errors", async () => {
    const ran = await results("show", "2", "--json");
    expect(ran.code).toBe(0);
    const out = JSON.parse(ran.stdout);
    expect(out.run).toMatchObject({ id: 2, kind: "matrix", status: "complete", options: { memory_limits: [256], file_sizes: ["8M", "4M"] } });
    expect(out.results).toHaveLength(1);
    expect(out.results[0]).toMatchObject({ run_id: 2, file_size: "8M", success: true });
    expect(out.results[0].phases.upload).toBeGreaterThan(0);
    expect(out.harness_errors).toMatchObject([{ run_id: 2, file_size: "4M", exit_code: 2 }]);
  });

  test("an unknown run: exit 2, one clear line", async () => {
    const ran = await results("show", "99");
    expect(ran.code).toBe(2);
    expect(ran.stdout).toBe("");
    const lines = ran.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ERROR: no run 99 in the results log: see `bun scripts\/results\.ts list`/);
  });

  test("bad usage: exit 2", async () => {
    for (const args of [[], ["show"], ["show", "abc"], ["list", "3"], ["frobnicate"], ["show", "1", "--csv", "--json"]]) {
      const ran = await results(...args);
      expect({ args, code: ran.code }).toEqual({ args, code: 2 });
      expect(ran.stderr).toContain("ERROR:");
    }
    const none = await runScript("results", ["list", "--db", join(c.base, "none.db")]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no results log at .*none\.db/);
  });
});

test("--help says the sqlite3 CLI reads the file, and it does", async () => {
  const help = await runScript("results", ["--help"]);
  expect(help.code).toBe(0);
  expect(help.stdout).toContain("sqlite3 results/results.db 'SELECT ram_mb, file_size, throughput_mbps FROM results WHERE run_id = 3'");
  const out = await $`sqlite3 ${db} ${"SELECT ram_mb, file_size FROM results WHERE run_id = 1 ORDER BY id"}`;
  expect(out.stdout).toBe("256|4M\n128|4M\n");
});
