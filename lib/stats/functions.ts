// Where the instructions went: for a cell whose upload_instructions or
// download_instructions verdict is a change, the functions whose self
// instructions moved most between A and B, read from the per-phase callgrind
// dumps each instrumented twin kept beside its result. Each function's count
// is its mean over a side's dumps (a function missing from a dump counts 0
// there), so the functions' changes add up to the change of the dumps' mean
// total, and each one's share of it is exact.
import type { CountedPhase } from "../upload/instructions.ts";
import { readCallgrindDump, selfByFunction } from "../upload/callgrind-dump.ts";
import type { TestResult } from "../upload/result.ts";
import { findResultFile, type StoredRun } from "../store/stored-runs.ts";
import { cellKeyOf, type CellKey } from "./cells.ts";
import { errorMessage } from "../core/errors.ts";
import { warn } from "../core/log.ts";
import { displayPath } from "../core/paths.ts";
import type { CellRef, Comparison, SideInput } from "./comparison.ts";

/** How many functions a cell's table lists. */
export const TOP_FUNCTIONS = 10;

/** The instruction metrics and the phase whose dump each is counted from. */
export const FUNCTION_METRICS: Record<string, CountedPhase> = { upload_instructions: "upload", download_instructions: "download" };

export interface FunctionShift {
  /** The function as callgrind names it (Go: package.Function; C: its symbol). */
  function: string;
  /** Mean self instructions per run, A's dumps and B's. */
  a: number;
  b: number;
  /** b - a. */
  change: number;
  /** change / the change of the mean total (the sum over every function); null when that is 0. */
  share: number | null;
}

/** One cell's instruction metric whose verdict is a change, and the functions that moved most. */
export interface FunctionShifts extends CellRef {
  metric: string;
  verdict: "higher" | "lower";
  /** Runs with the metric, and of those the ones whose dump was found and read, per side. */
  runs_a: number;
  runs_b: number;
  dumps_a: number;
  dumps_b: number;
  /** Mean of the dumps' totals per side; null without dumps. */
  total_a: number | null;
  total_b: number | null;
  /** Largest absolute change first, at most TOP_FUNCTIONS; empty when `missing` says why. */
  functions: FunctionShift[];
  /** Why there is no table (a side has no dump to read); null when there is one. */
  missing: string | null;
}

/** Where a result's JSON was written, when known: its dumps sit beside it. */
export type ResultFileOf = (r: TestResult) => string | null;

/** The dump paths of a side's results in one cell, found as the report finds a result's other files. */
function dumpsOf(results: TestResult[], phase: CountedPhase, fileOf: ResultFileOf): string[] {
  return results.flatMap((r) => {
    const named = r.instructions_settings?.dumps?.[phase];
    const found = named ? findResultFile(named, fileOf(r)) : null;
    return found ? [found] : [];
  });
}

/** Each dump's self instructions per function, read once; a dump that cannot be read is said once and left out. */
function readable(paths: string[], cache: Map<string, Map<string, number> | null>): Map<string, number>[] {
  return paths.flatMap((path) => {
    if (!cache.has(path)) {
      try {
        cache.set(path, selfByFunction(readCallgrindDump(path)));
      } catch (err) {
        warn(`callgrind dump ${displayPath(path)} left out of where the instructions went: ${errorMessage(err)}`);
        cache.set(path, null);
      }
    }
    return cache.get(path) ?? [];
  });
}

/** Mean self instructions per function over the dumps, and the mean total. */
function meanCounts(dumps: Map<string, number>[]): { counts: Map<string, number>; total: number } {
  const sum = new Map<string, number>();
  for (const self of dumps) for (const [fn, ir] of self) sum.set(fn, (sum.get(fn) ?? 0) + ir);
  let total = 0;
  for (const [fn, ir] of sum) {
    sum.set(fn, ir / dumps.length);
    total += ir / dumps.length;
  }
  return { counts: sum, total };
}

/** The top `top` functions by absolute change of their mean count, B against A. */
export function topShifts(a: Map<string, number>, b: Map<string, number>, top = TOP_FUNCTIONS): FunctionShift[] {
  const names = new Set([...a.keys(), ...b.keys()]);
  let whole = 0;
  const all = [...names].map((fn) => {
    const ca = a.get(fn) ?? 0;
    const cb = b.get(fn) ?? 0;
    whole += cb - ca;
    return { function: fn, a: ca, b: cb, change: cb - ca, share: null as number | null };
  });
  all.sort((x, y) => Math.abs(y.change) - Math.abs(x.change) || x.function.localeCompare(y.function));
  return all.slice(0, top).filter((s) => s.change !== 0).map((s) => ({ ...s, share: whole === 0 ? null : s.change / whole }));
}

/**
 * For each cell of `c` whose instruction verdict is higher or lower, the
 * functions that moved most, from the dumps of A's and B's successful runs
 * there. `fileOfA` / `fileOfB` give where each result's JSON was written
 * (stored runs); a dump is looked for as named, beside that, and from here.
 */
export function functionShifts(c: Comparison, a: SideInput, b: SideInput, fileOfA: ResultFileOf, fileOfB: ResultFileOf): FunctionShifts[] {
  const cache = new Map<string, Map<string, number> | null>();
  const out: FunctionShifts[] = [];
  for (const cell of c.cells) {
    const key = cellKeyOf(cell as CellKey);
    for (const m of cell.metrics) {
      const phase = FUNCTION_METRICS[m.key];
      if (!phase || (m.verdict !== "higher" && m.verdict !== "lower")) continue;
      const counted = (s: SideInput) => s.results.filter((r) => r.success && cellKeyOf(r) === key && r[m.key as keyof TestResult] != null);
      const [ra, rb] = [counted(a), counted(b)];
      const [pa, pb] = [readable(dumpsOf(ra, phase, fileOfA), cache), readable(dumpsOf(rb, phase, fileOfB), cache)];
      const none = [pa.length === 0 ? "A" : null, pb.length === 0 ? "B" : null].filter(Boolean);
      const base = {
        ram_mb: cell.ram_mb, file_size: cell.file_size, concurrency: cell.concurrency ?? 1, metric: m.key, verdict: m.verdict,
        runs_a: ra.length, runs_b: rb.length, dumps_a: pa.length, dumps_b: pb.length,
      };
      if (none.length > 0) {
        out.push({
          ...base, total_a: null, total_b: null, functions: [],
          missing: `no callgrind dump of ${none.join(" or ")} found (runs from before dumps were kept, or a results folder moved without them)`,
        });
        continue;
      }
      const ma = meanCounts(pa);
      const mb = meanCounts(pb);
      out.push({ ...base, total_a: ma.total, total_b: mb.total, functions: topShifts(ma.counts, mb.counts), missing: null });
    }
  }
  return out;
}

/** Sets c.function_shifts (left out when no cell's instruction verdict is a change). */
export function addFunctionShifts(c: Comparison, a: SideInput, b: SideInput, fileOfA: ResultFileOf = () => null, fileOfB: ResultFileOf = () => null): Comparison {
  const shifts = functionShifts(c, a, b, fileOfA, fileOfB);
  if (shifts.length > 0) c.function_shifts = shifts;
  return c;
}

/** A stored run's results' JSON files (the results log's result_file). */
export function storedFileOf(s: StoredRun): ResultFileOf {
  return (r) => s.resultFiles.get(r) ?? null;
}
