// run-test-matrix against a real PicoShare in real cgroups, with small files.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { runScript, startScript, waitFor } from "./helpers/run.ts";
import {
  CSV_HEADER, leftovers, makeFixture, matrixArgs, matrixDirs, newCase, query, readCsv, type Fixture, expectInOrder,
} from "./helpers/matrix.ts";
import { etaSeconds } from "../lib/matrix/progress.ts";
import { csvField, matrixCsv, harnessErrorRow } from "../lib/store/csv.ts";
import { parseSize } from "../lib/core/sizes.ts";

setDefaultTimeout(120_000);

let f: Fixture;
beforeAll(async () => {
  f = await makeFixture("matrix-spec", ["4M", "8M", "64M"]);
}, 300_000);
afterAll(() => rmSync(f.root, { recursive: true, force: true }));

describe("a passing matrix", () => {
  test("order, log lines, CSV, summary, test logs, database rows tied to the run, exit 0", async () => {
    const c = newCase(f);
    const t0 = performance.now();
    const ran = await runScript("run-test-matrix", matrixArgs(f, c, "--memory-limits", "256,128", "--file-sizes", "4M,8M"));
    const wall = (performance.now() - t0) / 1000;
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    const [dir] = matrixDirs(c.results);
    expect(dir).toMatch(/matrix-\d{8}-\d{6}$/);

    // The original's log lines, in order.
    const err = ran.stderr;
    const lines = [
      "PicoShare Performance Test Matrix",
      "Memory configs: 256 128",
      "File sizes: 4M 8M",
      "Total tests: 4",
      "[1/4] Running: 256MB RAM, 4M file",
      "[2/4] Running: 256MB RAM, 8M file",
      "[3/4] Running: 128MB RAM, 4M file",
      "[4/4] Running: 128MB RAM, 8M file",
      "Test matrix complete!",
      "  Passed: 4",
      "  Failed: 0",
    ];
    expectInOrder(err, lines);
    expect(err).toMatch(/\[4\/4\] PASS \(took [\d.]+s\)/);
    expect(err).toContain(dir.split("/").pop()!);
    const overhead = Number(/Overhead: ([\d.]+) s per test outside the upload/.exec(err)![1]);
    expect(overhead).toBeGreaterThan(0);
    expect(overhead).toBeLessThan(1.5);

    // CSV: the original header, one row per cell in matrix order.
    const csv = readFileSync(join(dir, "matrix-results.csv"), "utf8");
    expect(csv.split("\n")[0]).toBe(CSV_HEADER);
    const rows = readCsv(dir);
    expect(rows.map((r) => `${r.ram_mb}/${r.file_size}`)).toEqual(["256/4M", "256/8M", "128/4M", "128/8M"]);
    for (const r of rows) {
      expect(r).toMatchObject({ http_status: "200", exit_reason: "success", success: "true" });
      expect(Number(r.duration_seconds)).toBeGreaterThan(0);
      expect(Number(r.throughput_mbps)).toBeGreaterThan(0);
      expect(Number(r.peak_memory_mb)).toBeGreaterThan(0);
      const result = JSON.parse(readFileSync(r.result_file, "utf8"));
      expect(result).toMatchObject({ ram_mb: Number(r.ram_mb), file_size: r.file_size, success: true });
      expect(result.duration_seconds).toBe(Number(r.duration_seconds));
    }
    // matrix-counters.csv: the same tests, in the same order, with their kernel counters.
    const [counterHeader, ...counterRows] = readFileSync(join(dir, "matrix-counters.csv"), "utf8").trim().split("\n").map((l) => l.split(","));
    expect(counterHeader.slice(0, 5)).toEqual(["ram_mb", "file_size", "concurrency", "iteration", "picoshare_peak_rss_bytes"]);
    const counters = counterRows.map((r) => Object.fromEntries(counterHeader.map((h, i) => [h, r[i]])));
    expect(counters.map((r) => `${r.ram_mb}/${r.file_size}`)).toEqual(rows.map((r) => `${r.ram_mb}/${r.file_size}`));
    for (const c of counters) {
      const result = JSON.parse(readFileSync(rows.find((r) => r.ram_mb === c.ram_mb && r.file_size === c.file_size)!.result_file, "utf8"));
      expect(Number(c.disk_write_bytes)).toBe(result.disk_write_bytes);
      expect(Number(c.disk_write_bytes)).toBeGreaterThanOrEqual(parseSize(c.file_size).bytes);
      expect(Number(c.write_syscalls)).toBe(result.write_syscalls);
      expect(Number(c.picoshare_peak_rss_bytes)).toBe(result.picoshare_peak_rss_bytes);
      // Each test downloaded its entry after the upload, as a measured phase of its own.
      expect(c.download_exit_reason).toBe("success");
      expect(Number(c.download_throughput_mbps)).toBe(result.download_throughput_mbps);
      expect(Number(c.download_throughput_mbps)).toBeGreaterThan(0);
    }
    for (const name of ["test-256MB-4M.log", "test-256MB-8M.log", "test-128MB-4M.log", "test-128MB-8M.log"]) {
      expect(readFileSync(join(dir, name), "utf8")).toContain("TEST PASSED");
    }

    // summary.txt
    const summary = readFileSync(join(dir, "summary.txt"), "utf8");
    expect(summary).toMatch(/Timestamp:\s+\d{4}-\d\d-\d\dT/);
    expect(summary).toMatch(/Total duration:\s+[\d.]+s/);
    expect(summary).toMatch(/Tests run:\s+4 of 4/);
    expect(summary).toMatch(/Passed:\s+4/);
    expect(summary).toMatch(/Failed:\s+0/);
    expect(summary).toMatch(/Overhead:\s+[\d.]+ s per test outside the upload/);
    expect(summary).toMatch(/RAM \(MB\)\s+File\s+Duration/);
    expect(summary).toMatch(/^\s+128\s+8M\s+[\d.]+\s+[\d.]+\s+\d+\s+\d+\s+\d+\s+200\s+PASS\s+success$/m);
    expect(summary).not.toContain("Resume with");

    // matrix.json keeps the options and the run id.
    const state = JSON.parse(readFileSync(join(dir, "matrix.json"), "utf8"));
    expect(state.options).toMatchObject({ memory_limits: [256, 128], file_sizes: ["4M", "8M"], backend: "local", work_dir: c.work });
    expect(state.options.picoshare.path).toBe(f.picoshare);

    // Database: a complete matrix run with four results tied to it.
    const db = join(c.results, "results.db");
    const [run] = query(db, "SELECT * FROM runs");
    expect(run).toMatchObject({ id: state.run_id, kind: "matrix", status: "complete", backend: "local", picoshare_version: "v1.5.4" });
    expect(run.finished_at).toBeTruthy();
    expect(JSON.parse(run.options_json)).toMatchObject({ memory_limits: [256, 128], file_sizes: ["4M", "8M"] });
    expect(JSON.parse(run.host_json).cpu_count).toBeGreaterThan(0);
    const results = query(db, "SELECT run_id, ram_mb, file_size, success, result_file FROM results ORDER BY id");
    expect(results).toEqual(
      rows.map((r) => ({ run_id: run.id, ram_mb: Number(r.ram_mb), file_size: r.file_size, success: 1, result_file: r.result_file })),
    );
    expect(leftovers(dir, c.work)).toEqual([]);
    expect(existsSync(join(dir, "matrix.lock"))).toBe(false);
    // Overhead as the issue defines it, measured from outside too.
    const uploads = rows.reduce((s, r) => s + Number(r.duration_seconds), 0);
    expect((wall - uploads) / 4).toBeLessThan(1.5);
  });
});

