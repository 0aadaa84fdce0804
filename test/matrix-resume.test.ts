// Interrupting a matrix in the middle of a test, then --resume: every cell
// done once, nothing left running, the database run complete.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { ROOT, scriptArgv } from "../lib/core/paths.ts";
import { runScript, startScript, uploadStarted, waitFor, type Ran } from "./helpers/run.ts";
import { alive, cgroupPids, testCgroups } from "./helpers/cgroups.ts";
import { leftovers, makeFixture, matrixArgs, matrixDirs, newCase, query, readCsv, type Fixture, type Case } from "./helpers/matrix.ts";

setDefaultTimeout(120_000);

let f: Fixture;
beforeAll(async () => {
  f = await makeFixture("matrix-resume-spec", ["4M", "64M"]);
}, 300_000);
afterAll(() => rmSync(f.root, { recursive: true, force: true }));

const ARGS = ["--memory-limits", "256,128", "--file-sizes", "4M,64M"];

/** Once the second test's upload is under way: its run-test, PicoShare and cgroup. */
async function secondTestUploading(c: Case, stderr: () => string) {
  await waitFor("[2/4] Running", () => stderr().includes("[2/4] Running"));
  const [dir] = matrixDirs(c.results);
  const child = await waitFor("the second run-test", () => {
    try {
      const lock = JSON.parse(readFileSync(join(dir, "matrix.lock"), "utf8"));
      return lock.child_pid && readFileSync(join(dir, "test-256MB-64M.log"), "utf8").includes(`pid ${lock.child_pid}`) && (lock.child_pid as number);
    } catch {
      return null;
    }
  });
  const cgroup = await waitFor("its cgroup", () => testCgroups(child)[0]);
  const [picoshare] = await waitFor("PicoShare in it", () => cgroupPids(cgroup).length > 0 && cgroupPids(cgroup));
  await waitFor("the upload to start", () => uploadStarted(c.work));
  return { dir, child, cgroup, picoshare };
}

function expectInterrupted(ran: Ran, c: Case, dir: string, s: { child: number; cgroup: string; picoshare: number }) {
  expect(ran.code).toBe(130);
  expect(ran.stderr).toContain("Caught SIGINT");
  expect(ran.stderr).toContain("Test matrix interrupted: 1 of 4 tests run");
  expect(ran.stderr).toContain(`Resume with: bun scripts/run-test-matrix.ts --resume ${dir}`);
  // The running test cleaned up: no run-test, no PicoShare, no cgroup, no temp folder.
  expect(alive(s.child)).toBe(false);
  expect(alive(s.picoshare)).toBe(false);
  expect(existsSync(s.cgroup)).toBe(false);
  expect(readdirSync(c.work)).toEqual([]);
  expect(readFileSync(join(dir, "test-256MB-64M.log"), "utf8")).not.toContain("second interrupt");
  // The partial picture: the finished cell in the CSV and summary, the run interrupted.
  expect(readCsv(dir).map((r) => `${r.ram_mb}/${r.file_size}`)).toEqual(["256/4M"]);
  const summary = readFileSync(join(dir, "summary.txt"), "utf8");
  expect(summary).toMatch(/Status:\s+interrupted/);
  expect(summary).toMatch(/Tests run:\s+1 of 4/);
  expect(summary).toContain("Not run yet: 256MB/64M, 128MB/4M, 128MB/64M");
  expect(summary).toContain(`Resume with: bun scripts/run-test-matrix.ts --resume ${dir}`);
  expect(query(join(c.results, "results.db"), "SELECT status FROM runs")).toEqual([{ status: "interrupted" }]);
  expect(existsSync(join(dir, "matrix.lock"))).toBe(false);
}

