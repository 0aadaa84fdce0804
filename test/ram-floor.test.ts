// The RAM floor: the search on modelled probes (where the floor is, how a
// flaky upper end moves the bracket, the time limit), and find-ram-floor
// against a real PicoShare in real cgroups on small files: the bracket, the
// thrash limit, --max-minutes, --with-download, compare's refusal.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bracketEnds, findFloor, probeVerdict, thrashLimitSeconds, type Floor, type FloorProbe } from "../lib/floor/search.ts";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import type { TestResult } from "../lib/upload/result.ts";
import { runScript } from "./helpers/run.ts";
import { query } from "./helpers/matrix.ts";

setDefaultTimeout(300_000);

/** A probe that passes from `floor` MiB up; `flaky` limits pass on their first run only. */
function model(floor: number, flaky: number[] = []) {
  const runs = new Map<number, number>();
  return async (mb: number, repeat: boolean): Promise<FloorProbe> => {
    const n = (runs.get(mb) ?? 0) + 1;
    runs.set(mb, n);
    const passed = mb >= floor && !(flaky.includes(mb) && n > 1);
    return { ram_mb: mb, passed, outcome: passed ? "success" : "oom_killed", upload_seconds: 1, wall_seconds: 1, repeat, result_file: null };
  };
}

describe("the search", () => {
  test("bisects to the resolution, then re-runs both ends", async () => {
    const f = await findFloor({ minMb: 16, maxMb: 2048, resolutionMb: 8, repeat: 3, probe: model(100), outOfTime: () => false });
    expect(f.finished).toBe(true);
    expect(f.lowest_passing_mb!).toBeGreaterThanOrEqual(100);
    expect(f.highest_failing_mb!).toBeLessThan(100);
    expect(f.lowest_passing_mb! - f.highest_failing_mb!).toBeLessThanOrEqual(8);
    expect(f.failure).toBe("oom_killed");
    // First --max, then --min; the re-runs are marked.
    expect(f.probes.slice(0, 2).map((p) => p.ram_mb)).toEqual([2048, 16]);
    expect(f.probes.filter((p) => p.repeat).map((p) => p.ram_mb)).toEqual([
      ...Array(3).fill(f.lowest_passing_mb), ...Array(3).fill(f.highest_failing_mb),
    ]);
  });

  test("an upper end that fails on a re-run moves the bracket up, until it holds", async () => {
    // 100..103 pass once and then fail: the floor that holds is 104.
    const f = await findFloor({ minMb: 16, maxMb: 2048, resolutionMb: 2, repeat: 2, probe: model(100, [100, 101, 102, 103]), outOfTime: () => false });
    expect(f.lowest_passing_mb!).toBeGreaterThanOrEqual(104);
    expect(f.lowest_passing_mb! - f.highest_failing_mb!).toBeLessThanOrEqual(2);
    const hi = f.probes.filter((p) => p.ram_mb === f.lowest_passing_mb);
    expect(hi.length).toBeGreaterThanOrEqual(3);
    expect(hi.every((p) => p.passed)).toBe(true);
  });

  test("--max failing, --min passing, and the time limit", async () => {
    const none = await findFloor({ minMb: 16, maxMb: 64, resolutionMb: 8, repeat: 3, probe: model(100), outOfTime: () => false });
    expect(none).toMatchObject({ lowest_passing_mb: null, highest_failing_mb: 64, failure: "oom_killed", finished: true });
    expect(none.probes).toHaveLength(1);
    const low = await findFloor({ minMb: 16, maxMb: 2048, resolutionMb: 8, repeat: 3, probe: model(10), outOfTime: () => false });
    expect(low).toMatchObject({ lowest_passing_mb: 16, highest_failing_mb: null, finished: true });
    let calls = 0;
    const timed = await findFloor({ minMb: 16, maxMb: 2048, resolutionMb: 8, repeat: 3, probe: model(100), outOfTime: () => ++calls > 3 });
    expect(timed.finished).toBe(false);
    expect(timed.lowest_passing_mb! > timed.highest_failing_mb!).toBe(true);
  });

  test("the bracket as tables print it: below --min, above --max, and nothing tried below the reference", async () => {
    const none = await findFloor({ minMb: 16, maxMb: 64, resolutionMb: 8, repeat: 3, probe: model(100), outOfTime: () => false });
    expect(bracketEnds(none, 16, 64)).toEqual(["64", "> 64"]);
    const low = await findFloor({ minMb: 16, maxMb: 2048, resolutionMb: 8, repeat: 3, probe: model(10), outOfTime: () => false });
    expect(bracketEnds(low, 16, 2048)).toEqual(["< 16", "16"]);
    // Out of time right after the reference at --max: --min was never probed.
    const probe = model(100);
    let probed = 0;
    const counted = (mb: number, repeat: boolean) => (probed++, probe(mb, repeat));
    const stopped = await findFloor({ minMb: 16, maxMb: 2048, resolutionMb: 8, repeat: 3, probe: counted, outOfTime: () => probed >= 1 });
    expect(stopped).toMatchObject({ lowest_passing_mb: 2048, highest_failing_mb: null, finished: false });
    expect(bracketEnds(stopped, 16, 2048)).toEqual(["none tried", "2048"]);
    const found = await findFloor({ minMb: 16, maxMb: 2048, resolutionMb: 8, repeat: 3, probe: model(100), outOfTime: () => false });
    expect(bracketEnds(found, 16, 2048)).toEqual([String(found.highest_failing_mb), String(found.lowest_passing_mb)]);
  });
});

