// Shards of a matrix: which cells each shard runs, from --shard I/N or the
// engines' variables, real shards run and merged into one run.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseShard, shardAssignment, shardTests } from "../lib/matrix/shard.ts";
import { matrixCells, testCellName } from "../lib/matrix/plan.ts";
import { parseSize } from "../lib/core/sizes.ts";
import { UsageError } from "../lib/core/errors.ts";
import { runScript } from "./helpers/run.ts";
import { makeFixture, matrixArgs, newCase, query, type Fixture } from "./helpers/matrix.ts";

setDefaultTimeout(120_000);

describe("which shard", () => {
  test("--shard I/N, checked", () => {
    expect(parseShard("2/4", {})).toEqual({ index: 2, count: 4, source: "--shard 2/4" });
    for (const bad of ["0/4", "5/4", "2", "2/0", "a/b", "1/2/3"]) expect(() => parseShard(bad, {})).toThrow(UsageError);
  });

  test("--shard auto from each engine's variables, saying which it read", () => {
    expect(parseShard("auto", { SLURM_ARRAY_TASK_ID: "5", SLURM_ARRAY_TASK_MIN: "4", SLURM_ARRAY_TASK_COUNT: "2" })).toEqual({
      index: 2, count: 2, source: "Slurm: SLURM_ARRAY_TASK_ID=5, SLURM_ARRAY_TASK_MIN=4, SLURM_ARRAY_TASK_COUNT=2",
    });
    expect(parseShard("auto", { JOB_COMPLETION_INDEX: "0", JOB_COMPLETIONS: "3" })).toMatchObject({ index: 1, count: 3, source: expect.stringMatching(/^Kubernetes: /) });
    expect(parseShard("auto", { CI_NODE_INDEX: "2", CI_NODE_TOTAL: "2" })).toMatchObject({ index: 2, count: 2, source: expect.stringMatching(/^CI: /) });
    expect(() => parseShard("auto", {})).toThrow(/found no engine's variables/);
    expect(() => parseShard("auto", { JOB_COMPLETION_INDEX: "1" })).toThrow(/needs JOB_COMPLETIONS/);
    expect(() => parseShard("auto", { CI_NODE_INDEX: "3", CI_NODE_TOTAL: "2" })).toThrow(/is not a shard/);
    expect(() => parseShard("auto", { SLURM_ARRAY_TASK_ID: "7", SLURM_ARRAY_TASK_MIN: "0", SLURM_ARRAY_TASK_COUNT: "4" })).toThrow(/do not make a shard/);
    expect(() => parseShard("auto", { CI_NODE_INDEX: "1", CI_NODE_TOTAL: "2", JOB_COMPLETION_INDEX: "0", JOB_COMPLETIONS: "2" })).toThrow(/more than one engine/);
  });

  test("every cell on exactly one shard, its iterations together, balanced by bytes, the same every time", () => {
    const sizes = ["100M", "500M", "1G", "2G", "5G"].map((s) => parseSize(s));
    const tests = matrixCells([2048, 1024, 512, 256], sizes, 3, 1, [1, 3]);
    const a = shardAssignment(tests, 4);
    expect(shardAssignment([...tests].reverse(), 4)).toEqual(a);
    const shards = [1, 2, 3, 4].map((i) => shardTests(tests, { index: i, count: 4 }));
    expect(shards.flat().length).toBe(tests.length);
    for (const s of shards) {
      for (const t of s) expect(shards.filter((o) => o.some((x) => testCellName(x) === testCellName(t))).length).toBe(1);
    }
    const bytes = shards.map((s) => s.reduce((n, t) => n + t.size.bytes * t.concurrency, 0));
    // The costliest cell (5G x3, 4 tests) bounds how even it can be: within one such cell of each other.
    expect(Math.max(...bytes) - Math.min(...bytes)).toBeLessThanOrEqual(4 * 3 * 5 * 1024 ** 3);
  });
});

describe("real shards, merged", () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await makeFixture("shard-spec", ["4M", "8M"]);
  }, 300_000);
  afterAll(() => rmSync(f.root, { recursive: true, force: true }));

  const matrix = ["--memory-limits", "256,128", "--file-sizes", "4M,8M"];
  const cellsOf = (db: string, run?: number) =>
    query<{ c: string }>(db, `SELECT ram_mb || 'MB/' || file_size || ' ' || exit_reason c FROM results ${run ? `WHERE run_id = ${run}` : ""} ORDER BY ram_mb, file_size`).map((r) => r.c);

  test("a 2-shard matrix merged has the cells and outcomes of the unsharded one; overlaps and other options refused", async () => {
    const whole = newCase(f);
    expect((await runScript("run-test-matrix", matrixArgs(f, whole, ...matrix))).code).toBe(0);
    const dbs: string[] = [];
    for (const [i, env] of [[1, { CI_NODE_INDEX: "1", CI_NODE_TOTAL: "2" }], [2, {}]] as const) {
      const c = newCase(f);
      const ran = await runScript("run-test-matrix", matrixArgs(f, c, ...matrix, "--shard", i === 1 ? "auto" : "2/2"), env);
      expect(ran.code).toBe(0);
      expect(ran.stderr).toContain(i === 1 ? "Shard 1 of 2 (CI: CI_NODE_INDEX=1, CI_NODE_TOTAL=2)" : "Shard: 2 of 2 (--shard 2/2)");
      dbs.push(join(c.results, "results.db"));
    }
    // Each shard measured a part, the two parts together all of it.
    const [one, two] = dbs.map((d) => cellsOf(d));
    expect(one.length).toBeGreaterThan(0);
    expect(two.length).toBeGreaterThan(0);
    expect([...one, ...two].sort()).toEqual(cellsOf(join(whole.results, "results.db")).sort());

    const into = join(f.root, "merged.db");
    const merged = await runScript("results", ["merge", ...dbs, "--into", into]);
    expect(merged.code).toBe(0);
    const runId = Number(merged.stdout.trim());
    expect(cellsOf(into, runId).sort()).toEqual(cellsOf(join(whole.results, "results.db")).sort());
    expect(merged.stderr).toMatch(/shard 1\/2 from .* \(run 1, host \S+\): /);
    const [run] = query<{ status: string; options_json: string }>(into, "SELECT status, options_json FROM runs WHERE id = ?", runId);
    expect(run.status).toBe("complete");
    expect(JSON.parse(run.options_json).merged_from.map((m: { shard: { index: number } }) => m.shard.index)).toEqual([1, 2]);
    // The merged run reads as any run: its results as a table.
    const shown = await runScript("results", ["show", String(runId), "--db", into]);
    expect(shown.code).toBe(0);

    // The same shard twice: its cells would come from two hosts.
    const copy = join(f.root, "copy.db");
    copyFileSync(dbs[0], copy);
    const overlap = await runScript("results", ["merge", dbs[0], copy, "--into", join(f.root, "no.db")]);
    expect(overlap.code).toBe(2);
    expect(overlap.stderr).toMatch(/merge: \S+ was measured by both .* a cell must come from one host/);
    // A shard run with another timeout is another matrix.
    const other = newCase(f);
    expect((await runScript("run-test-matrix", matrixArgs(f, other, ...matrix, "--shard", "2/2", "--timeout", "300"))).code).toBe(0);
    const mixed = await runScript("results", ["merge", dbs[0], join(other.results, "results.db"), "--into", join(f.root, "no.db")]);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toContain("ran with other options or another PicoShare build");
    // An unsharded run is not a shard; one shard alone is missing the other.
    const unsharded = await runScript("results", ["merge", dbs[0], join(whole.results, "results.db"), "--into", join(f.root, "no.db")]);
    expect(unsharded.code).toBe(2);
    expect(unsharded.stderr).toContain("every log must be a shard of the same split");
    // Nothing is written when a merge is refused.
    expect(existsSync(join(f.root, "no.db"))).toBe(false);
  });
});
