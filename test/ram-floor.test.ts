// The RAM floor: the search on modelled probes (where the floor is, how a
// flaky upper end moves the bracket, the time limit), and find-ram-floor
// against a real PicoShare in real cgroups on a small file.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findFloor, type FloorProbe } from "../lib/floor/search.ts";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
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
  }, 600_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  test("a bracket whose upper end passes and whose lower end fails when run again; stored as a ram-floor run", async () => {
    const results = join(root, "results");
    const common = ["--test-files", files, "--picoshare", picoshare];
    const ran = await runScript("find-ram-floor", ["--file-size", "8M", "--min", "8", "--max", "128", "--resolution", "8", "--repeat", "1", "--results-dir", results, "--json", ...common]);
    expect(ran.code).toBe(0);
    const { floors } = JSON.parse(ran.stdout);
    expect(floors).toHaveLength(1);
    const f = floors[0];
    expect(f).toMatchObject({ file_size: "8M", finished: true });
    expect(f.lowest_passing_mb - f.highest_failing_mb).toBeLessThanOrEqual(8);
    expect(f.lowest_passing_mb).toBeGreaterThan(f.highest_failing_mb);
    expect(f.reference_upload_seconds).toBeGreaterThan(0);
    // Each probe is a test of its own, in the results log under the ram-floor run.
    const [dir] = readdirSync(results).filter((d) => d.startsWith("ram-floor-"));
    const stored = JSON.parse(readFileSync(join(results, dir, "floors.json"), "utf8"));
    expect(stored.floors[0].lowest_passing_mb).toBe(f.lowest_passing_mb);
    const runs = query(join(results, "results.db"), "SELECT id, kind, status FROM runs");
    expect(runs).toEqual([{ id: stored.run_id, kind: "ram-floor", status: "complete" }]);
    expect(query(join(results, "results.db"), "SELECT count(*) AS n FROM results WHERE run_id = ?", stored.run_id)).toEqual([{ n: f.probes.length }]);
    // The floor itself, in table floors: its bracket as columns, the whole floor as JSON.
    const rows = query(join(results, "results.db"), "SELECT * FROM floors WHERE run_id = ?", stored.run_id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      file_size: "8M", file_size_bytes: 8 * MiB, lowest_passing_mb: f.lowest_passing_mb, highest_failing_mb: f.highest_failing_mb,
      failure: f.failure, unfinished: 0, probes: f.probes.length, seconds: f.seconds,
    });
    expect(JSON.parse(rows[0].floor_json)).toEqual(f);

    // Run again by hand: the upper end passes, the lower end fails.
    const again = async (ram: number) =>
      runScript("run-test", ["--ram", String(ram), "--file-size", "8M", "--results-dir", join(root, `again-${ram}`), ...common]);
    expect((await again(f.lowest_passing_mb)).code).toBe(0);
    expect((await again(f.highest_failing_mb)).code).toBe(1);
  });

  test("bad usage: one line, exit 2", async () => {
    for (const [args, message] of [
      [[], /give the file size to search: --file-size SIZE/],
      [["--file-size", "8M", "--min", "256", "--max", "128"], /--min 256 must be below --max 128/],
      [["--file-size", "8M", "--file-sizes", "8M"], /--file-size SIZE or --file-sizes LIST, not both/],
      [["--file-size", "8M", "--repeat", "x"], /--repeat must be a whole number/],
    ] as const) {
      const ran = await runScript("find-ram-floor", [...args, "--test-files", files]);
      expect(ran.code).toBe(2);
      expect(ran.stderr).toMatch(message);
      expect(ran.stdout).toBe("");
    }
  });
});
