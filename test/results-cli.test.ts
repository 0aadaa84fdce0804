// scripts/results.ts: listing runs and showing one, read from a results log
// that real matrices wrote.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { $ } from "../lib/core/shell.ts";
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

// ---------------------------------------------------------------- exports and trends

/**
 * Bencher's metric format as its documentation specifies it: an object of
 * benchmarks, each an object of measures, each with a number `value` and
 * optionally `lower_value` and `upper_value`, nothing else.
 */
function bmfProblems(doc: unknown): string[] {
  const p: string[] = [];
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return ["not an object of benchmarks"];
  for (const [bench, measures] of Object.entries(doc)) {
    if (bench === "") p.push("an empty benchmark name");
    if (typeof measures !== "object" || measures === null || Array.isArray(measures) || Object.keys(measures).length === 0) {
      p.push(`${bench}: not an object of measures`);
      continue;
    }
    for (const [measure, metric] of Object.entries(measures as Record<string, unknown>)) {
      const m = metric as Record<string, unknown>;
      const extra = Object.keys(m).filter((k) => !["value", "lower_value", "upper_value"].includes(k));
      if (extra.length > 0) p.push(`${bench}/${measure}: unknown keys ${extra.join(", ")}`);
      for (const k of ["value", "lower_value", "upper_value"]) {
        if ((k === "value" || k in m) && !(typeof m[k] === "number" && Number.isFinite(m[k]))) p.push(`${bench}/${measure}: ${k} is not a number`);
      }
      if ("lower_value" in m && (m.lower_value as number) > (m.value as number)) p.push(`${bench}/${measure}: lower_value above value`);
      if ("upper_value" in m && (m.upper_value as number) < (m.value as number)) p.push(`${bench}/${measure}: upper_value below value`);
    }
  }
  return p;
}

/** github-action-benchmark's custom formats: a list of {name, unit, value, range?, extra?}, strings but value. */
function gabProblems(doc: unknown): string[] {
  if (!Array.isArray(doc)) return ["not a list"];
  const p: string[] = [];
  doc.forEach((e, i) => {
    if (typeof e !== "object" || e === null) return p.push(`${i}: not an object`);
    const extra = Object.keys(e).filter((k) => !["name", "unit", "value", "range", "extra"].includes(k));
    if (extra.length > 0) p.push(`${i}: unknown keys ${extra.join(", ")}`);
    if (typeof e.name !== "string" || e.name === "") p.push(`${i}: name`);
    if (typeof e.unit !== "string") p.push(`${i}: unit`);
    if (typeof e.value !== "number" || !Number.isFinite(e.value)) p.push(`${i}: value`);
    for (const k of ["range", "extra"]) if (k in e && typeof e[k] !== "string") p.push(`${i}: ${k}`);
  });
  return p;
}