describe("concurrency levels: a third axis of cells", () => {
  test("--concurrency-levels 1,2: each cell at each level, the original CSV header kept, the level in the second CSV and the JSON", async () => {
    const c = newCase(f);
    const ran = await runScript("run-test-matrix", matrixArgs(f, c, "--memory-limits", "256", "--file-sizes", "4M,8M", "--concurrency-levels", "1,2"));
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    const [dir] = matrixDirs(c.results);
    expectInOrder(ran.stderr, [
      "Concurrency levels: 1 2 uploads at once",
      "Total tests: 4",
      "[1/4] Running: 256MB RAM, 4M file",
      "[2/4] Running: 256MB RAM, 4M file, 2 uploads at once",
      "[3/4] Running: 256MB RAM, 8M file",
      "[4/4] Running: 256MB RAM, 8M file, 2 uploads at once",
    ]);
    // The original's CSV: its header, a row per test; the level is in the second CSV and the JSON.
    expect(readFileSync(join(dir, "matrix-results.csv"), "utf8").split("\n")[0]).toBe(CSV_HEADER);
    expect(readCsv(dir).map((r) => `${r.ram_mb}/${r.file_size}`)).toEqual(["256/4M", "256/4M", "256/8M", "256/8M"]);
    const counters = readFileSync(join(dir, "matrix-counters.csv"), "utf8").trim().split("\n").map((l) => l.split(","));
    const col = counters[0].indexOf("concurrency");
    expect(col).toBeGreaterThan(0);
    expect(counters.slice(1).map((r) => r[col])).toEqual(["1", "2", "1", "2"]);
    const state = JSON.parse(readFileSync(join(dir, "matrix.json"), "utf8"));
    expect(state.options.concurrency_levels).toEqual([1, 2]);
    expect(state.cells.map((x: { concurrency: number }) => x.concurrency)).toEqual([1, 2, 1, 2]);
    // Each test ran its own level: two entries where the level is 2.
    const rows = query<{ concurrency: number; entry_ids: string }>(
      join(c.results, "results.db"), "SELECT concurrency, json_extract(raw_json, '$.entry_ids') entry_ids FROM results ORDER BY id",
    );
    expect(rows.map((r) => [r.concurrency, JSON.parse(r.entry_ids).length])).toEqual([[1, 1], [2, 2], [1, 1], [2, 2]]);
    // Logs per cell: the level in the name above 1.
    expect(readdirSync(dir).filter((n) => n.startsWith("test-")).sort()).toEqual(["test-256MB-4M-x2.log", "test-256MB-4M.log", "test-256MB-8M-x2.log", "test-256MB-8M.log"]);
    // The summary's table has the level.
    const summary = readFileSync(join(dir, "summary.txt"), "utf8");
    expect(summary).toContain("At once");
  });

  test("a bad level is refused before anything runs", async () => {
    const c = newCase(f);
    const ran = await runScript("run-test-matrix", matrixArgs(f, c, "--memory-limits", "256", "--file-sizes", "4M", "--concurrency-levels", "1,0"));
    expect(ran.code).toBe(2);
    expect(ran.stderr).toMatch(/--concurrency-levels item "0" is not a number of uploads from 1 to 64/);
    expect(matrixDirs(c.results)).toEqual([]);
  });
});

