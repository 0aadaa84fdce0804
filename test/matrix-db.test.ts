// The results log survives a writer killed with SIGKILL in the middle of a
// run: the file is intact, every committed row is there, and the run can go on.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { Database } from "bun:sqlite";
import { ResultsDb } from "../lib/store/results-db.ts";
import { runScript, startScript, waitFor } from "./helpers/run.ts";
import { alive, testCgroups, cgroupPids } from "./helpers/cgroups.ts";
import { leftovers, makeFixture, matrixArgs, matrixDirs, newCase, query, readCsv, type Fixture } from "./helpers/matrix.ts";
import { BUN } from "../lib/core/paths.ts";

setDefaultTimeout(120_000);

let f: Fixture;
beforeAll(async () => {
  f = await makeFixture("matrix-db-spec", ["4M", "256M"]);
}, 300_000);
afterAll(() => rmSync(f.root, { recursive: true, force: true }));

function integrity(dbPath: string): string {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.query("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check;
  } finally {
    db.close();
  }
}

describe("a writer killed with SIGKILL", () => {
  test("in the middle of a stream of commits: integrity ok, every acknowledged row intact", async () => {
    const c = newCase(f);
    const dbPath = join(c.base, "results.db");
    const fixture = resolve(import.meta.dir, "fixtures", "results-db-writer.ts");
    const proc = Bun.spawn([BUN, fixture, dbPath], { stdout: "pipe", stderr: "inherit" });
    let out = "";
    const reading = (async () => {
      for await (const chunk of proc.stdout) out += new TextDecoder().decode(chunk);
    })();
    await waitFor("300 committed rows", () => /row 300\n/.test(out), 60_000);
    proc.kill("SIGKILL");
    await proc.exited;
    await reading;
    const acknowledged = Math.max(...[...out.matchAll(/row (\d+)/g)].map((m) => Number(m[1])));
    const runId = Number(/run (\d+)/.exec(out)![1]);

    expect(integrity(dbPath)).toBe("ok");
    const rows = query(dbPath, "SELECT ram_mb, entry_id, result_file, raw_json FROM results WHERE run_id = ? ORDER BY id", runId);
    expect(rows.length).toBeGreaterThanOrEqual(acknowledged);
    expect(rows.length).toBeLessThanOrEqual(acknowledged + 1);
    rows.forEach((r, i) => {
      expect(r).toMatchObject({ ram_mb: i + 1, entry_id: `e${i + 1}`, result_file: `/results/result-${i + 1}.json` });
      expect(JSON.parse(r.raw_json).ram_mb).toBe(i + 1);
    });
    expect(query(dbPath, "SELECT status FROM runs WHERE id = ?", runId)).toEqual([{ status: "running" }]);
    // The next writer opens it and goes on.
    const db = ResultsDb.open(dbPath);
    db.setRunStatus(runId, "interrupted", new Date().toISOString());
    db.close();
    expect(integrity(dbPath)).toBe("ok");
  });

  test("a matrix killed mid-test: resume refuses while its run-test runs, then adopts that test's result", async () => {
    const c = newCase(f);
    const run = startScript("run-test-matrix", matrixArgs(f, c, "--memory-limits", "256", "--file-sizes", "4M,256M"));
    await waitFor("[2/2] Running", () => run.stderr().includes("[2/2] Running"));
    const [dir] = matrixDirs(c.results);
    const child = await waitFor("the second run-test", () => {
      try {
        return JSON.parse(readFileSync(join(dir, "matrix.lock"), "utf8")).child_pid as number;
      } catch {
        return null;
      }
    });
    const cgroup = await waitFor("its cgroup", () => testCgroups(child)[0]);
    await waitFor("PicoShare in it", () => cgroupPids(cgroup).length > 0);
    // While the matrix runs, its folder cannot be resumed by another.
    const busy = await runScript("run-test-matrix", ["--resume", dir]);
    expect(busy.code).toBe(2);
    expect(busy.stderr).toContain(`is being run by another matrix (pid ${run.pid})`);
    process.kill(run.pid, "SIGKILL");
    await run.done;
    const dbPath = join(c.results, "results.db");
    expect(integrity(dbPath)).toBe("ok");
    expect(query(dbPath, "SELECT status FROM runs")).toEqual([{ status: "running" }]);
    expect(query(dbPath, "SELECT ram_mb, file_size FROM results")).toEqual([{ ram_mb: 256, file_size: "4M" }]);
    expect(readCsv(dir).map((r) => r.file_size)).toEqual(["4M"]);

    // Its run-test goes on to the end of its upload: the folder is not resumable until it is done.
    expect(alive(child)).toBe(true);
    const early = await runScript("run-test-matrix", ["--resume", dir]);
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(new RegExp(`a run-test for .* \\(pid ${child}\\), started by a matrix that is gone, is still running`));
    await waitFor("the orphaned run-test to end", () => !alive(child), 60_000);

    const ran = await runScript("run-test-matrix", ["--resume", dir]);
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    expect(ran.stderr).toContain("Found results written before the interruption: 256MB/256M");
    expect(ran.stderr).toContain("Resuming: 2 of 2 tests have results, 0 to run");
    expect(ran.stderr).not.toContain("Running:");
    expect(readCsv(dir).map((r) => `${r.file_size}/${r.success}`)).toEqual(["4M/true", "256M/true"]);
    expect(integrity(dbPath)).toBe("ok");
    expect(query(dbPath, "SELECT status FROM runs")).toEqual([{ status: "complete" }]);
    expect(query(dbPath, "SELECT file_size FROM results ORDER BY id")).toEqual([{ file_size: "4M" }, { file_size: "256M" }]);
    expect(leftovers(dir, c.work)).toEqual([]);
  });
});