describe("export and trend", () => {
  let store: string;
  const runs: number[] = [];
  beforeAll(async () => {
    const { ResultsDb } = await import("../lib/store/results-db.ts");
    const { HOST, fakeResult } = await import("./helpers/results.ts");
    store = join(c.base, "stored.db");
    const sdb = ResultsDb.open(store);
    // Three runs of two builds over three days; the third on another governor.
    const plan = [
      { at: "2026-11-01T10:00:00+00:00", version: "v1.5.3", t: [90, 91, 89, 90, 92], host: HOST },
      { at: "2026-11-02T10:00:00+00:00", version: "v1.5.4", t: [100, 101, 99, 100, 102], host: HOST },
      { at: "2026-11-03T10:00:00+00:00", version: "v1.5.4", t: [80, 81, 79, 80, 82], host: { ...HOST, cpu_governor: "powersave" } },
    ];
    for (const r of plan) {
      const id = sdb.startRun({ kind: "matrix", startedAt: r.at, backend: "local", resultsDir: null, picoshareVersion: r.version, picoshareSha256: "ab".repeat(32), options: {}, host: r.host });
      runs.push(id);
      for (const t of r.t) {
        sdb.addResult({ ...fakeResult({ ram: 256, size: "1G", throughput: t, runId: id, host: r.host }), picoshare_version: r.version }, null);
        sdb.addResult(fakeResult({ ram: 256, size: "1G", throughput: t / 3, runId: id, host: r.host, concurrency: 3 }), null);
      }
    }
    sdb.close();
  });
  const stored = (...args: string[]) => runScript("results", [...args, "--db", store]);

  test("bmf: one benchmark per cell in its spelling, one measure per metric, median and its interval; valid BMF", async () => {
    const ran = await stored("export", String(runs[1]), "--format", "bmf");
    expect(ran.code).toBe(0);
    const doc = JSON.parse(ran.stdout);
    expect(bmfProblems(doc)).toEqual([]);
    expect(Object.keys(doc).sort()).toEqual(["256MB/1G", "256MB/1G/x3"]);
    expect(doc["256MB/1G"].throughput.value).toBe(100);
    expect(doc["256MB/1G"].throughput.lower_value).toBeLessThanOrEqual(100);
    expect(doc["256MB/1G"].throughput.upper_value).toBeGreaterThanOrEqual(100);
    expect(doc["256MB/1G"].peak_memory.value).toBe(20); // MiB, the fake runs' peak
    // A real matrix run (one test per cell): values without bounds, still valid.
    const real = await results("export", "1", "--format", "bmf");
    expect(real.code).toBe(0);
    const r = JSON.parse(real.stdout);
    expect(bmfProblems(r)).toEqual([]);
    expect(Object.keys(r).sort()).toEqual(["128MB/4M", "256MB/4M"]);
    expect(r["256MB/4M"].throughput.value).toBeGreaterThan(0);
    expect(r["256MB/4M"].throughput.lower_value).toBeUndefined();
  });

  test("gab-bigger holds only higher-is-better metrics, gab-smaller only the others; both valid; --out writes a file", async () => {
    const out = join(c.base, "gab-smaller.json");
    const [bigger, smaller] = [await stored("export", String(runs[1]), "--format", "gab-bigger"), await stored("export", String(runs[1]), "--format", "gab-smaller", "--out", out)];
    expect(bigger.code).toBe(0);
    expect(smaller.code).toBe(0);
    expect(smaller.stdout).toBe("");
    const [b, s] = [JSON.parse(bigger.stdout), JSON.parse(readFileSync(out, "utf8"))];
    expect(gabProblems(b)).toEqual([]);
    expect(gabProblems(s)).toEqual([]);
    expect(b.map((e: { name: string }) => e.name).sort()).toEqual(["256MB/1G throughput", "256MB/1G/x3 throughput"]);
    expect(s.some((e: { name: string }) => e.name.endsWith(" throughput"))).toBe(false);
    expect(s.find((e: { name: string }) => e.name === "256MB/1G peak_memory")).toMatchObject({ unit: "MiB", value: 20 });
    expect(b[0].range).toMatch(/^± [\d.]+$/);
    const bad = await stored("export", String(runs[1]), "--format", "csv");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("export needs --format bmf|gab-bigger|gab-smaller");
  });

  test("trend: the cell's median per run, oldest first, with the build, and the run on another governor marked", async () => {
    const ran = await stored("trend", "--cell", "256MB/1G", "--metric", "throughput", "--json");
    expect(ran.code).toBe(0);
    const t = JSON.parse(ran.stdout);
    expect(t.points.map((p: { run_id: number; median: number; picoshare_version: string }) => [p.run_id, p.median, p.picoshare_version])).toEqual([
      [runs[0], 90, "v1.5.3"], [runs[1], 100, "v1.5.4"], [runs[2], 80, "v1.5.4"],
    ]);
    expect(t.points.map((p: { changes: string[] }) => p.changes.length)).toEqual([0, 0, 1]);
    expect(t.points[2].changes[0]).toMatch(/^environment: .*cpu_governor: performance vs powersave/);
    // The concurrency-3 cell is another cell.
    const x3 = JSON.parse((await stored("trend", "--cell", "256MB/1G/x3", "--metric", "throughput", "--json")).stdout);
    expect(x3.points.map((p: { median: number }) => p.median)).toEqual([30, 100 / 3, 80 / 3].map((x) => expect.closeTo(x, 5)));
    const table = await stored("trend", "--cell", "256MB/1G", "--metric", "throughput", "--since", "2026-11-02");
    expect(table.code).toBe(0);
    expect(table.stdout.split("\n")[0]).toBe("throughput (MiB/s) of 256MB/1G, median per run");
    expect(table.stdout).not.toContain("v1.5.3");
    expect(table.stdout).toMatch(new RegExp(`^\\* run ${runs[2]}: environment: `, "m"));
    for (const [args, message] of [
      [["--cell", "256 1G", "--metric", "throughput"], /--cell: "256 1G" is not a cell/],
      [["--cell", "256MB/1G", "--metric", "speed"], /--metric "speed" is not a metric of compare/],
      [["--cell", "256MB/1G"], /trend needs --cell CELL and --metric METRIC/],
      [["--cell", "256MB/1G", "--metric", "throughput", "--since", "yesterday"], /--since "yesterday" is not an ISO 8601 date or time/],
    ] as const) {
      const bad = await stored("trend", ...args);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(message);
    }
  });
});