async function resumeAndCheck(c: Case, dir: string) {
  const ran = await runScript("run-test-matrix", ["--resume", dir]);
  if (ran.code !== 0) console.error(ran.stderr);
  expect(ran.code).toBe(0);
  expect(ran.stderr).toContain("Resuming: 1 of 4 tests have results, 3 to run");
  expect(ran.stderr).not.toContain("[1/4] Running");
  for (const n of [2, 3, 4]) expect(ran.stderr).toContain(`[${n}/4] Running`);
  expect(ran.stderr).toContain("Test matrix complete!");
  expect(ran.stderr).toContain("  Passed: 4");
  // Each cell once, in matrix order, in the same CSV; the summary complete.
  const rows = readCsv(dir);
  expect(rows.map((r) => `${r.ram_mb}/${r.file_size}/${r.success}`)).toEqual(["256/4M/true", "256/64M/true", "128/4M/true", "128/64M/true"]);
  expect(new Set(rows.map((r) => r.result_file)).size).toBe(4);
  const summary = readFileSync(join(dir, "summary.txt"), "utf8");
  expect(summary).toMatch(/Status:\s+complete/);
  expect(summary).toMatch(/Tests run:\s+4 of 4/);
  expect(summary).not.toContain("Resume with");
  // Same database run, complete, one result per cell.
  const db = join(c.results, "results.db");
  const runs = query(db, "SELECT id, status FROM runs");
  expect(runs).toEqual([{ id: JSON.parse(readFileSync(join(dir, "matrix.json"), "utf8")).run_id, status: "complete" }]);
  const results = query(db, "SELECT ram_mb, file_size, result_file FROM results WHERE run_id = ? ORDER BY ram_mb DESC, file_size", runs[0].id);
  expect(results.map((r) => `${r.ram_mb}/${r.file_size}`)).toEqual(["256/4M", "256/64M", "128/4M", "128/64M"]);
  expect(query(db, "SELECT COUNT(*) AS n FROM results")).toEqual([{ n: 4 }]);
  // Two sessions recorded; nothing left anywhere.
  expect(JSON.parse(readFileSync(join(dir, "matrix.json"), "utf8")).sessions.map((s: any) => s.status)).toEqual(["interrupted", "complete"]);
  expect(leftovers(dir, c.work)).toEqual([]);
  expect(readdirSync(c.results).filter((n) => n.startsWith("matrix-"))).toHaveLength(1);
}

describe("interrupted in the middle of the second test, then resumed", () => {
  test("SIGINT to the matrix pid: the test cleans up, partial results, exit 130; --resume runs the rest", async () => {
    const c = newCase(f);
    const run = startScript("run-test-matrix", matrixArgs(f, c, ...ARGS));
    const s = await secondTestUploading(c, run.stderr);
    process.kill(run.pid, "SIGINT");
    const ran = await run.done;
    expectInterrupted(ran, c, s.dir, s);
    // The run-test got the SIGINT from the matrix, and cleaned up.
    expect(readFileSync(join(s.dir, "test-256MB-64M.log"), "utf8")).toContain("Caught SIGINT");
    await resumeAndCheck(c, s.dir);
  });

  test("SIGINT to the matrix's process group, as a terminal's Ctrl-C sends it: the same, one signal, no forced exit", async () => {
    const c = newCase(f);
    // A process group of its own, like a shell job.
    const [bun, ...argv] = scriptArgv("run-test-matrix", matrixArgs(f, c, ...ARGS));
    const child = spawn(bun, argv, {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let stderr = "";
    let stdout = "";
    child.stderr!.on("data", (d) => (stderr += d));
    child.stdout!.on("data", (d) => (stdout += d));
    const done = new Promise<Ran>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
    const s = await secondTestUploading(c, () => stderr);
    process.kill(-child.pid!, "SIGINT");
    const ran = await done;
    expectInterrupted(ran, c, s.dir, s);
    const log = readFileSync(join(s.dir, "test-256MB-64M.log"), "utf8");
    expect(log.match(/Caught SIG/g)).toHaveLength(1);
    expect(log).toContain("Caught SIGINT");
    await resumeAndCheck(c, s.dir);
  });
});
