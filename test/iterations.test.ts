// Repeated tests: run-test --iterations/--warmup, the matrix's per-iteration
// children, and a matrix interrupted between iterations of a cell and resumed.
// Real PicoShare, real cgroups, small files.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import { runScript, startScript, uploadStarted, waitFor } from "./helpers/run.ts";
import { cgroupPids, testCgroups } from "./helpers/cgroups.ts";
import {
  CSV_HEADER, childPids, leftovers, matrixArgs, matrixDirs, newCase, query, readCsv, type Fixture, expectInOrder,
} from "./helpers/matrix.ts";

setDefaultTimeout(120_000);

let f: Fixture;
beforeAll(async () => {
  const picoshare = (await resolvePicoShare()).path;
  const root = mkdtempSync(join(tmpdir(), "iterations-spec-"));
  const files = join(root, "files");
  mkdirSync(files);
  for (const [label, bytes] of [["8M", 8 * MiB], ["64M", 64 * MiB]] as const) await writeTestFile(testFilePath(label, files), bytes);
  f = { root, files, picoshare };
}, 300_000);
afterAll(() => rmSync(f.root, { recursive: true, force: true }));

function readJson(path: string) {
  return JSON.parse(readFileSync(path, "utf8"));
}

describe("run-test --iterations --warmup", () => {
  test("3 measured runs after 1 warm-up: 4 results and rows, 4 paths, the statistics of the 3", async () => {
    const c = newCase(f);
    const ran = await runScript("run-test", [
      ...matrixArgs(f, c), "--ram", "256", "--file-size", "8M", "--iterations", "3", "--warmup", "1",
    ]);
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);

    // stdout: every result path, in the order run; each file its own.
    const paths = ran.stdout.trim().split("\n");
    expect(paths).toHaveLength(4);
    expect(new Set(paths).size).toBe(4);
    const results = paths.map(readJson);
    expect(results.map((r) => [r.iteration, r.warmup, r.success])).toEqual([
      [1, true, true], [2, false, true], [3, false, true], [4, false, true],
    ]);
    expect(readdirSync(c.results).filter((n) => n.startsWith("result-")).sort()).toEqual(paths.map((p) => p.split("/").pop()!).sort());

    // The database has all four, the warm-up marked.
    const rows = query(join(c.results, "results.db"), "SELECT iteration, warmup, result_file FROM results ORDER BY id");
    expect(rows).toEqual(paths.map((p, i) => ({ iteration: i + 1, warmup: i === 0 ? 1 : 0, result_file: p })));

    // Log lines per test, a TEST PASSED block each, then one statistics block over the 3 measured runs.
    const err = ran.stderr;
    const order = ["Warm-up 1/1", "TEST PASSED", "Iteration 1/3", "TEST PASSED", "Iteration 2/3", "TEST PASSED", "Iteration 3/3", "TEST PASSED", "Statistics over 3 measured runs"];
    let at = -1;
    for (const line of order) {
      const i = err.indexOf(line, at + 1);
      expect({ line, found: i > at }).toEqual({ line, found: true });
      at = i;
    }
    expect(err.match(/TEST PASSED/g)).toHaveLength(4);
    expect(err).toMatch(/Metric\s+n\s+Median\s+Mean\s+SD\s+CV\s+Min\s+Max\s+95% CI \(median\)/);
    const measured = results.slice(1);
    const durations = measured.map((r) => r.duration_seconds).sort((a, b) => a - b);
    const durationLine = /Duration \(s\)\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+ %\s+([\d.]+)\s+([\d.]+)\s+[\d.]+-[\d.]+/.exec(err);
    expect(durationLine).not.toBeNull();
    expect(Number(durationLine![1])).toBe(3);
    expect(Number(durationLine![2])).toBe(durations[1]); // the median of the 3, warm-up left out
    expect([Number(durationLine![3]), Number(durationLine![4])]).toEqual([durations[0], durations[2]]);
    expect(err).toMatch(/Throughput \(MB\/s\)\s+3\s/);
    expect(err).toMatch(/Peak memory \(MB\)\s+3\s/);
    expect(readdirSync(c.work)).toEqual([]);
  });

  test("PERF_ITERATION and PERF_WARMUP set a single test's fields", async () => {
    const c = newCase(f);
    const ran = await runScript("run-test", [...matrixArgs(f, c), "--ram", "256", "--file-size", "8M"], {
      PERF_ITERATION: "3",
      PERF_WARMUP: "1",
    });
    expect(ran.code).toBe(0);
    expect(ran.stdout.trim().split("\n")).toHaveLength(1);
    expect(readJson(ran.stdout.trim())).toMatchObject({ iteration: 3, warmup: true });
    expect(ran.stderr).not.toContain("Iteration");
    expect(query(join(c.results, "results.db"), "SELECT iteration, warmup FROM results")).toEqual([{ iteration: 3, warmup: 1 }]);
  });

  const bad: [string, string[], Record<string, string>, RegExp][] = [
    ["--iterations 0", ["--iterations", "0"], {}, /--iterations must be a whole number above 0/],
    ["--iterations 1.5", ["--iterations", "1.5"], {}, /--iterations must be a whole number above 0/],
    ["--warmup -1", ["--warmup=-1"], {}, /--warmup must be a whole number of 0 or more/],
    ["--warmup x", ["--warmup", "x"], {}, /--warmup must be a whole number of 0 or more/],
    ["PERF_ITERATION with --iterations", ["--iterations", "2"], { PERF_ITERATION: "2" }, /PERF_ITERATION and PERF_WARMUP describe a single test/],
  ];
  for (const [name, extra, env, message] of bad) {
    test(`refused: ${name}`, async () => {
      const c = newCase(f);
      const ran = await runScript("run-test", [...matrixArgs(f, c), "--ram", "256", "--file-size", "8M", ...extra], env);
      expect(ran.code).toBe(2);
      expect(ran.stdout).toBe("");
      const errors = ran.stderr.split("\n").filter((l) => l.includes("ERROR:"));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(message);
      expect(existsSync(c.results) ? readdirSync(c.results) : []).toEqual([]);
    });
  }
});

