// The matrix as a real Slurm job array: a one-node cluster of Debian's
// munged, slurmctld and slurmd started here (test/helpers/slurm.ts), a
// 2-task array with --mem and --exclusive, each task one shard found by
// --shard auto from Slurm's variables, measuring in cgroups beneath its job's;
// the shards merged, and the merged run checked against one local run of the
// same matrix. The host is left as it was: Slurm's cgroups, processes, files.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { shq } from "../lib/core/exec.ts";
import { ROOT, scriptArgv } from "../lib/core/paths.ts";
import { runScript } from "./helpers/run.ts";
import { makeFixture, matrixArgs, newCase, query, type Fixture } from "./helpers/matrix.ts";
import { hostState, hostStateChanges, type HostState } from "./helpers/host-state.ts";
import { slurmMissing, startSlurm, type TestSlurm } from "./helpers/slurm.ts";

setDefaultTimeout(300_000);

const missing = slurmMissing();
if (missing) console.error(`slurm tests skipped: ${missing}`);

// 4 cells of 2 iterations: each shard gets two, a cell's iterations together.
const MATRIX = ["--memory-limits", "128,256", "--file-sizes", "4M,8M", "--iterations", "2"];
const JOB_MEM_MB = 1024;

const outcomes = (db: string, run: number) =>
  query(db, "SELECT ram_mb, file_size, concurrency, iteration, success, exit_reason FROM results WHERE run_id = ? ORDER BY ram_mb, file_size, iteration", run);

describe.skipIf(missing !== null)("a matrix as a Slurm job array", () => {
  let f: Fixture;
  let slurm: TestSlurm;
  let before: HostState;
  beforeAll(async () => {
    before = hostState({ cgroups: true });
    f = await makeFixture("slurm-spec", ["4M", "8M"]);
    slurm = await startSlurm();
  }, 300_000);
  afterAll(async () => {
    await slurm?.stop();
    rmSync(f.root, { recursive: true, force: true });
    expect(hostStateChanges(before, hostState({ cgroups: true }))).toEqual([]);
  });

  test("two tasks, one shard each, in their job's cgroup; merged, the same cells and outcomes as one local run", async () => {
    const c = newCase(f);
    // Each task its own results folder, named by its index (expanded by the shell in the job).
    const TASK = "@TASK@";
    const shardArgs = matrixArgs(f, { ...c, results: join(c.base, `shard-${TASK}`) }, "--shard", "auto", ...MATRIX)
      .map((a) => shq(a).replace(TASK, "'$SLURM_ARRAY_TASK_ID'"));
    // What a user's batch script does, plus a note of the task's cgroup and its job's limit.
    const script = join(c.base, "matrix.sh");
    writeFileSync(
      script,
      [
        "#!/bin/sh",
        "set -e",
        'm=$(grep ":memory:" /proc/self/cgroup | cut -d: -f3)',
        `echo "$m" > ${c.base}/cgroup-$SLURM_ARRAY_TASK_ID`,
        `cat "/sys/fs/cgroup/memory\${m%/step_batch/*}/memory.limit_in_bytes" > ${c.base}/limit-$SLURM_ARRAY_TASK_ID`,
        `exec ${scriptArgv("run-test-matrix", shardArgs).join(" ")}`,
        "",
      ].join("\n"),
    );
    chmodSync(script, 0o755);
    const sb = await slurm.sbatch(["--wait", "--array=0-1", `--mem=${JOB_MEM_MB}`, "--exclusive", `--output=${c.base}/task-%a.log`, `--chdir=${ROOT}`, script]);
    const logs = ["0", "1"].map((t) => (existsSync(join(c.base, `task-${t}.log`)) ? readFileSync(join(c.base, `task-${t}.log`), "utf8") : ""));
    if (sb.exitCode !== 0) console.error(sb.stderr, logs.join("\n----\n"));
    expect(sb.exitCode).toBe(0);

    for (const [i, log] of logs.entries()) {
      // --shard auto says where its index came from.
      expect(log).toContain(`Shard ${i + 1} of 2 (Slurm: SLURM_ARRAY_TASK_ID=${i}, SLURM_ARRAY_TASK_MIN=0, SLURM_ARRAY_TASK_COUNT=2)`);
      expect(log).toContain("Test matrix complete!");
      // Slurm put the task in its job's memory cgroup, limited to --mem; the harness measured beneath it.
      const cg = readFileSync(join(c.base, `cgroup-${i}`), "utf8").trim();
      expect(cg).toMatch(new RegExp(`/slurm-spec-${process.pid}/slurm_${slurm.node}/uid_0/job_\\d+/step_batch/task_0$`));
      expect(Number(readFileSync(join(c.base, `limit-${i}`), "utf8"))).toBe(JOB_MEM_MB * 1048576);
      expect(log).toContain(`beneath the harness's own memory cgroup /sys/fs/cgroup/memory${cg}`);
    }

    const merged = join(c.base, "merged.db");
    const m = await runScript("results", ["merge", join(c.base, "shard-0", "results.db"), join(c.base, "shard-1", "results.db"), "--into", merged]);
    if (m.code !== 0) console.error(m.stderr);
    expect(m.code).toBe(0);
    const [run] = query(merged, "SELECT id, status, options_json FROM runs WHERE kind = 'matrix'");
    expect(run.status).toBe("complete");
    const from = JSON.parse(run.options_json).merged_from as { shard: { index: number; count: number }; cells: string[] }[];
    expect(from.map((s) => s.shard)).toEqual([0, 1].map((i) => ({
      index: i + 1, count: 2, source: `Slurm: SLURM_ARRAY_TASK_ID=${i}, SLURM_ARRAY_TASK_MIN=0, SLURM_ARRAY_TASK_COUNT=2`,
    })));
    expect(from.map((s) => s.cells.length)).toEqual([2, 2]);

    const local = await runScript("run-test-matrix", matrixArgs(f, c, ...MATRIX));
    if (local.code !== 0) console.error(local.stderr);
    expect(local.code).toBe(0);
    const localDb = join(c.results, "results.db");
    const [localRun] = query(localDb, "SELECT id FROM runs WHERE kind = 'matrix'");
    const want = outcomes(localDb, localRun.id);
    expect(want).toHaveLength(8);
    expect(outcomes(merged, run.id)).toEqual(want);
  });
});