describe("failures", () => {
  test("a cell OOM-killed for real: the matrix goes on, exit 1", async () => {
    const c = newCase(f);
    const ran = await runScript("run-test-matrix", matrixArgs(f, c, "--memory-limits", "10,256", "--file-sizes", "64M"));
    expect(ran.code).toBe(1);
    const [dir] = matrixDirs(c.results);
    const rows = readCsv(dir);
    expect(rows.map((r) => [r.ram_mb, r.exit_reason, r.success])).toEqual([
      ["10", "oom_killed", "false"],
      ["256", "success", "true"],
    ]);
    expect(rows[0].result_file).toMatch(/result-10MB-64M-.*\.json$/);
    expect(ran.stderr).toMatch(/\[1\/2\] FAIL \(took [\d.]+s\)/);
    expect(ran.stderr).toMatch(/\[2\/2\] PASS/);
    expect(ran.stderr).toContain("  Passed: 1");
    expect(ran.stderr).toContain("  Failed: 1");
    const summary = readFileSync(join(dir, "summary.txt"), "utf8");
    expect(summary).toMatch(/Failed:\s+1/);
    expect(summary).toMatch(/^\s+10\s+64M\s.*FAIL\s+oom_killed$/m);
    const db = join(c.results, "results.db");
    expect(query(db, "SELECT status FROM runs")).toEqual([{ status: "complete" }]);
    expect(query(db, "SELECT ram_mb, exit_reason FROM results ORDER BY id")).toEqual([
      { ram_mb: 10, exit_reason: "oom_killed" },
      { ram_mb: 256, exit_reason: "success" },
    ]);
    expect(leftovers(dir, c.work)).toEqual([]);
  });

  test("--stop-on-failure stops after the failed cell, exit 1, resumable", async () => {
    const c = newCase(f);
    const ran = await runScript(
      "run-test-matrix",
      matrixArgs(f, c, "--memory-limits", "10,256", "--file-sizes", "64M", "--stop-on-failure"),
    );
    expect(ran.code).toBe(1);
    const [dir] = matrixDirs(c.results);
    expect(readCsv(dir).map((r) => r.exit_reason)).toEqual(["oom_killed"]);
    expect(ran.stderr).not.toContain("[2/2] Running");
    expect(existsSync(join(dir, "test-256MB-64M.log"))).toBe(false);
    expect(ran.stderr).toContain("--stop-on-failure");
    expect(ran.stderr).toContain(`Resume with: bun scripts/run-test-matrix.ts --resume ${dir}`);
    expect(readFileSync(join(dir, "summary.txt"), "utf8")).toMatch(/Tests run:\s+1 of 2/);
    expect(query(join(c.results, "results.db"), "SELECT status FROM runs")).toEqual([{ status: "interrupted" }]);
    expect(leftovers(dir, c.work)).toEqual([]);
  });

  test("a cell whose run-test writes no result still gets a row: harness_error", async () => {
    const c = newCase(f);
    // Its own copy of the files: the 8M one disappears while the first cell runs.
    const files = join(c.base, "files");
    mkdirSync(files);
    for (const n of ["4M.bin", "8M.bin"]) copyFileSync(join(f.files, n), join(files, n));
    const run = startScript("run-test-matrix", [
      ...matrixArgs(f, c, "--memory-limits", "256", "--file-sizes", "4M,8M"), "--test-files", files,
    ]);
    await waitFor("the first cell", () => run.stderr().includes("[1/2] Running"));
    rmSync(join(files, "8M.bin"));
    const ran = await run.done;
    expect(ran.code).toBe(1);
    const [dir] = matrixDirs(c.results);
    const rows = readCsv(dir);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ file_size: "4M", exit_reason: "success", success: "true" });
    expect(rows[1]).toEqual({
      ram_mb: "256", file_size: "8M", duration_seconds: "", throughput_mbps: "", peak_memory_mb: "",
      http_status: "", exit_reason: "harness_error", success: "false", result_file: "",
    });
    expect(ran.stderr).toMatch(/\[2\/2\] FAIL/);
    expect(ran.stderr).toMatch(/harness_error: run-test exited with code 2 without writing a result: test file .*8M\.bin is missing/);
    const summary = readFileSync(join(dir, "summary.txt"), "utf8");
    expect(summary).toContain("Errors without a result:");
    expect(summary).toMatch(/256MB\/8M: run-test exited with code 2/);
    const db = join(c.results, "results.db");
    const [runRow] = query(db, "SELECT id, status FROM runs");
    expect(runRow.status).toBe("complete");
    expect(query(db, "SELECT run_id, ram_mb, file_size, exit_reason, exit_code FROM harness_errors")).toEqual([
      { run_id: runRow.id, ram_mb: 256, file_size: "8M", exit_reason: "harness_error", exit_code: 2 },
    ]);
    expect(leftovers(dir, c.work)).toEqual([]);
  });
});

