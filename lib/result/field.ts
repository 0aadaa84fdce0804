// What one result field is: its name and type, its unit, which phase and
// which source measure it, and where it goes (the SQL column and the
// migration that added it, the CSVs, summary.txt, the cell statistics,
// compare). The declarations are in lib/result/declared/; everything that
// stores, prints or tests a field reads it from there.
import type { MetricSpec } from "../stats/verdict.ts";

/** The phase that measures a field ("test": the test as a whole: its identity, build and host). */
export type Phase = "test" | "setup" | "readiness" | "auth" | "upload" | "verify" | "download" | "requests" | "teardown" | "recovery";

export type FieldKind = "integer" | "real" | "text" | "boolean" | "json";

/**
 * A compared metric's family: "primary" and "instructions" are each corrected
 * together in a cell (Holm); a "secondary" metric is tested on its own.
 */
export type MetricFamily = "primary" | "instructions" | "secondary";

/**
 * A result as a declaration's functions see it: the record's type is made
 * from the declarations, so they cannot name it without a cycle.
 */
export type AnyResult = { readonly [field: string]: any };

/** A metric compare tests: its verdict words, family and the smallest step its measurement can show. */
export interface TestedSpec<R = AnyResult> extends MetricSpec {
  /** The metric's key in compare's JSON (cells[].metrics[].key), the gate's and the exports'. */
  key: string;
  family: MetricFamily;
  /** Raw value / scale = the value shown in `unit`. */
  scale: number;
  digits: number;
  /** The smallest step of the measurement in raw units, for the results given: the MDE never goes below it. */
  resolution: (results: R[]) => number;
  /** Its value in one result when it is not the field itself (a fallback for older records). */
  value?: (r: R) => number | null;
  /**
   * A wall-clock figure (a rate, a duration, CPU time: it follows the host's
   * load): in a live comparison its sides are paired by round (lib/stats/paired.ts).
   */
  wallClock?: boolean;
}

/** A figure compare shows beside the tested ones, derived from them (not tested again). */
export interface DerivedSpec {
  key: string;
  name: string;
  unit: string;
  scale: number;
  digits: number;
  /** The tested metric it is derived from, for the table. */
  from: string;
}

/** A column of summary.txt's results table (and of `results show`). */
export interface SummarySpec {
  label: string;
  digits: number;
  /** Its key in a matrix row (matrix.json keeps rows by these keys). */
  key: string;
  /** Raw value / scale, rounded to `digits`, is what the row keeps. */
  scale: number;
}

/** Per-cell statistics over repeated runs (median, CV, 95 % CI). */
export interface CellSpec {
  /** In warnings: "throughput 12.0 % (...)". */
  label: string;
  /** Column heading in the statistics tables. */
  column: string;
  digits: number;
  /** Raw value / scale is what the tables show. */
  scale: number;
  /** Its place in summary.txt's per-cell table (left out when absent), and the heading there. */
  table?: { rank: number; column: string };
}

export interface FieldSpec<T> {
  /** What the number means, for the results-field reference (docs/result-fields.md). */
  doc: string;
  phase: Phase;
  /** What measures it (a file, a counter, a clock, a flag). */
  source: string;
  unit?: string;
  /**
   * The schema migration that added its column (0: the first shape); a new
   * field takes the number after the highest in use, and the results log
   * gets that migration when next opened. Absent: kept in the JSON only.
   */
  migration?: number;
  /** Its SQL declaration when not the kind's own (run_id's foreign key). */
  sqlDecl?: string;
  /** Its value in a record written before it existed (default: null for a nullable field). */
  missing?: T;
  /**
   * Read by the backend with others of its kind and spread into the result
   * whole: "storage" is TestEnvironment.storage()'s reading after the
   * upload (its type, StorageFacts, is made from the fields that say so).
   */
  reading?: "storage";
  /** A column of the original's matrix CSV (its header never changes) or of matrix-counters.csv. */
  csv?: "matrix" | "counters";
  summary?: SummarySpec;
  cell?: CellSpec;
  /** compare tests it (one verdict per cell) ... */
  compare?: TestedSpec;
  /** ... or shows it beside the tested metrics it derives from. */
  shown?: DerivedSpec;
}

/** One declared field. `T` is its type in the result record. */
export interface Field<N extends string = string, T = unknown, K extends FieldKind = FieldKind> extends FieldSpec<T> {
  readonly name: N;
  readonly kind: K;
  readonly nullable: boolean;
  readonly unit: string;
  /** Only for the type: what the field holds. */
  readonly type?: T;
}

function builder<T, K extends FieldKind, Nullable extends boolean>(kind: K, nullable: Nullable) {
  type Made<N extends string, S> = Field<N, T, K> & S & { readonly nullable: Nullable };
  return <N extends string, const S extends FieldSpec<T>>(name: N, spec: S): Made<N, S> => ({
    unit: "",
    ...(nullable ? { missing: null as T } : {}),
    ...spec,
    name,
    kind,
    nullable,
  }) as Made<N, S>;
}

export const int = builder<number, "integer", false>("integer", false);
export const intOrNull = builder<number | null, "integer", true>("integer", true);
export const real = builder<number, "real", false>("real", false);
export const realOrNull = builder<number | null, "real", true>("real", true);
export const bool = builder<boolean, "boolean", false>("boolean", false);
export const boolOrNull = builder<boolean | null, "boolean", true>("boolean", true);
export const text = <T extends string = string>() => builder<T, "text", false>("text", false);
export const textOrNull = <T extends string = string>() => builder<T | null, "text", true>("text", true);
/** A record or list kept whole (a JSON column in SQL). */
export const json = <T>() => builder<T, "json", false>("json", false);
export const jsonOrNull = <T>() => builder<T | null, "json", true>("json", true);

/** The value type of a field. */
export type ValueOf<F> = F extends Field<string, infer T, FieldKind> ? T : never;

/** The record a list of fields makes: each field's name with its type. */
export type RecordOf<L extends readonly Field<string, any, FieldKind>[]> = { [F in L[number] as F["name"]]: ValueOf<F> };

/** The fields that have a value for records written before them: the nullable ones (null) and those that name it. */
export type Defaulted<L extends readonly Field<string, any, FieldKind>[]> = Extract<L[number], { nullable: true } | { missing: unknown }>;

/** A field's SQL column name: JSON kept whole is NAME_json. */
export function sqlColumn(f: Field): string {
  return f.kind === "json" ? `${f.name}_json` : f.name;
}

const SQL_TYPES: Record<FieldKind, string> = { integer: "INTEGER", real: "REAL", text: "TEXT", boolean: "INTEGER", json: "TEXT" };

/**
 * A field's column declaration. A column added by a later migration to a
 * table with rows cannot be NOT NULL without a default: it gets the value
 * older records have (`missing`).
 */
export function sqlDeclaration(f: Field): string {
  if (f.sqlDecl) return f.sqlDecl;
  let decl = SQL_TYPES[f.kind];
  if (!f.nullable) decl += " NOT NULL";
  if (!f.nullable && (f.migration ?? 0) > 0) decl += ` DEFAULT ${sqlValue(f, f.missing)}`;
  return decl;
}

/** A field's value as SQLite stores it: booleans 0/1, records as JSON text. */
export function sqlValue(f: Field, v: unknown): string | number | null {
  if (v === null || v === undefined) return null;
  if (f.kind === "boolean") return v ? 1 : 0;
  if (f.kind === "json") return JSON.stringify(v);
  return v as string | number;
}
