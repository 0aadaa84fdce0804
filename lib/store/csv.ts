// The matrix CSV: the original harness's header and one row per cell, written
// by the matrix and by `results.ts show --csv` alike. Fields are quoted where
// RFC 4180 needs it (a comma, a double quote or a line break; quotes doubled).
// Lines end in LF, as the original's did.
import { HARNESS_ERROR, type TestResult } from "../upload/result.ts";
import { displayPath } from "../core/paths.ts";

export const MATRIX_CSV_COLUMNS = [
  "ram_mb",
  "file_size",
  "duration_seconds",
  "throughput_mbps",
  "peak_memory_mb",
  "http_status",
  "exit_reason",
  "success",
  "result_file",
] as const;

export const MATRIX_CSV_HEADER = MATRIX_CSV_COLUMNS.join(",");

/** One cell's line of the matrix: measurements are null where run-test wrote no result. */
export interface MatrixRow {
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
  // Not in the CSV (its header is the original's): for summary.txt and `results show`.
  /** PicoShare's own peak resident set (VmHWM), MiB; absent in states written before it was kept. */
  picoshare_peak_rss_mb?: number | null;
  /** The peak of anonymous memory sampled with the working set, MiB. */
  anon_peak_mb?: number | null;
  /** Uploads at once (the cell's third axis); absent: 1. */
  concurrency?: number;
}

type ResultFields = Pick<
  TestResult,
  "ram_mb" | "file_size" | "duration_seconds" | "throughput_mbps" | "peak_memory_mb" | "http_status" | "exit_reason" | "success"
> & Partial<Pick<TestResult, "picoshare_peak_rss_bytes" | "anon_peak_bytes" | "concurrency">>;

const mib = (bytes: number | null | undefined) => (bytes === null || bytes === undefined ? null : Math.round(bytes / 1048576));

export function rowFromResult(r: ResultFields, resultFile: string | null): MatrixRow {
  return {
    ram_mb: r.ram_mb,
    file_size: r.file_size,
    duration_seconds: r.duration_seconds,
    throughput_mbps: r.throughput_mbps,
    peak_memory_mb: r.peak_memory_mb,
    http_status: r.http_status,
    exit_reason: r.exit_reason,
    success: r.success,
    result_file: resultFile,
    picoshare_peak_rss_mb: mib(r.picoshare_peak_rss_bytes),
    anon_peak_mb: mib(r.anon_peak_bytes),
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
    csvLine(MATRIX_CSV_COLUMNS.map((c) => (c === "result_file" ? (r.result_file ? showPath(r.result_file) : null) : r[c]))),
  );
  return `${[MATRIX_CSV_HEADER, ...lines].join("\n")}\n`;
}

/**
 * The second CSV beside the matrix's: for each measured test with a result,
 * PicoShare's own peak and the upload's kernel counters (empty where the
 * backend has none). The original's CSV keeps its header as it was.
 */
export const COUNTERS_CSV_COLUMNS = [
  "ram_mb",
  "file_size",
  "concurrency",
  "iteration",
  "picoshare_peak_rss_bytes",
  "cpu_user_seconds",
  "cpu_system_seconds",
  "cpu_seconds",
  "disk_write_bytes",
  "disk_write_cancelled_bytes",
  "disk_read_bytes",
  "write_amplification",
  "write_syscalls",
  "read_syscalls",
  "major_faults",
  "minor_faults",
  "instructions",
  "data_dir_bytes",
  "temp_files_left",
  "download_duration_seconds",
  "download_throughput_mbps",
  "download_peak_memory_bytes",
  "download_exit_reason",
  "upload_transfer_seconds",
  "upload_processing_seconds",
  "result_file",
] as const;

export function countersCsv(results: { result: TestResult; file: string }[], showPath: (p: string) => string = displayPath): string {
  const lines = results.map(({ result, file }) =>
    csvLine(COUNTERS_CSV_COLUMNS.map((c) => (c === "result_file" ? showPath(file) : ((result[c] ?? null) as number | string | null)))),
  );
  return `${[COUNTERS_CSV_COLUMNS.join(","), ...lines].join("\n")}\n`;
}