describe("refused before any test runs: exit 2, one line, no matrix folder", () => {
  const cases: [string, string[], RegExp][] = [
    ["an empty memory item", ["--memory-limits", "256,,128"], /--memory-limits has an empty item/],
    ["a trailing comma", ["--memory-limits", "256,"], /--memory-limits has an empty item/],
    ["a duplicate memory limit", ["--memory-limits", "256,128,256"], /--memory-limits lists "256" twice/],
    ["a zero memory limit", ["--memory-limits", "256,0"], /--memory-limits item "0" is not a whole number of MiB above 0/],
    ["a negative memory limit", ["--memory-limits=-256"], /--memory-limits item "-256"/],
    ["a fractional memory limit", ["--memory-limits", "1.5"], /--memory-limits item "1\.5"/],
    ["an empty size item", ["--file-sizes", "4M,,8M"], /--file-sizes has an empty item/],
    ["a duplicate size", ["--file-sizes", "4M,8M,4M"], /--file-sizes lists "4M" twice/],
    ["a bad size", ["--file-sizes", "4M,1.5G"], /invalid --file-sizes item "1\.5G"/],
    ["a size with a B", ["--file-sizes", "4MB"], /invalid --file-sizes item "4MB"/],
    ["a zero size", ["--file-sizes", "0M"], /invalid --file-sizes item "0M"/],
    ["a zero timeout", ["--timeout", "0"], /--timeout must be a number above 0/],
    ["an unknown backend", ["--backend", "docker"], /--backend must be one of/],
    ["an unknown flag", ["--parallel"], /unknown option --parallel/],
    ["a missing test file", ["--file-sizes", "4M,3M,5M"], /test files missing or wrong: .*3M\.bin \(missing\), .*5M\.bin \(missing\); make them with `bun scripts\/generate-test-files\.ts --sizes 3M,5M --dir .*files`, or add --generate/],
  ];
  for (const [name, extra, message] of cases) {
    test(name, async () => {
      const c = newCase(f);
      const ran = await runScript("run-test-matrix", [...matrixArgs(f, c, "--memory-limits", "256", "--file-sizes", "4M"), ...extra]);
      expect(ran.code).toBe(2);
      const errors = ran.stderr.split("\n").filter((l) => l.includes("ERROR:"));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(message);
      expect(ran.stderr).not.toContain("Running:");
      expect(matrixDirs(c.results)).toEqual([]);
      expect(existsSync(join(c.results, "results.db"))).toBe(false);
    });
  }

  test("--resume with other options is refused, naming them", async () => {
    const c = newCase(f);
    const first = await runScript("run-test-matrix", matrixArgs(f, c, "--memory-limits", "256", "--file-sizes", "4M"));
    expect(first.code).toBe(0);
    const [dir] = matrixDirs(c.results);
    const ran = await runScript("run-test-matrix", ["--resume", dir, "--file-sizes", "8M", "--verify"]);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toMatch(/drop --file-sizes, --verify \(only --timeout and --stop-on-failure may be given again\)/);
    const missing = await runScript("run-test-matrix", ["--resume", join(c.base, "nowhere")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no matrix\.json there/);
    // A finished matrix resumed: nothing to run, still complete, exit 0.
    const again = await runScript("run-test-matrix", ["--resume", dir, "--timeout", "30"]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("Resuming: 1 of 1 tests have results, 0 to run");
    expect(readCsv(dir)).toHaveLength(1);
    expect(query(join(c.results, "results.db"), "SELECT status FROM runs")).toEqual([{ status: "complete" }]);
  });
});

test("--generate makes the missing test files first, with the generator", async () => {
  const c = newCase(f);
  const files = join(c.base, "new-files");
  const ran = await runScript("run-test-matrix", [
    ...matrixArgs(f, c, "--memory-limits", "256", "--file-sizes", "1M,2M", "--generate"), "--test-files", files,
  ]);
  expect(ran.code).toBe(0);
  expect(readdirSync(files).sort()).toEqual(["1M.bin", "2M.bin"]);
  expect(ran.stderr).toContain("Making test files 1M, 2M");
  expect(ran.stderr.indexOf("1M.bin: 1.0 MiB")).toBeLessThan(ran.stderr.indexOf("[1/2] Running"));
  expect(readCsv(matrixDirs(c.results)[0]).map((r) => r.success)).toEqual(["true", "true"]);
});

describe("pieces", () => {
  test("the ETA applies the finished cells' seconds per byte to the bytes left", () => {
    expect(etaSeconds(0, 0, 100)).toBeNull();
    expect(etaSeconds(100, 10, 300)).toBe(30);
    expect(etaSeconds(100, 10, 300, 5)).toBe(25);
    expect(etaSeconds(100, 10, 10, 5)).toBe(0);
  });

  test("CSV fields are quoted only where RFC 4180 needs it", () => {
    expect(csvField("plain")).toBe("plain");
    expect(csvField("a,b")).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField("two\nlines")).toBe('"two\nlines"');
    expect(csvField(null)).toBe("");
    expect(csvField(false)).toBe("false");
    expect(matrixCsv([harnessErrorRow(256, "1G")])).toBe(`${CSV_HEADER}\n256,1G,,,,,harness_error,false,\n`);
  });
});