describe("the thrash limit and a probe's outcome", () => {
  test("the limit: the factor times the reference in whole seconds, at least the minimum, at most --timeout", () => {
    const o = { factor: 5, minSeconds: 5, timeoutSec: 600 };
    expect(thrashLimitSeconds(12.4, o)).toBe(62);
    expect(thrashLimitSeconds(0.17, o)).toBe(5);
    expect(thrashLimitSeconds(0.17, { ...o, minSeconds: 0.5 })).toBe(1);
    expect(thrashLimitSeconds(200, o)).toBe(600);
    expect(thrashLimitSeconds(0.17, { ...o, timeoutSec: 3 })).toBe(3);
  });

  test("out of time after the reference is thrashing, whatever set the limit; before it, a timeout", () => {
    const timedOut = { success: false, exit_reason: "timeout", download_exit_reason: null } as const;
    const upload = { afterReference: true, withDownload: false };
    expect(probeVerdict(timedOut, upload)).toEqual({ passed: false, outcome: "thrashing" });
    expect(probeVerdict(timedOut, { ...upload, afterReference: false })).toEqual({ passed: false, outcome: "timeout" });
    expect(probeVerdict({ ...timedOut, exit_reason: "oom_killed" }, upload)).toEqual({ passed: false, outcome: "oom_killed" });
    // The download counts only with --with-download, and thrashes like the upload.
    const slowDownload = { success: true, exit_reason: "success", download_exit_reason: "timeout" } as const;
    expect(probeVerdict(slowDownload, upload)).toEqual({ passed: true, outcome: "success" });
    expect(probeVerdict(slowDownload, { ...upload, withDownload: true })).toEqual({ passed: false, outcome: "download thrashing" });
    expect(probeVerdict({ ...slowDownload, download_exit_reason: "oom_killed" }, { ...upload, withDownload: true })).toEqual({ passed: false, outcome: "download oom_killed" });
    expect(probeVerdict({ ...slowDownload, download_exit_reason: "success" }, { ...upload, withDownload: true })).toEqual({ passed: true, outcome: "success" });
  });
});

