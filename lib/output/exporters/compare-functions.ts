// Where the instructions went (Comparison.function_shifts), as the tables
// and lines every rendering of a comparison shows: one table per cell and
// instruction metric whose verdict is a change, or one line saying why there is none.
import type { Comparison } from "../../stats/comparison.ts";
import type { FunctionShifts } from "../../stats/functions.ts";
import { cellName } from "../../stats/cells.ts";
import type { TextTable } from "./compare-common.ts";

const metricName = (s: FunctionShifts) => s.metric.replace(/_/g, " ");

function count(v: number): string {
  return Math.round(v).toLocaleString("en-US");
}

function signed(v: number): string {
  return `${v > 0 ? "+" : v < 0 ? "-" : ""}${count(Math.abs(v))}`;
}

function table(s: FunctionShifts): TextTable {
  const of = (side: "A" | "B", dumps: number, runs: number) => `${side}'s ${dumps}${dumps < runs ? ` of ${runs}` : ""} dump${dumps === 1 ? "" : "s"}`;
  return {
    title: `${cellName(s)}: ${metricName(s)} ${s.verdict}: where the instructions went (self instructions per run, mean over ` +
      `${of("A", s.dumps_a, s.runs_a)} and ${of("B", s.dumps_b, s.runs_b)}; total ${count(s.total_a!)} -> ${count(s.total_b!)}, ` +
      `${signed(s.total_b! - s.total_a!)})`,
    header: ["Function", "A", "B", "Change", "Share of change"],
    rows: s.functions.map((f) => [f.function, count(f.a), count(f.b), signed(f.change), f.share === null ? "-" : `${(f.share * 100).toFixed(1)} %`]),
    align: ["left", "right", "right", "right", "right"],
  };
}

/** The tables of the cells with dumps on both sides, and a line for each without. */
export function functionTables(c: Comparison): { tables: TextTable[]; missing: string[] } {
  const shifts = c.function_shifts ?? [];
  return {
    tables: shifts.filter((s) => s.missing === null).map(table),
    missing: shifts.filter((s) => s.missing !== null).map((s) => `${cellName(s)}: ${metricName(s)} ${s.verdict}, but no per-function counts: ${s.missing}.`),
  };
}

/** The same for several builds against A: each table and line named by its build. */
export function nwayFunctionTables(cs: Comparison[]): { tables: TextTable[]; missing: string[] } {
  const each = cs.map((c) => ({ build: c.b.label, ...functionTables(c) }));
  return {
    tables: each.flatMap((e) => e.tables.map((t) => ({ ...t, title: `${e.build} against A, ${t.title}` }))),
    missing: each.flatMap((e) => e.missing.map((line) => `${e.build} against A, ${line}`)),
  };
}
