// The drift sentinel of the matrix: a control cell re-run every K tests,
// quiet on a steady host, firing when the host is slowed on purpose (a CPU
// quota on a cpu cgroup the test makes for the matrix), with --stop-on-drift
// a stop with exit 4 that --resume continues.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { runScript, startScript, waitFor } from "./helpers/run.ts";
import { makeFixture, matrixArgs, matrixDirs, newCase, query, type Fixture } from "./helpers/matrix.ts";
import { controlWatch, parseControl, type ControlRecord } from "../lib/matrix/sentinel.ts";

setDefaultTimeout(300_000);

// The cpu controller's own hierarchy (cgroup v1, as here); the harness's cgroup in it.
const CPU_ROOT = "/sys/fs/cgroup/cpu";
const ownCpu = (() => {
  try {
    const line = readFileSync("/proc/self/cgroup", "utf8").split("\n").find((l) => /^\d+:([^:]*,)?cpu(,[^:]*)?:/.test(l));
    return line ? join(CPU_ROOT, line.split(":")[2]) : null;
  } catch {
    return null;
  }
})();
const canThrottle = ownCpu !== null && existsSync(join(ownCpu, "cpu.cfs_quota_us"));

const record = (throughput: number, cpu = 0.1): ControlRecord => ({
  after_tests: 0, finished: "", success: true, throughput_mbps: throughput, cpu_seconds: cpu, probe_disk_write_mibps: 200, probe_cpu_seconds: 0.05,
  result_file: null, drift: null,
});

describe("the watch", () => {
  test("quiet within the first runs' spread widened to 25 %, fires once on a figure that leaves it", () => {
    const w = controlWatch();
    for (const t of [100, 104, 98]) expect(w.add(record(t), "x")).toBeNull();
    expect(w.add(record(80), "control 4")).toBeNull();
    expect(w.add(record(40), "control 5")).toMatch(/^the control cell drifted: throughput 40 MiB\/s at control 5, against 98-104 MiB\/s in the first 3 control runs: the host got slower/);
    expect(w.add(record(30), "control 6")).toBeNull();
    expect(w.add(record(100, 0.5), "control 7")).toMatch(/CPU seconds 0\.5 s at control 7/);
  });

  test("flags checked", () => {
    expect(parseControl("256MB/100M", undefined, false)).toEqual({ cell: "256MB/100M", every: 5, stop_on_drift: false });
    expect(() => parseControl("256 100M", "2", false)).toThrow(/--control-cell: "256 100M" is not a cell/);
    expect(() => parseControl("256MB/100M", "0", false)).toThrow(/--control-every must be a whole number/);
    expect(() => parseControl(undefined, "3", false)).toThrow(/go with --control-cell/);
  });
});

describe("a matrix with a control cell", () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await makeFixture("sentinel-spec", ["4M", "64M"]);
  }, 300_000);
  afterAll(() => rmSync(f.root, { recursive: true, force: true }));

  test("steady host: a control before the first test and after every test but the last, as control runs; no drift", async () => {
    const c = newCase(f);
    const ran = await runScript("run-test-matrix", matrixArgs(f, c, "--memory-limits", "256", "--file-sizes", "4M", "--iterations", "4", "--control-cell", "256MB/64M", "--control-every", "1"));
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    const [dir] = matrixDirs(c.results);
    const state = JSON.parse(readFileSync(join(dir, "matrix.json"), "utf8"));
    // A false alarm shows the series it came from.
    if (state.controls.some((x: ControlRecord) => x.drift !== null || !x.success)) console.error(readFileSync(join(dir, "summary.txt"), "utf8"));
    expect(state.controls.map((x: ControlRecord) => x.after_tests)).toEqual([0, 1, 2, 3]);
    expect(state.controls.map((x: ControlRecord) => [x.success, x.drift])).toEqual(state.controls.map(() => [true, null]));
    expect(ran.stderr).not.toContain("the control cell drifted");
    // The control runs are not the cell's: a run of their own, the matrix's CSV has the 4 tests only.
    const db = join(c.results, "results.db");
    expect(query(db, "SELECT kind, label, paired_run_id p FROM runs ORDER BY id")).toEqual([
      { kind: "matrix", label: null, p: null }, { kind: "control", label: "control", p: state.run_id },
    ]);
    expect(query(db, "SELECT count(*) n FROM results WHERE run_id = ?", state.run_id)).toEqual([{ n: 4 }]);
    expect(query(db, "SELECT count(*) n FROM results WHERE run_id = ?", state.control_run_id)).toEqual([{ n: 4 }]);
    expect(readFileSync(join(dir, "summary.txt"), "utf8")).toContain("Control cell 256MB/64M, every 1 test(s)");
  });

  test.skipIf(!canThrottle)("a CPU quota put on the matrix after the third control: drift named at once, --stop-on-drift stops with 4, --resume finishes", async () => {
    const c = newCase(f);
    const cg = join(ownCpu!, `sentinel-spec-${process.pid}`);
    mkdirSync(cg);
    try {
      const args = matrixArgs(f, c, "--memory-limits", "256", "--file-sizes", "4M", "--iterations", "6", "--control-cell", "256MB/64M", "--control-every", "1", "--stop-on-drift");
      const run = startScript("run-test-matrix", args);
      // The matrix and everything it starts from now on run in the test's cpu cgroup.
      writeFileSync(join(cg, "cgroup.procs"), String(run.pid));
      await waitFor("the third control", () => /Control 3: [\d.]+ MB\/s/.test(run.stderr()), 120_000);
      writeFileSync(join(cg, "cpu.cfs_period_us"), "100000");
      writeFileSync(join(cg, "cpu.cfs_quota_us"), "5000"); // 5 % of one CPU
      const ran = await run.done;
      writeFileSync(join(cg, "cpu.cfs_quota_us"), "-1");
      expect(ran.code).toBe(4);
      expect(ran.stderr).toMatch(/WARNING: the control cell drifted: throughput [\d.]+ MiB\/s at control 4 \(after test 3\), against [\d.]+-[\d.]+ MiB\/s in the first 3 control runs: the host got slower/);
      expect(ran.stderr).toContain("Stopping: the control cell drifted and --stop-on-drift is set");
      const [dir] = matrixDirs(c.results);
      const state = JSON.parse(readFileSync(join(dir, "matrix.json"), "utf8"));
      expect(state.sessions.at(-1).status).toBe("stopped on drift");
      expect(state.controls.at(-1).drift).toMatch(/throughput/);
      expect(readFileSync(join(dir, "summary.txt"), "utf8")).toMatch(/DRIFT/);

      const resumed = await runScript("run-test-matrix", ["--resume", dir]);
      if (resumed.code !== 0) console.error(resumed.stderr);
      expect(resumed.code).toBe(0);
      const after = JSON.parse(readFileSync(join(dir, "matrix.json"), "utf8"));
      expect(after.cells.filter((x: { warmup: boolean }) => !x.warmup)).toHaveLength(6);
      // The early spread is still the first three's; the quota is gone: no new warning.
      expect(resumed.stderr).not.toContain("the control cell drifted");
    } finally {
      try {
        rmdirSync(cg);
      } catch {}
    }
  });
});
