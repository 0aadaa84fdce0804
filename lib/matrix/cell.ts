// One test of a matrix (one iteration of a cell): run-test as its own process
// (a crash or an OOM there cannot take the matrix down), its output appended
// to test-{RAM}MB-{SIZE}.log (test-{RAM}MB-{SIZE}-xN.log above concurrency 1),
// and what came of it: the result it wrote, or why there is none.
import { join } from "node:path";
import { runTestChild } from "./run-test-child.ts";
import { childEnv, matrixPassedArgs, runTestArgs } from "../upload/options.ts";
import { orphanOf } from "./orphans.ts";
import { twinChoice, twinFor } from "../upload/instructions.ts";
import { interruptSignal, interrupted } from "../core/cleanup.ts";
import { isoTimestamp, type TestResult } from "../upload/result.ts";
import type { Cell } from "./plan.ts";
import type { MatrixOptions } from "./state.ts";

export interface CellRunContext {
  dir: string;
  runId: number;
  db: string;
  options: MatrixOptions;
  /** Result files already counted for another cell (never taken twice). */
  claimed: Set<string>;
  onStart?: (pid: number) => void;
}

export interface CellOutcome {
  /** The result run-test wrote (absolute path), or null. */
  result: TestResult | null;
  resultFile: string | null;
  /** Why there is no result; null when there is one. */
  error: string | null;
  exitCode: number | null;
  signal: string | null;
  logFile: string;
  wallSeconds: number;
}

export function cellLogPath(dir: string, cell: Pick<Cell, "ram" | "size" | "concurrency">): string {
  return join(dir, `test-${cell.ram}MB-${cell.size.label}${cell.concurrency > 1 ? `-x${cell.concurrency}` : ""}.log`);
}

/**
 * run-test's arguments for a cell (one test each: which one goes in the
 * environment, see cellEnv); every path absolute, so a resume from elsewhere
 * runs the same.
 */
export function cellArgs(cell: Cell, ctx: Pick<CellRunContext, "dir" | "db" | "options">): string[] {
  const o = ctx.options;
  return runTestArgs({
    ram: cell.ram, size: cell.size, resultsDir: ctx.dir, db: ctx.db, picoshare: o.picoshare.path, workDir: o.work_dir,
    concurrency: cell.concurrency > 1 ? cell.concurrency : null,
    ...matrixPassedArgs(o),
    // Within --instruction-twins: the cell's first measured tests (warm-ups get none: run-test skips them); within --instruction-sizes: its cells.
    countInstructions: twinFor(cell.iteration - o.warmup, cell.size.label, twinChoice(o)),
    instructionTwins: null,
    instructionSizes: null,
  });
}

/** run-test's environment for a test: the database run, which of the cell's tests it is, and the build's label. */
export function cellEnv(cell: Cell, runId: number, picoshare?: { version: string; sha256: string }): Record<string, string> {
  return childEnv({ runId, iteration: cell.iteration, warmup: cell.warmup, picoshare });
}

export async function runCell(cell: Cell, ctx: CellRunContext): Promise<CellOutcome> {
  const logFile = cellLogPath(ctx.dir, cell);
  const args = cellArgs(cell, ctx);
  const env = cellEnv(cell, ctx.runId, ctx.options.picoshare);
  const repeated = ctx.options.iterations > 1 || ctx.options.warmup > 0;
  const shown = repeated ? `PERF_ITERATION=${env.PERF_ITERATION}${cell.warmup ? " PERF_WARMUP=1" : ""} ` : "";
  const child = await runTestChild(args, {
    logFile,
    timeoutSec: ctx.options.timeout,
    twin: args.includes("--count-instructions"),
    env,
    header: (pid) => {
      // The pid names the test's cgroup (picoshare-perf-PID-...) should one need finding.
      ctx.onStart?.(pid);
      return `--- ${isoTimestamp(new Date())} run-test (pid ${pid}): ${shown}bun scripts/run-test.ts ${args.join(" ")}`;
    },
  });
  if (interrupted()) throw interruptSignal.reason;

  const base = { exitCode: child.ran.code, signal: child.ran.signal, logFile, wallSeconds: child.ran.seconds };
  let { resultFile, result } = child;
  if (!result) {
    // Killed between writing its result and printing the path: the file is still there.
    const orphan = orphanOf(cell, ctx.dir, ctx.runId, ctx.claimed);
    resultFile = orphan?.path ?? null;
    result = orphan?.result ?? null;
  }
  if (result && resultFile) return { ...base, result, resultFile, error: null };
  return { ...base, result: null, resultFile: null, error: child.failure };
}
