// A matrix split over hosts: shard I of N gets a deterministic share of the
// cells, balanced by their expected cost, the same on every host; a cell's
// iterations stay on one shard, so no cell is measured on two hosts. The
// engines that run the shards (Slurm job arrays, Kubernetes Indexed Jobs, CI
// matrices) each hand a job its index; `--shard auto` reads theirs, and says
// which it used.
import { UsageError } from "../core/errors.ts";
import { testCellName, type Cell } from "./plan.ts";

export interface Shard {
  /** 1-based. */
  index: number;
  count: number;
  /** Where it came from: "--shard 2/4", or the engine's variables and their values. */
  source: string;
}

/** --shard I/N (1-based) or "auto". */
export function parseShard(text: string, env: Record<string, string | undefined> = process.env): Shard {
  if (text === "auto") return shardFromEnv(env);
  const m = /^([1-9][0-9]*)\/([1-9][0-9]*)$/.exec(text);
  if (!m || Number(m[1]) > Number(m[2])) {
    throw new UsageError(`--shard "${text}" is not I/N with 1 <= I <= N (e.g. --shard 2/4), or auto`);
  }
  return { index: Number(m[1]), count: Number(m[2]), source: `--shard ${text}` };
}

const int = (v: string | undefined) => (v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : null);

/**
 * The shard an engine gave this job: Slurm's array (SLURM_ARRAY_TASK_ID from
 * SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT tasks), a Kubernetes Indexed
 * Job (JOB_COMPLETION_INDEX, 0-based; the count in JOB_COMPLETIONS, which the
 * Job's pod template sets from its completions), or a CI matrix (CI_NODE_INDEX
 * of CI_NODE_TOTAL, 1-based). None, or a half-set one: a UsageError.
 */
export function shardFromEnv(env: Record<string, string | undefined>): Shard {
  const found: Shard[] = [];
  const slurm = [int(env.SLURM_ARRAY_TASK_ID), int(env.SLURM_ARRAY_TASK_COUNT), int(env.SLURM_ARRAY_TASK_MIN)];
  if (env.SLURM_ARRAY_TASK_ID !== undefined) {
    const [id, count, min] = slurm;
    if (id === null || count === null || min === null || id - min >= count || id < min) {
      throw new UsageError(
        `--shard auto: SLURM_ARRAY_TASK_ID=${env.SLURM_ARRAY_TASK_ID}, SLURM_ARRAY_TASK_COUNT=${env.SLURM_ARRAY_TASK_COUNT}, SLURM_ARRAY_TASK_MIN=${env.SLURM_ARRAY_TASK_MIN} ` +
          "do not make a shard (submit a contiguous array, e.g. sbatch --array=0-3)",
      );
    }
    found.push({ index: id - min + 1, count, source: `Slurm: SLURM_ARRAY_TASK_ID=${id}, SLURM_ARRAY_TASK_MIN=${min}, SLURM_ARRAY_TASK_COUNT=${count}` });
  }
  if (env.JOB_COMPLETION_INDEX !== undefined) {
    const [i, n] = [int(env.JOB_COMPLETION_INDEX), int(env.JOB_COMPLETIONS)];
    if (i === null || n === null || i >= n) {
      throw new UsageError(
        `--shard auto: JOB_COMPLETION_INDEX=${env.JOB_COMPLETION_INDEX} needs JOB_COMPLETIONS set to the Job's completions (got ${env.JOB_COMPLETIONS ?? "nothing"}) in its pod template`,
      );
    }
    found.push({ index: i + 1, count: n, source: `Kubernetes: JOB_COMPLETION_INDEX=${i}, JOB_COMPLETIONS=${n}` });
  }
  if (env.CI_NODE_INDEX !== undefined) {
    const [i, n] = [int(env.CI_NODE_INDEX), int(env.CI_NODE_TOTAL)];
    if (i === null || n === null || i < 1 || i > n) {
      throw new UsageError(`--shard auto: CI_NODE_INDEX=${env.CI_NODE_INDEX} of CI_NODE_TOTAL=${env.CI_NODE_TOTAL ?? "nothing"} is not a shard (1-based, at most the total)`);
    }
    found.push({ index: i, count: n, source: `CI: CI_NODE_INDEX=${i}, CI_NODE_TOTAL=${n}` });
  }
  if (found.length === 0) {
    throw new UsageError(
      "--shard auto found no engine's variables (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX, CI_NODE_INDEX): give --shard I/N, or run under one",
    );
  }
  if (found.length > 1) throw new UsageError(`--shard auto found more than one engine (${found.map((f) => f.source).join("; ")}): give --shard I/N`);
  return found[0];
}

/** A cell's expected cost: the bytes its tests upload. */
function cost(c: Cell): number {
  return c.size.bytes * c.concurrency;
}

/**
 * Which shard (1-based) runs each cell, by cell name: the cells, costliest
 * first (then by name), each given to the shard with the least cost so far
 * (then the lowest index). The same on every host for the same matrix.
 */
export function shardAssignment(tests: Cell[], count: number): Map<string, number> {
  const cells = new Map<string, number>();
  for (const t of tests) cells.set(testCellName(t), (cells.get(testCellName(t)) ?? 0) + cost(t));
  const load = new Array<number>(count).fill(0);
  const out = new Map<string, number>();
  for (const [name, c] of [...cells].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))) {
    let best = 0;
    for (let i = 1; i < count; i++) if (load[i] < load[best]) best = i;
    load[best] += c;
    out.set(name, best + 1);
  }
  return out;
}

/** The tests of shard `s`, in matrix order. */
export function shardTests(tests: Cell[], s: Pick<Shard, "index" | "count">): Cell[] {
  const owner = shardAssignment(tests, s.count);
  return tests.filter((t) => owner.get(testCellName(t)) === s.index);
}