describe("find-ram-floor against a real PicoShare", () => {
  let root: string;
  let files: string;
  let picoshare: string;
  beforeAll(async () => {
    picoshare = (await resolvePicoShare()).path;
    root = mkdtempSync(join(tmpdir(), "ram-floor-spec-"));
    files = join(root, "files");
    mkdirSync(files);
    await writeTestFile(testFilePath("8M", files), 8 * MiB);
    await writeTestFile(testFilePath("64M", files), 64 * MiB);
    await writeTestFile(testFilePath("100M", files), 100 * MiB);
  }, 600_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  /** find-ram-floor with a results folder of its own: what it printed, its floors.json, its results log. */
  async function search(name: string, args: string[]) {
    const results = join(root, name);
    const ran = await runScript("find-ram-floor", [...args, "--results-dir", results, "--test-files", files, "--picoshare", picoshare]);
    const [dir] = existsSync(results) ? readdirSync(results).filter((d) => d.startsWith("ram-floor-")) : [];
    const stored = JSON.parse(readFileSync(join(results, dir, "floors.json"), "utf8")) as { run_id: number; floors: Floor[] };
    return { ran, stored, db: join(results, "results.db") };
  }
  const resultOf = (p: FloorProbe) => JSON.parse(readFileSync(p.result_file!, "utf8")) as TestResult;

  test("a bracket whose upper end passes and whose lower end fails when run again; stored as a ram-floor run; no downloads", async () => {
    const { ran, stored, db } = await search("bracket", ["--file-size", "8M", "--min", "8", "--max", "128", "--resolution", "8", "--repeat", "1", "--json"]);
    expect(ran.code).toBe(0);
    const { floors } = JSON.parse(ran.stdout);
    expect(floors).toHaveLength(1);
    const f = floors[0];
    expect(f).toMatchObject({ file_size: "8M", finished: true });
    expect(f.lowest_passing_mb - f.highest_failing_mb).toBeLessThanOrEqual(8);
    expect(f.lowest_passing_mb).toBeGreaterThan(f.highest_failing_mb);
    expect(f.reference_upload_seconds).toBeGreaterThan(0);
    // Each probe is a test of its own, in the results log under the ram-floor run.
    expect(stored.floors).toEqual(floors);
    const runs = query(db, "SELECT id, kind, status FROM runs");
    expect(runs).toEqual([{ id: stored.run_id, kind: "ram-floor", status: "complete" }]);
    expect(query(db, "SELECT count(*) AS n FROM results WHERE run_id = ?", stored.run_id)).toEqual([{ n: f.probes.length }]);
    // The floor itself, in table floors: its bracket as columns, the whole floor as JSON.
    const rows = query(db, "SELECT * FROM floors WHERE run_id = ?", stored.run_id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      file_size: "8M", file_size_bytes: 8 * MiB, lowest_passing_mb: f.lowest_passing_mb, highest_failing_mb: f.highest_failing_mb,
      failure: f.failure, unfinished: 0, probes: f.probes.length, seconds: f.seconds,
    });
    expect(JSON.parse(rows[0].floor_json)).toEqual(f);
    // Without --with-download no probe downloads: the results' download fields are null.
    expect(query(db, "SELECT DISTINCT download_exit_reason AS d, download_duration_seconds AS s FROM results WHERE run_id = ?", stored.run_id)).toEqual([{ d: null, s: null }]);
    for (const p of f.probes as FloorProbe[]) expect(resultOf(p).phases.download).toBe(0);

    // Run again by hand as the search's probes ran (the thrash limit, no download, no recovery): the upper end passes, the lower end fails.
    const again = async (ram: number) =>
      runScript("run-test", [
        "--ram", String(ram), "--file-size", "8M", "--timeout", String(f.thrash_limit_seconds), "--no-download", "--no-recovery",
        "--results-dir", join(root, `again-${ram}`), "--test-files", files, "--picoshare", picoshare,
      ]);
    expect((await again(f.lowest_passing_mb)).code).toBe(0);
    expect((await again(f.highest_failing_mb)).code).toBe(1);
  });

  test("a probe slower than the thrash limit is stopped there and fails as thrashing", async () => {
    // Two probes: 128 MiB, then 14 MiB, where 100M ran out of a 3 s limit 3 times of 3 on a settled host (15 MiB: 2 of 3).
    // 64M no longer serves: once the host is settled before each test it passed at 14 MiB in about 2 s; its
    // 12 s and more were measured while the test file's own writeback was still going on.
    const nearFloor = ["--file-size", "100M", "--min", "14", "--max", "128", "--resolution", "114", "--repeat", "0"];
    const { ran, stored, db } = await search("thrash", [...nearFloor, "--thrash-factor", "1", "--min-thrash-seconds", "3"]);
    expect(ran.code).toBe(0);
    const [f] = stored.floors;
    expect(f.thrash_limit_seconds).toBe(Math.max(3, Math.ceil(f.reference_upload_seconds)));
    expect(f.probes.map((p) => [p.ram_mb, p.passed, p.outcome])).toEqual([[128, true, "success"], [14, false, "thrashing"]]);
    expect(f).toMatchObject({ highest_failing_mb: 14, lowest_passing_mb: 128, failure: "thrashing", finished: true });
    // Stopped at the limit: its upload ran that long, its test ended as run-test's timeout.
    expect(f.probes[1].upload_seconds).toBeGreaterThanOrEqual(f.thrash_limit_seconds - 0.05);
    expect(f.probes[1].upload_seconds).toBeLessThan(f.thrash_limit_seconds + 1);
    expect(resultOf(f.probes[1]).exit_reason).toBe("timeout");
    expect(ran.stdout).toMatch(/^100M +14 +128 +thrashing +2 +\S+ +finished$/m);
    expect(ran.stderr).toMatch(/100M at 14 MiB: thrashing, upload \d+\.\d\d s/);
    expect(query(db, "SELECT failure FROM floors WHERE run_id = ?", stored.run_id)).toEqual([{ failure: "thrashing" }]);
  });

  test("--max-minutes: the search stops, unfinished in JSON, text and table floors, exit 0; compare refuses the run", async () => {
    const args = ["--file-size", "8M", "--min", "8", "--max", "128", "--resolution", "1", "--repeat", "1", "--max-minutes", "0.05"];
    const json = await search("timed-json", [...args, "--json"]);
    expect(json.ran.code).toBe(0);
    const [f] = (JSON.parse(json.ran.stdout) as { floors: Floor[] }).floors;
    expect(f.finished).toBe(false);
    expect(f.lowest_passing_mb).not.toBeNull();
    if (f.highest_failing_mb !== null) expect(f.highest_failing_mb).toBeLessThan(f.lowest_passing_mb!);
    // The limit (3 s) was checked before each probe: it had not passed before the last, it had after it.
    expect(f.seconds).toBeGreaterThanOrEqual(3);
    expect(f.probes.slice(0, -1).reduce((t, p) => t + p.wall_seconds, 0)).toBeLessThan(3);
    expect(query(json.db, "SELECT unfinished FROM floors WHERE run_id = ?", json.stored.run_id)).toEqual([{ unfinished: 1 }]);

    const text = await search("timed-text", args);
    expect(text.ran.code).toBe(0);
    expect(text.ran.stdout).toMatch(/^8M .* UNFINISHED \(time limit\)$/m);
    expect(text.stored.floors[0].finished).toBe(false);
    expect(query(text.db, "SELECT unfinished FROM floors")).toEqual([{ unfinished: 1 }]);

    // Each probe has a limit of its own: there are no cells to compare.
    const id = String(json.stored.run_id);
    const refused = await runScript("compare", ["--run-a", id, "--run-b", id, "--db", json.db]);
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe("");
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(refused.stderr).toMatch(new RegExp(`run ${id} is a RAM-floor search, not a matrix: put floors side by side with bun scripts/report\\.ts ${id} ${id}`));
  });

  test("--with-download: each probe downloads the entry too", async () => {
    const { ran, stored, db } = await search("download", ["--file-size", "8M", "--min", "64", "--max", "128", "--resolution", "64", "--repeat", "0", "--with-download"]);
    expect(ran.code).toBe(0);
    const [f] = stored.floors;
    expect(f.probes.map((p) => [p.ram_mb, p.outcome])).toEqual([[128, "success"], [64, "success"]]);
    for (const p of f.probes) {
      const r = resultOf(p);
      expect(r.download_exit_reason).toBe("success");
      expect(r.download_duration_seconds!).toBeGreaterThan(0);
      expect(r.phases.download).toBeGreaterThan(0);
    }
    expect(query(db, "SELECT download_exit_reason AS d FROM results WHERE run_id = ?", stored.run_id)).toEqual([{ d: "success" }, { d: "success" }]);
  });

  test("bad usage: one line, exit 2", async () => {
    for (const [args, message] of [
      [[], /give the file size to search: --file-size SIZE/],
      [["--file-size", "8M", "--min", "256", "--max", "128"], /--min 256 must be below --max 128/],
      [["--file-size", "8M", "--file-sizes", "8M"], /--file-size SIZE or --file-sizes LIST, not both/],
      [["--file-size", "8M", "--repeat", "x"], /--repeat must be a whole number/],
      [["--file-size", "8M", "--min-thrash-seconds", "0"], /--min-thrash-seconds must be a number above 0/],
    ] as const) {
      const ran = await runScript("find-ram-floor", [...args, "--test-files", files]);
      expect(ran.code).toBe(2);
      expect(ran.stderr).toMatch(message);
      expect(ran.stdout).toBe("");
    }
  });
});