describe("trend: the harness mark and --since", () => {
  let store: string;
  const runs: number[] = [];
  // Around midnight in Berlin (UTC+1 in November): the second run started at 00:30 there on 2 November, 23:30 UTC on the 1st.
  const plan = [
    { at: "2026-11-01T22:30:00+00:00", harness: "a".repeat(40), governor: "performance", t: 90 },
    { at: "2026-11-01T23:30:00+00:00", harness: "b".repeat(40), governor: "performance", t: 100 },
    { at: "2026-11-02T11:00:00+01:00", harness: "c".repeat(40), governor: "powersave", t: 80 },
    { at: "2026-11-02T12:00:00+01:00", harness: "c".repeat(40), governor: "powersave", t: 81 },
  ];
  beforeAll(async () => {
    const { ResultsDb } = await import("../lib/store/results-db.ts");
    const { HOST, fakeResult } = await import("./helpers/results.ts");
    store = join(c.base, "since.db");
    const sdb = ResultsDb.open(store);
    for (const p of plan) {
      const host = { ...HOST, cpu_governor: p.governor };
      const id = sdb.startRun({ kind: "matrix", startedAt: p.at, backend: "local", resultsDir: null, picoshareVersion: "v1.5.4", picoshareSha256: "ab".repeat(32), options: {}, host });
      runs.push(id);
      for (const t of [p.t - 1, p.t, p.t + 1]) {
        sdb.addResult({ ...fakeResult({ ram: 256, size: "1G", throughput: t, runId: id, host }), harness_commit: p.harness, harness_dirty: false }, null);
      }
    }
    sdb.close();
  });
  const trend = async (env: Record<string, string>, ...args: string[]) => {
    const ran = await runScript("results", ["trend", "--cell", "256MB/1G", "--metric", "throughput", "--db", store, ...args], env);
    return { ...ran, points: ran.code === 0 && args.includes("--json") ? JSON.parse(ran.stdout).points : null };
  };

  test("a run on another harness commit is marked once, as the harness's; with the environment too, both are named", async () => {
    const { points } = await trend({}, "--json");
    expect(points.map((p: { run_id: number }) => p.run_id)).toEqual(runs);
    expect(points.map((p: { differs: string[] }) => p.differs)).toEqual([[], ["harness"], ["environment", "harness"], []]);
    expect(points[1].changes).toEqual(["harness: aaaaaaaaaaaa -> bbbbbbbbbbbb"]);
    // The fingerprint's harness_commit is not named again as the environment's.
    expect(points[2].changes).toEqual([
      "environment: cpu_governor: performance vs powersave (CPU frequency scaling policy)",
      "harness: bbbbbbbbbbbb -> cccccccccccc",
    ]);
    const table = await trend({});
    expect(table.stdout).toMatch(new RegExp(`^\\s*${runs[1]}\\s.*\\*$`, "m"));
    expect(table.stdout).toMatch(new RegExp(`^\\s*${runs[3]}\\s.*\\d$`, "m"));
    expect(table.stdout).toContain(`* run ${runs[1]}: harness: aaaaaaaaaaaa -> bbbbbbbbbbbb\n`);
    expect(table.stdout.match(/harness/g)).toHaveLength(2);
  });

  test("--since DATE is local midnight; a date and time with or without an offset; every other form refused", async () => {
    const ids = (r: { points: { run_id: number }[] | null }) => r.points!.map((p) => p.run_id);
    // Midnight in Berlin is 23:00 UTC: the run at 23:30 UTC is on the 2nd there, not in UTC.
    expect(ids(await trend({ TZ: "Europe/Berlin" }, "--since", "2026-11-02", "--json"))).toEqual(runs.slice(1));
    expect(ids(await trend({ TZ: "UTC" }, "--since", "2026-11-02", "--json"))).toEqual(runs.slice(2));
    expect(ids(await trend({ TZ: "UTC" }, "--since", "2026-11-01T23:00:00Z", "--json"))).toEqual(runs.slice(1));
    expect(ids(await trend({ TZ: "UTC" }, "--since", "2026-11-02T00:00:00.000+01:00", "--json"))).toEqual(runs.slice(1));
    expect(ids(await trend({ TZ: "Europe/Berlin" }, "--since", "2026-11-02T11:30", "--json"))).toEqual(runs.slice(3));
    // The first run after --since is compared with nothing: not marked.
    expect((await trend({ TZ: "UTC" }, "--since", "2026-11-02", "--json")).points![0].changes).toEqual([]);
    for (const since of ["yesterday", "Nov 2 2026", "11/02/2026", "2026-11-02 10:00", "2026-11-31", "2026-13-01", "2026-11-02T24:00", "2026-11-2", "20261102", "2026-11-02T10:00+0100", "2026-11-02T10:00:00+25:00"]) {
      const bad = await trend({}, "--since", since);
      expect({ since, code: bad.code, stdout: bad.stdout }).toEqual({ since, code: 2, stdout: "" });
      const lines = bad.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`ERROR: --since "${since}" is not an ISO 8601 date or time (e.g. --since 2026-11-01`);
    }
  });
});