describe("the matrix with --iterations --warmup", () => {
  test("2 RAM x 1 size, 2 iterations after 1 warm-up: 6 children, 4 CSV rows, the statistics table", async () => {
    const c = newCase(f);
    const ran = await runScript("run-test-matrix", [
      ...matrixArgs(f, c, "--memory-limits", "256,128", "--file-sizes", "8M"), "--iterations", "2", "--warmup", "1",
    ]);
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    const [dir] = matrixDirs(c.results);
    const err = ran.stderr;
    const lines = [
      "Total tests: 6",
      "[1/6] Running: 256MB RAM, 8M file (warm-up 1/1)",
      "[2/6] Running: 256MB RAM, 8M file (iteration 1/2)",
      "[3/6] Running: 256MB RAM, 8M file (iteration 2/2)",
      "[4/6] Running: 128MB RAM, 8M file (warm-up 1/1)",
      "[5/6] Running: 128MB RAM, 8M file (iteration 1/2)",
      "[6/6] Running: 128MB RAM, 8M file (iteration 2/2)",
      "Test matrix complete!",
      "  Passed: 4",
      "  Failed: 0",
    ];
    expectInOrder(err, lines);

    // One run-test per test, each its own process.
    const pids = childPids(dir);
    expect(pids).toHaveLength(6);
    expect(new Set(pids).size).toBe(6);

    // CSV: the original header, one row per measured iteration, warm-ups left out.
    expect(readFileSync(join(dir, "matrix-results.csv"), "utf8").split("\n")[0]).toBe(CSV_HEADER);
    const rows = readCsv(dir);
    expect(rows.map((r) => `${r.ram_mb}/${r.file_size}/${r.success}`)).toEqual(["256/8M/true", "256/8M/true", "128/8M/true", "128/8M/true"]);
    expect(rows.map((r) => readJson(r.result_file)).map((r) => [r.ram_mb, r.iteration, r.warmup])).toEqual([
      [256, 2, false], [256, 3, false], [128, 2, false], [128, 3, false],
    ]);

    // summary.txt: counts over the measured runs, and the per-cell statistics.
    const summary = readFileSync(join(dir, "summary.txt"), "utf8");
    expect(summary).toMatch(/Tests run:\s+6 of 6 \(2 of them warm-ups, not counted\)/);
    expect(summary).toMatch(/Passed:\s+4\n/);
    expect(summary).toMatch(/Iterations:\s+2 measured per cell, after 1 warm-up/);
    expect(summary).toContain("Statistics per cell");
    expect(summary).toMatch(/RAM \(MB\)\s+File\s+n\s+Passed\s+Failed\s+Throughput \(MB\/s\) median\s+CV\s+95% CI\s+Duration \(s\) median/);
    expect(summary).toMatch(/^\s+256\s+8M\s+2\s+2\s+0\s+[\d.]+\s+[\d.]+ %\s+[\d.]+-[\d.]+\s+[\d.]+\s+[\d.]+ %/m);
    expect(summary).toMatch(/^\s+128\s+8M\s+2\s+2\s+0\s/m);

    // matrix.json and the database: every test, the warm-ups marked.
    const state = readJson(join(dir, "matrix.json"));
    expect(state.version).toBe(2);
    expect(state.options).toMatchObject({ iterations: 2, warmup: 1 });
    expect(state.cells.map((x: any) => `${x.ram_mb}/${x.iteration}/${x.warmup}`).sort()).toEqual(
      ["128/1/true", "128/2/false", "128/3/false", "256/1/true", "256/2/false", "256/3/false"],
    );
    expect(state.totals.tests_run).toBe(6);
    const db = join(c.results, "results.db");
    expect(query(db, "SELECT ram_mb, iteration, warmup FROM results ORDER BY id")).toEqual([
      { ram_mb: 256, iteration: 1, warmup: 1 }, { ram_mb: 256, iteration: 2, warmup: 0 }, { ram_mb: 256, iteration: 3, warmup: 0 },
      { ram_mb: 128, iteration: 1, warmup: 1 }, { ram_mb: 128, iteration: 2, warmup: 0 }, { ram_mb: 128, iteration: 3, warmup: 0 },
    ]);
    const list = await runScript("results", ["list", "--db", db]);
    expect(list.stdout).toMatch(/matrix\s+\S+\s+complete\s+local\s+v1\.5\.4\s+4\s+0/);
    expect(leftovers(dir, c.work)).toEqual([]);
  });

  test("SIGINT in the second iteration of a cell, then --resume: only the missing iterations run, each once", async () => {
    const c = newCase(f);
    const run = startScript("run-test-matrix", [
      ...matrixArgs(f, c, "--memory-limits", "256", "--file-sizes", "64M"), "--iterations", "3", "--warmup", "1",
    ]);
    // Test 3 of 4 is the cell's second measured iteration: wait for its upload to be under way.
    await waitFor("[3/4] Running", () => run.stderr().includes("[3/4] Running: 256MB RAM, 64M file (iteration 2/3)"));
    const [dir] = matrixDirs(c.results);
    const child = await waitFor("its run-test", () => {
      try {
        return readJson(join(dir, "matrix.lock")).child_pid as number;
      } catch {
        return null;
      }
    });
    const cgroup = await waitFor("its cgroup", () => testCgroups(child)[0]);
    await waitFor("PicoShare in it", () => cgroupPids(cgroup).length > 0);
    await waitFor("the upload to start", () => uploadStarted(c.work));
    process.kill(run.pid, "SIGINT");
    const stopped = await run.done;
    expect(stopped.code).toBe(130);
    expect(stopped.stderr).toContain("Test matrix interrupted: 2 of 4 tests run");
    expect(readCsv(dir)).toHaveLength(1);
    const partial = readFileSync(join(dir, "summary.txt"), "utf8");
    expect(partial).toMatch(/Status:\s+interrupted/);
    expect(partial).toContain("Not run yet: 256MB/64M (iteration 2/3, iteration 3/3)");
    expect(readdirSync(c.work)).toEqual([]);

    const ran = await runScript("run-test-matrix", ["--resume", dir]);
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    expect(ran.stderr).toContain("Resuming: 2 of 4 tests have results, 2 to run");
    expect(ran.stderr).not.toContain("[1/4] Running");
    expect(ran.stderr).not.toContain("[2/4] Running");
    expect(ran.stderr).toContain("[3/4] Running: 256MB RAM, 64M file (iteration 2/3)");
    expect(ran.stderr).toContain("[4/4] Running: 256MB RAM, 64M file (iteration 3/3)");
    expect(ran.stderr).toContain("  Passed: 3");

    // Each measured iteration once in the CSV, each test once in the database.
    const rows = readCsv(dir);
    expect(rows).toHaveLength(3);
    expect(rows.every((r) => r.success === "true")).toBe(true);
    expect(rows.map((r) => readJson(r.result_file).iteration)).toEqual([2, 3, 4]);
    const db = join(c.results, "results.db");
    expect(query(db, "SELECT iteration, warmup FROM results ORDER BY iteration")).toEqual([
      { iteration: 1, warmup: 1 }, { iteration: 2, warmup: 0 }, { iteration: 3, warmup: 0 }, { iteration: 4, warmup: 0 },
    ]);
    expect(query(db, "SELECT COUNT(*) AS n FROM harness_errors")).toEqual([{ n: 0 }]);
    expect(query(db, "SELECT status FROM runs")).toEqual([{ status: "complete" }]);
    const state = readJson(join(dir, "matrix.json"));
    expect(state.sessions.map((s: any) => s.status)).toEqual(["interrupted", "complete"]);
    expect(state.totals.tests_run).toBe(4);
    const summary = readFileSync(join(dir, "summary.txt"), "utf8");
    expect(summary).toMatch(/Tests run:\s+4 of 4/);
    expect(summary).toMatch(/^\s+256\s+64M\s+3\s+3\s+0\s/m);
    expect(leftovers(dir, c.work)).toEqual([]);
  });
});
