// Results a run-test wrote that its matrix never recorded: the matrix died
// after run-test wrote one, or run-test was killed between writing its result
// and printing the path. They are in the matrix folder, each naming its run,
// cell and iteration, and are counted once found, never twice.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { readResultFile } from "./run-test-child.ts";
import { iterationOf, type TestResult } from "../upload/result.ts";
import type { Cell } from "./plan.ts";
import { claimedFiles, findRecord, hasResult, matrixTests, type MatrixState } from "./state.ts";

export interface FoundResult {
  path: string;
  result: TestResult;
}

/** Every result file in the matrix folder that belongs to database run `runId`, by name. */
function resultsOfRun(dir: string, runId: number): FoundResult[] {
  const found: FoundResult[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!/^result-.*\.json$/.test(name)) continue;
    const path = join(dir, name);
    const result = readResultFile(path);
    if (result && result.run_id === runId) found.push({ path, result });
  }
  return found;
}

/** The unclaimed result of `cell`'s test in the folder, if there is one. */
export function orphanOf(cell: Cell, dir: string, runId: number, claimed: Set<string>): FoundResult | undefined {
  return resultsOfRun(dir, runId).find((f) => !claimed.has(f.path) && isResultOf(f.result, cell));
}

/** The folder's results that matrix.json does not have, each with its test: one per test that has no result yet. */
export function orphanResults(dir: string, state: MatrixState): (FoundResult & { cell: Cell })[] {
  const claimed = claimedFiles(state);
  const tests = matrixTests(state.options);
  const taken = new Set<Cell>();
  const out: (FoundResult & { cell: Cell })[] = [];
  for (const found of resultsOfRun(dir, state.run_id)) {
    if (claimed.has(found.path)) continue;
    const cell = tests.find((c) => isResultOf(found.result, c));
    if (!cell || taken.has(cell) || hasResult(findRecord(state, cell))) continue;
    taken.add(cell);
    out.push({ ...found, cell });
  }
  return out;
}

function isResultOf(result: TestResult, cell: Cell): boolean {
  return (
    result.ram_mb === cell.ram && result.file_size === cell.size.label && (result.concurrency ?? 1) === cell.concurrency &&
    iterationOf(result) === cell.iteration
  );
}
