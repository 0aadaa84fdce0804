// The matrix summary: the run's facts and its results as an aligned table
// (one line per measured test), and with repeated tests the per-cell
// statistics and their CV warnings. summary.txt is written from here, and
// `results.ts show` prints the same results table.
import type { MatrixRow } from "../store/csv.ts";
import { formatDuration } from "../core/durations.ts";
import { formatTable } from "./table.ts";
import { SUMMARY_FIELDS } from "../result/fields.ts";

function num(n: number | null, digits: number): string {
  return n === null ? "-" : n.toFixed(digits);
}

/** The results, one line per cell, in the order given: the measured columns are the declared fields' (lib/result/). */
export function resultsTable(rows: MatrixRow[]): string {
  // Uploads at once, only where some cell has more than one.
  const parallel = rows.some((r) => (r.concurrency ?? 1) > 1);
  const values = (r: MatrixRow) => r as Record<string, unknown>;
  return formatTable(
    ["RAM (MB)", "File", ...(parallel ? ["At once"] : []), ...SUMMARY_FIELDS.map((f) => f.summary.label), "HTTP", "Result", "Exit reason"],
    rows.map((r) => [
      String(r.ram_mb),
      r.file_size,
      ...(parallel ? [String(r.concurrency ?? 1)] : []),
      ...SUMMARY_FIELDS.map((f) => num((values(r)[f.summary.key] as number | null | undefined) ?? null, f.summary.digits)),
      r.http_status || "-",
      r.success ? "PASS" : "FAIL",
      r.exit_reason,
    ]),
    ["right", "right", ...(parallel ? ["right" as const] : []), ...SUMMARY_FIELDS.map(() => "right" as const), "left", "left", "left"],
  );
}

export interface SummaryInfo {
  /** When the matrix started (ISO 8601). */
  started: string;
  /** When it last stopped, complete or not (ISO 8601). */
  finished: string;
  status: "complete" | "interrupted" | "stopped on failure" | "stopped on drift" | "running";
  totalSeconds: number;
  /** Tests run and to run, warm-ups included. */
  testsRun: number;
  totalTests: number;
  /** Of the tests run, the warm-ups (never counted as passed or failed). */
  warmupsRun?: number;
  /** Measured tests and warm-ups per cell (default 1 and 0). */
  iterations?: number;
  warmup?: number;
  /** Measured tests only. */
  passed: number;
  failed: number;
  /** Seconds per test outside the upload; null before any test has run. */
  overheadPerTest: number | null;
  memoryLimits: number[];
  fileSizes: string[];
  backend: string;
  picoshare: string;
  database: string;
  /** Cells with no result yet, e.g. "256MB/1G". */
  notRun: string[];
  /** One line per cell that failed without a result of its own. */
  errors: string[];
  /** How to continue, when there is something left to run. */
  resume: string | null;
  /** The per-cell statistics table (with more than one iteration), or null. */
  cellStats?: string | null;
  /** The cells' CV warnings. */
  warnings?: string[];
  /** The drift sentinel's series: its title and an aligned table, one line per control run. */
  controls?: { title: string; table: string } | null;
}

export function formatOverhead(perTest: number | null): string {
  return perTest === null ? "n/a (no test run)" : `${perTest.toFixed(2)} s per test outside the upload`;
}

function warmups(n: number): string {
  return n === 0 ? "no warm-up" : `after ${n} warm-up${n === 1 ? "" : "s"} (not counted)`;
}

export function summaryText(info: SummaryInfo, rows: MatrixRow[]): string {
  const facts: [string, string][] = [
    ["Timestamp", info.started],
    ["Finished", info.finished],
    ["Status", info.status],
    ["Total duration", formatDuration(info.totalSeconds)],
    [
      "Tests run",
      `${info.testsRun} of ${info.totalTests}` +
        (info.warmupsRun ? ` (${info.warmupsRun} of them warm-up${info.warmupsRun === 1 ? "" : "s"}, not counted)` : ""),
    ],
    ["Passed", String(info.passed)],
    ["Failed", String(info.failed)],
    ["Overhead", formatOverhead(info.overheadPerTest)],
    ["Memory configs", info.memoryLimits.join(" ")],
    ["File sizes", info.fileSizes.join(" ")],
    ...((info.iterations ?? 1) > 1 || (info.warmup ?? 0) > 0
      ? [["Iterations", `${info.iterations ?? 1} measured per cell, ${warmups(info.warmup ?? 0)}`] as [string, string]]
      : []),
    ["Backend", info.backend],
    ["PicoShare", info.picoshare],
    ["Database", info.database],
  ];
  const width = Math.max(...facts.map(([k]) => k.length)) + 1;
  const title = "PicoShare Performance Test Matrix Summary";
  const out = [title, "=".repeat(title.length), ...facts.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`), ""];
  out.push("Results:", rows.length > 0 ? resultsTable(rows) : "(no test has finished yet)", "");
  if (info.cellStats) {
    out.push(
      "Statistics per cell (measured runs only; n = passed runs, over which median, CV and the 95 % CI of the median are computed):",
      info.cellStats,
      "",
    );
  }
  if (info.controls) out.push(info.controls.title, info.controls.table, "");
  if (info.warnings && info.warnings.length > 0) out.push("Warnings:", ...info.warnings.map((w) => `  ${w}`), "");
  if (info.errors.length > 0) out.push("Errors without a result:", ...info.errors.map((e) => `  ${e}`), "");
  if (info.notRun.length > 0) out.push(`Not run yet: ${info.notRun.join(", ")}`);
  if (info.resume) out.push(`Resume with: ${info.resume}`);
  return `${out.join("\n").trimEnd()}\n`;
}
