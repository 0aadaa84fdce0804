// One cell of a matrix: run-test as its own process (a crash or an OOM there
// cannot take the matrix down), its output appended to test-{RAM}MB-{SIZE}.log,
// and what came of it: the result it wrote, or why there is none.
import { appendFileSync, existsSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { runProjectScript } from "./child-script.ts";
import { interruptSignal, interrupted } from "./cleanup.ts";
import { isoTimestamp, type TestResult } from "./result.ts";
import type { Cell } from "./matrix-plan.ts";
import type { MatrixOptions } from "./matrix-state.ts";

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

export function cellLogPath(dir: string, ram: number, sizeLabel: string): string {
  return join(dir, `test-${ram}MB-${sizeLabel}.log`);
}

/** run-test's arguments for a cell: everything absolute, so a resume from elsewhere runs the same. */
export function runTestArgs(cell: Cell, ctx: Pick<CellRunContext, "dir" | "db" | "options">): string[] {
  const o = ctx.options;
  return [
    "--ram", String(cell.ram),
    "--file-size", cell.size.label,
    "--timeout", String(o.timeout),
    "--results-dir", ctx.dir,
    "--db", ctx.db,
    "--backend", o.backend,
    "--picoshare", o.picoshare.path,
    "--test-files", o.test_files,
    ...(o.work_dir ? ["--work-dir", o.work_dir] : []),
    ...(o.verify ? ["--verify"] : []),
  ];
}

/**
 * A hard stop for a run-test that hangs: the upload's own timeout, the same
 * again for --verify's download, and room for start-up and teardown.
 */
export function cellDeadlineMs(timeoutSec: number): number {
  return (2 * timeoutSec + 300) * 1000;
}

function readResult(path: string): TestResult | null {
  try {
    const r = JSON.parse(readFileSync(path, "utf8")) as TestResult;
    return typeof r.ram_mb === "number" && typeof r.file_size === "string" ? r : null;
  } catch {
    return null;
  }
}

/** Every result file in the matrix folder that belongs to database run `runId`. */
export function resultsOfRun(dir: string, runId: number): { path: string; result: TestResult }[] {
  const found: { path: string; result: TestResult }[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!/^result-.*\.json$/.test(name)) continue;
    const path = join(dir, name);
    const result = readResult(path);
    if (result && result.run_id === runId) found.push({ path, result });
  }
  return found;
}

/** The last `ERROR:` line run-test logged in this attempt, without its timestamp. */
function lastError(logText: string): string | null {
  const lines = logText.split("\n").filter((l) => l.includes("ERROR:"));
  const last = lines.at(-1);
  return last ? last.replace(/^\[[^\]]*\]\s*/, "").replace(/^ERROR:\s*/, "") : null;
}

export async function runCell(cell: Cell, ctx: CellRunContext): Promise<CellOutcome> {
  const logFile = cellLogPath(ctx.dir, cell.ram, cell.size.label);
  const args = runTestArgs(cell, ctx);
  const before = existsSync(logFile) ? readFileSync(logFile).length : 0;
  const ran = await runProjectScript("run-test", args, {
    env: { PERF_RUN_ID: String(ctx.runId) },
    stderrPath: logFile,
    captureStdout: true,
    deadlineMs: cellDeadlineMs(ctx.options.timeout),
    onStart: (pid) => {
      // The pid names the test's cgroup (picoshare-perf-PID-...) should one need finding.
      appendFileSync(logFile, `--- ${isoTimestamp(new Date())} run-test (pid ${pid}): bun scripts/run-test.ts ${args.join(" ")}\n`);
      ctx.onStart?.(pid);
    },
  });
  const printed = ran.stdout.trim().split("\n").filter(Boolean).at(-1);
  if (printed) appendFileSync(logFile, `${printed}\n`);
  if (interrupted()) throw interruptSignal.reason;

  const base = { exitCode: ran.code, signal: ran.signal, logFile, wallSeconds: ran.seconds };
  let resultFile = printed ? resolve(printed) : null;
  let result = resultFile && existsSync(resultFile) ? readResult(resultFile) : null;
  if (!result) {
    // Killed between writing its result and printing the path: the file is still there.
    const orphan = resultsOfRun(ctx.dir, ctx.runId).find(
      (f) => !ctx.claimed.has(f.path) && f.result.ram_mb === cell.ram && f.result.file_size === cell.size.label,
    );
    resultFile = orphan?.path ?? null;
    result = orphan?.result ?? null;
  }
  if (result && resultFile) return { ...base, result, resultFile, error: null };

  const how = ran.timedOut
    ? `run-test did not end within ${cellDeadlineMs(ctx.options.timeout) / 1000} s and was stopped`
    : ran.signal
      ? `run-test was killed by ${ran.signal}`
      : `run-test exited with code ${ran.code}`;
  const attempt = readFileSync(logFile).subarray(before).toString("utf8");
  const why = lastError(attempt);
  return { ...base, result: null, resultFile: null, error: `${how} without writing a result${why ? `: ${why}` : ""}` };
}
