// The matrix CSV: the original harness's header and one row per cell, written
// by the matrix and by `results.ts show --csv` alike; and matrix-counters.csv.
// Their columns are the result fields declared for them (lib/result/). Fields are quoted where
// RFC 4180 needs it (a comma, a double quote or a line break; quotes doubled).
// Lines end in LF, as the original's did.
import { HARNESS_ERROR, type TestResult } from "../upload/result.ts";
import { FIELDS, SUMMARY_FIELDS, type SummaryField } from "../result/fields.ts";
import { displayPath } from "../core/paths.ts";

/** The original's columns: the declared fields marked for it, then the result file. */
export const MATRIX_CSV_COLUMNS = [...FIELDS.filter((f) => f.csv === "matrix").map((f) => f.name), "result_file"];

export const MATRIX_CSV_HEADER = MATRIX_CSV_COLUMNS.join(",");

/** The values of summary.txt's columns, by their row keys (null: not measured; absent in older states). */
type SummaryValues = { [F in SummaryField as F["summary"]["key"]]?: number | null };

/** One cell's line of the matrix: measurements are null where run-test wrote no result. */
export type MatrixRow = SummaryValues & {
  ram_mb: number;
  file_size: string;
  duration_seconds: number | null;
  throughput_mbps: number | null;
  peak_memory_mb: number | null;
  http_status: string;
  exit_reason: string;
  success: boolean;
  /** The result file (absolute or as given), or null when there is none. */
  result_file: string | null;
  /** Uploads at once (the cell's third axis); absent: 1. */
  concurrency?: number;
};

type ResultFields = Pick<TestResult, "ram_mb" | "file_size" | "http_status" | "exit_reason" | "success"> & Partial<TestResult>;

/** A summary column's value in a row: raw, or scaled and rounded (bytes as MiB). */
function summaryValue(f: (typeof SUMMARY_FIELDS)[number], r: ResultFields): number | null {
  const v = (r as Record<string, unknown>)[f.name];
  if (typeof v !== "number") return null;
  return f.summary.scale === 1 ? v : Math.round(v / f.summary.scale);
}

export function rowFromResult(r: ResultFields, resultFile: string | null): MatrixRow {
  return {
    ram_mb: r.ram_mb,
    file_size: r.file_size,
    duration_seconds: r.duration_seconds ?? null,
    throughput_mbps: r.throughput_mbps ?? null,
    peak_memory_mb: r.peak_memory_mb ?? null,
    ...Object.fromEntries(SUMMARY_FIELDS.map((f) => [f.summary.key, summaryValue(f, r)])),
    http_status: r.http_status,
    exit_reason: r.exit_reason,
    success: r.success,
    result_file: resultFile,
    concurrency: r.concurrency ?? 1,
  };
}

/** The row of a cell where run-test crashed or refused: no measurements, no result file. */
export function harnessErrorRow(ramMb: number, fileSize: string, concurrency = 1): MatrixRow {
  return {
    ram_mb: ramMb,
    file_size: fileSize,
    concurrency,
    duration_seconds: null,
    throughput_mbps: null,
    peak_memory_mb: null,
    http_status: "",
    exit_reason: HARNESS_ERROR,
    success: false,
    result_file: null,
  };
}

/** One field, quoted only where RFC 4180 requires it. null is an empty field. */
export function csvField(value: string | number | boolean | null): string {
  if (value === null) return "";
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function csvLine(values: (string | number | boolean | null)[]): string {
  return values.map(csvField).join(",");
}

/** The whole file: header, then one line per row; result paths shown as displayPath shows them. */
export function matrixCsv(rows: MatrixRow[], showPath: (p: string) => string = displayPath): string {
  const lines = rows.map((r) =>
    csvLine(MATRIX_CSV_COLUMNS.map((c) => (c === "result_file" ? (r.result_file ? showPath(r.result_file) : null) : ((r as Record<string, unknown>)[c] ?? null) as string | number | boolean | null))),
  );
  return `${[MATRIX_CSV_HEADER, ...lines].join("\n")}\n`;
}

/**
 * The second CSV beside the matrix's: for each measured test with a result,
 * PicoShare's own peak and the upload's kernel counters (empty where the
 * backend has none). The original's CSV keeps its header as it was.
 */
export const COUNTERS_CSV_COLUMNS = [
  // Which test of which cell.
  "ram_mb", "file_size", "concurrency", "iteration",
  ...FIELDS.filter((f) => f.csv === "counters").map((f) => f.name),
  "result_file",
];

export function countersCsv(results: { result: TestResult; file: string }[], showPath: (p: string) => string = displayPath): string {
  const lines = results.map(({ result, file }) =>
    csvLine(COUNTERS_CSV_COLUMNS.map((c) => (c === "result_file" ? showPath(file) : (((result as Record<string, unknown>)[c] ?? null) as number | string | null)))),
  );
  return `${[COUNTERS_CSV_COLUMNS.join(","), ...lines].join("\n")}\n`;
}
