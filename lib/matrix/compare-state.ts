// A live comparison's own record, compare.json in its folder: each side kept
// as a matrix state of its own (lib/matrix/state.ts: its results-log run, its
// options with its build, one record per test done), rewritten atomically
// after every test, so that an interrupted comparison (Ctrl-C, a kill, a
// reboot) is continued with `compare --resume DIR`: the tests recorded are
// not run again, the others are, in the same order.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError, errorMessage } from "../core/errors.ts";
import { writeFileAtomic } from "../core/files.ts";
import { command, displayPath } from "../core/paths.ts";
import { parseSize } from "../core/sizes.ts";
import { matrixCells, type Cell } from "./plan.ts";
import { findRecord, hasResult, matrixTests, STATE_VERSION, type MatrixOptions, type MatrixState } from "./state.ts";

export const COMPARE_STATE_FILE = "compare.json";
export const COMPARE_STATE_VERSION = 1;

/** A side's key: "a" the baseline, "b" the one candidate, or "b1", "b2"... with several. */
export type SideName = string;

export interface CompareState {
  version: number;
  created: string;
  /** The SQLite results log (absolute). */
  db: string;
  /** The sides' keys in order: "a", then "b", or "b1", "b2"... */
  sides: SideName[];
  /** Each side as a matrix: its run, its options (its build in `picoshare`, the shared ones alike), its tests done. */
  runs: Record<SideName, MatrixState>;
  /** The host as the runs recorded it when the comparison started. */
  host: unknown;
}

/** A side's state before its first test. */
export function sideState(created: string, db: string, runId: number, options: MatrixOptions): MatrixState {
  return { version: STATE_VERSION, created, run_id: runId, db, options, cells: [], sessions: [], totals: { tests_run: 0, upload_seconds: 0 } };
}

export function writeCompareState(dir: string, state: CompareState): void {
  writeFileAtomic(join(dir, COMPARE_STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
}

export function resumeCompareCommand(dir: string): string {
  return command("compare", `--resume ${displayPath(dir)}`);
}

/** Reads a comparison folder's state; exit 2 with the reason when it is not one. */
export function readCompareState(dir: string): CompareState {
  const path = join(dir, COMPARE_STATE_FILE);
  if (!existsSync(path)) {
    throw new UsageError(`--resume ${dir}: no ${COMPARE_STATE_FILE} there; give the folder of a live comparison (results/compare-YYYYMMDD-HHMMSS, named in its log)`);
  }
  let state: CompareState;
  try {
    state = JSON.parse(readFileSync(path, "utf8")) as CompareState;
  } catch (err) {
    throw new UsageError(`--resume ${dir}: ${COMPARE_STATE_FILE} cannot be read (${errorMessage(err)})`);
  }
  const ok =
    state?.version === COMPARE_STATE_VERSION && typeof state.db === "string" && Array.isArray(state.sides) && state.sides.length >= 2 &&
    state.sides.every((n) => {
      const s = state.runs?.[n];
      return Number.isInteger(s?.run_id) && Array.isArray(s.cells) && typeof s.options?.picoshare?.path === "string";
    });
  if (!ok) throw new UsageError(`--resume ${dir}: ${COMPARE_STATE_FILE} is not a comparison state this harness can read (version ${state?.version})`);
  return state;
}

/** The comparison's cells (RAM x size), in order, as the options of its sides give them. */
export function compareCells(o: MatrixOptions): Cell[] {
  return matrixCells(o.memory_limits, o.file_sizes.map((s) => parseSize(s)));
}

/** Every test of every side, and those with no result yet (never run, interrupted, or run-test crashed). */
export function compareCounts(state: CompareState): { total: number; pending: number } {
  const tests = state.sides.flatMap((n) => matrixTests(state.runs[n].options).map((t) => ({ n, t })));
  return { total: tests.length, pending: tests.filter(({ n, t }) => !hasResult(findRecord(state.runs[n], t))).length };
}
