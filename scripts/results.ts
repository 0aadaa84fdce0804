#!/usr/bin/env bun
// Reads the SQLite results log: the runs, newest first, and one run's results
// as a table, as the matrix's CSV, or as JSON.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseCli, positiveInt } from "../lib/core/cli.ts";
import { FLAG } from "../lib/core/flags.ts";
import { flagSpec, flagsOf, numberFlag, shownAs, switchFlag, usageText, valueFlag, valueOf, type Flag } from "../lib/core/flag-kit.ts";
import { runMain } from "../lib/core/main.ts";
import { UsageError } from "../lib/core/errors.ts";
import { RESULTS_DIR, command, displayPath } from "../lib/core/paths.ts";
import { ResultsDb, type HarnessErrorRow, type ResultRow, type RunRow } from "../lib/store/results-db.ts";
import { harnessErrorRow, matrixCsv, rowFromResult, type MatrixRow } from "../lib/store/csv.ts";
import { resultsTable } from "../lib/output/summary.ts";
import { formatTable } from "../lib/output/table.ts";
import type { ExitReason, TestResult } from "../lib/upload/result.ts";
import { cellName } from "../lib/stats/cells.ts";
import { EXPORT_FORMATS, exportPoints, exportText, type ExportFormat } from "../lib/output/exporters/ci-formats.ts";
import { loadRun } from "../lib/store/stored-runs.ts";
import { writeFileAtomic } from "../lib/core/files.ts";
import { mergeShards } from "../lib/store/merge.ts";
import { log, warn } from "../lib/core/log.ts";
import { cellTrend, parseSince, parseTrendCell, parseTrendMetric, trendRuns, trendTable, trendTitle, type TrendPoint } from "../lib/stats/trend.ts";
import type { ComparedMetric } from "../lib/stats/metrics.ts";

const DEFAULT_DB = join(RESULTS_DIR, "results.db");

const OWN = {
  limit: numberFlag("limit", positiveInt, { value: "N", example: "20", default: "50", help: "list: at most N runs" }),
  csv: switchFlag("csv", "show: the results as the matrix writes them (matrix-results.csv)"),
  format: valueFlag("format", { value: "F", help: "export: bmf, gab-bigger or gab-smaller" }),
  cell: valueFlag("cell", { value: "CELL", help: "trend: the cell, spelt as everywhere: 256MB/1G, 256MB/1G/x3" }),
  metric: valueFlag("metric", {
    value: "M", help: "trend: a metric of compare (throughput, picoshare_peak_rss, cpu_seconds, disk_write_bytes, peak_memory, ...)",
  }),
  into: valueFlag("into", { value: "DB", help: "merge: the results log the merged run goes to (made if missing)" }),
};
const GROUPS: Array<[string, Flag<any>[]]> = [
  ["Options (show, trend: --json; export: --out):", [
    shownAs(FLAG.db, "./results/results.db"), OWN.limit, OWN.csv, FLAG.json, OWN.format, shownAs(FLAG.out, "stdout"), OWN.cell,
    OWN.metric, FLAG.since, OWN.into,
  ]],
];

const USAGE = usageText(
  `Usage: bun scripts/results.ts list [--db PATH] [--limit N]
       bun scripts/results.ts show RUN [--db PATH] [--csv | --json]
       bun scripts/results.ts export RUN --format bmf|gab-bigger|gab-smaller [--db PATH] [--out FILE]
       bun scripts/results.ts trend --cell CELL --metric METRIC [--since DATE] [--db PATH] [--json]
       bun scripts/results.ts merge DB[:RUN] DB[:RUN]... --into DB

Reads the results log that run-test and run-test-matrix write.

Commands:
  list          The runs, newest first: id, kind, start, status, backend,
                PicoShare version, and how many of its tests passed and failed
                (a matrix cell whose run-test crashed counts as failed)
  show RUN      Run RUN's results (RUN is an id from list) as an aligned table
  export RUN    Run RUN's figures for a continuous-benchmarking tool: one
                benchmark per cell (256MB/1G), one measure per metric of
                compare (throughput, picoshare_peak_rss, cpu_seconds, ...), the
                median of the cell's passed runs with the 95 % interval of the
                median as its bounds. --format bmf: Bencher's metric format
                ({benchmark: {measure: {value, lower_value, upper_value}}});
                gab-bigger / gab-smaller: github-action-benchmark's
                customBiggerIsBetter / customSmallerIsBetter lists ({name, unit,
                value, range, extra}), each with only the metrics of its direction
  trend         One cell's metric over time: its median (and 95 % interval)
                in every run that measured the cell, oldest first, with the
                PicoShare version and commit; a run whose environment or
                harness version differs from the one before is marked (*) and
                the difference named, since a step there may not be PicoShare's
  merge         Shards of one matrix (run-test-matrix --shard I/N, each on its
                own host with its own results log) as one run of --into:
                refused when two shards measured the same cell, when their
                options or PicoShare builds differ, or when they are not one
                split; each result keeps its host, the run lists which host
                ran which shard; missing shards are named (the run is then
                "interrupted")
`,
  GROUPS,
  `The results log is a plain SQLite file: the sqlite3 command-line tool reads
it too. Tables: runs (one row per matrix run), results (one row per test,
run_id = the run, NULL for a lone run-test; iteration = which of a cell's
repeated tests, warm-ups first; warmup = 1 for a warm-up run, never counted)
and harness_errors (matrix tests for which run-test wrote no result). list,
show and --csv leave warm-up runs out; --json has every record. For example:
  sqlite3 results/results.db 'SELECT ram_mb, file_size, throughput_mbps FROM results WHERE run_id = 3'
  sqlite3 -header -column results/results.db 'SELECT id, kind, status, started_at FROM runs'

Examples:
  bun scripts/results.ts list --limit 10
  bun scripts/results.ts show 3 --csv > run-3.csv
  bun scripts/results.ts export 12 --format bmf --out bmf.json
  bun scripts/results.ts trend --cell 256MB/1G --metric throughput --since 2026-11-01
  bun scripts/results.ts trend --cell 256MB/1G/x3 --metric picoshare_peak_rss --json
  bun scripts/results.ts merge shard-1.db shard-2.db --into results/results.db

Exit status: 0 done, 2 bad usage, an unknown run or no results log.
`,
);

function openDb(path: string): ResultsDb {
  if (!existsSync(path)) {
    throw new UsageError(`no results log at ${displayPath(path)}: run a test first, or give --db PATH`);
  }
  return ResultsDb.open(path);
}

function parseJson(text: string | null): any {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function toMatrixRow(r: ResultRow): MatrixRow {
  // The row's columns are the record's stored fields (records as JSON text, which a matrix row does not use).
  const stored = r as unknown as Partial<TestResult>;
  return rowFromResult({ ...stored, ram_mb: r.ram_mb, file_size: r.file_size, http_status: r.http_status, success: r.success === 1, exit_reason: r.exit_reason as ExitReason }, r.result_file);
}

/**
 * The run's measured results and harness errors as CSV rows (warm-up runs
 * left out, as the matrix's CSV leaves them out), in the matrix's order where
 * the run says it, then by iteration.
 */
function runRows(run: RunRow, results: ResultRow[], errors: HarnessErrorRow[]): MatrixRow[] {
  const items = [
    ...results.filter((r) => !r.warmup).map((r) => ({ at: r.timestamp, iteration: r.iteration ?? 1, row: toMatrixRow(r) })),
    ...errors.filter((e) => !e.warmup).map((e) => ({ at: e.timestamp, iteration: e.iteration ?? 1, row: harnessErrorRow(e.ram_mb, e.file_size, e.concurrency ?? 1) })),
  ];
  const options = parseJson(run.options_json) ?? {};
  const mem: unknown[] = Array.isArray(options.memory_limits) ? options.memory_limits : [];
  const sizes: unknown[] = Array.isArray(options.file_sizes) ? options.file_sizes : [];
  const rank = (row: MatrixRow) => {
    const m = mem.indexOf(row.ram_mb);
    const s = sizes.indexOf(row.file_size);
    return m < 0 || s < 0 ? Number.MAX_SAFE_INTEGER : m * sizes.length + s;
  };
  items.sort((a, b) => rank(a.row) - rank(b.row) || a.iteration - b.iteration || a.at.localeCompare(b.at));
  return items.map((i) => i.row);
}

function list(db: ResultsDb, limit: number): void {
  const runs = db.listRunSummaries(limit);
  if (runs.length === 0) {
    process.stdout.write("No runs recorded yet.\n");
    return;
  }
  const table = formatTable(
    ["ID", "Kind", "Started", "Status", "Backend", "PicoShare", "Passed", "Failed"],
    runs.map((r) => [
      String(r.id),
      r.kind,
      r.started_at,
      r.status,
      r.backend,
      r.picoshare_version ?? "-",
      String(r.passed),
      String(r.failed + r.harness_errors),
    ]),
    ["right", "left", "left", "left", "left", "left", "right", "right"],
  );
  process.stdout.write(`${table}\n`);
}

function show(db: ResultsDb, id: number, format: "table" | "csv" | "json"): void {
  const run = db.run(id);
  if (!run) throw new UsageError(`no run ${id} in the results log: see \`${command("results", "list")}\` for the run ids`);
  const results = db.results(id);
  const errors = db.harnessErrors(id);
  if (format === "json") {
    const { options_json, host_json, ...rest } = run;
    const out = {
      run: { ...rest, options: parseJson(options_json), host: parseJson(host_json) },
      results: results.map((r) => ({ ...parseJson(r.raw_json), result_file: r.result_file })),
      harness_errors: errors,
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return;
  }
  const rows = runRows(run, results, errors);
  if (format === "csv") {
    process.stdout.write(matrixCsv(rows));
    return;
  }
  const passed = rows.filter((r) => r.success).length;
  const warmups = results.filter((r) => r.warmup).length + errors.filter((e) => e.warmup).length;
  const lines = [
    `Run ${run.id}: ${run.kind}, ${run.status}, started ${run.started_at}${run.finished_at ? `, finished ${run.finished_at}` : ""}`,
    `Backend ${run.backend}, PicoShare ${run.picoshare_version ?? "unknown"}${run.picoshare_sha256 ? ` (sha256 ${run.picoshare_sha256.slice(0, 12)})` : ""}`,
    ...(run.results_dir ? [`Folder: ${displayPath(run.results_dir)}`] : []),
    `Tests: ${rows.length}, passed ${passed}, failed ${rows.length - passed}` +
      (warmups > 0 ? ` (and ${warmups} warm-up run${warmups === 1 ? "" : "s"}, not counted or shown)` : ""),
    "",
    rows.length > 0 ? resultsTable(rows) : "(no results recorded for this run)",
  ];
  for (const e of errors) {
    lines.push("", `${cellName(e)}${e.warmup ? ` (warm-up, iteration ${e.iteration})` : ""}: ${e.exit_reason}: ${e.error}`);
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

function printTrend(points: TrendPoint[], title: string, metric: ComparedMetric): void {
  if (points.length === 0) {
    process.stdout.write(`${title}: no run measured this cell\n`);
    return;
  }
  const t = trendTable(points, metric);
  process.stdout.write(`${title}\n${formatTable(t.header, t.rows, t.align)}\n${t.notes.length > 0 ? `${t.notes.join("\n")}\n` : ""}`);
}

/** A command's RUN argument: a run id. */
function runIdArg(arg: string | undefined, cmd: string): number {
  if (arg === undefined) throw new UsageError(`${cmd} needs a run id, e.g. \`${command("results", `${cmd} 3`)}\``, true);
  if (!/^[1-9][0-9]*$/.test(arg)) {
    throw new UsageError(`run id must be a whole number above 0 (an ID from \`${command("results", "list")}\`), got "${arg}"`);
  }
  return Number(arg);
}

await runMain(async () => {
  const { values: v, positionals } = parseCli(
    flagSpec(flagsOf(GROUPS)),
    USAGE,
    process.argv.slice(2),
    64,
  );
  const [cmd, arg, ...more] = positionals;
  if (cmd === "merge") {
    if (v.into === undefined) throw new UsageError("merge needs --into DB: the results log the merged run goes to", true);
    const out = mergeShards(positionals.slice(1), resolve(v.into));
    for (const s of out.shards) {
      log(`shard ${s.shard ? `${s.shard.index}/${s.shard.count}` : "?"} from ${displayPath(s.path)} (run ${s.run_id}, host ${s.hostname ?? "unknown"}): ${s.cells.join(", ")}`);
    }
    if (out.missing.length > 0) warn(`shard(s) ${out.missing.join(", ")} missing: the merged run is marked interrupted`);
    process.stdout.write(`${out.runId}\n`);
    return;
  }
  if (more.length > 0) throw new UsageError(`unexpected argument "${more[0]}" (see --help)`, true);
  const dbPath = resolve(v.db ?? DEFAULT_DB);
  if (cmd === "list") {
    if (arg !== undefined) throw new UsageError(`list takes no argument, got "${arg}"`, true);
    if (v.csv || v.json) throw new UsageError("--csv and --json go with show RUN, not list", true);
    const limit = valueOf(OWN.limit, v.limit);
    const db = openDb(dbPath);
    try {
      list(db, limit);
    } finally {
      db.close();
    }
    return;
  }
  if (cmd === "show") {
    runIdArg(arg, "show");
    if (v.csv && v.json) throw new UsageError("give --csv or --json, not both");
    if (v.limit !== undefined) throw new UsageError("--limit goes with list, not show", true);
    const db = openDb(dbPath);
    try {
      show(db, Number(arg), v.csv ? "csv" : v.json ? "json" : "table");
    } finally {
      db.close();
    }
    return;
  }
  if (cmd === "export") {
    const id = runIdArg(arg, "export");
    const format = v.format as string | undefined;
    if (format === undefined || !(EXPORT_FORMATS as readonly string[]).includes(format)) {
      throw new UsageError(`export needs --format ${EXPORT_FORMATS.join("|")}${format === undefined ? "" : `, got "${format}"`} (e.g. --format bmf)`, true);
    }
    const db = openDb(dbPath);
    try {
      const text = exportText(exportPoints(loadRun(db, id, displayPath(dbPath)).results), format as ExportFormat);
      if (v.out) writeFileAtomic(resolve(v.out), text);
      else process.stdout.write(text);
    } finally {
      db.close();
    }
    return;
  }
  if (cmd === "trend") {
    if (arg !== undefined) throw new UsageError(`trend takes no run id, got "${arg}": it reads every run`, true);
    if (v.cell === undefined || v.metric === undefined) throw new UsageError("trend needs --cell CELL and --metric METRIC (e.g. --cell 256MB/1G --metric throughput)", true);
    const cell = parseTrendCell("--cell", v.cell);
    const metric = parseTrendMetric("--metric", v.metric);
    const since = v.since === undefined ? null : parseSince("--since", v.since);
    const db = openDb(dbPath);
    try {
      const points = cellTrend(trendRuns(db, displayPath(dbPath), since), cell, metric);
      if (v.json) process.stdout.write(`${JSON.stringify({ cell: cellName(cell), metric: metric.key, unit: metric.unit, points }, null, 2)}\n`);
      else printTrend(points, trendTitle(cell, metric), metric);
    } finally {
      db.close();
    }
    return;
  }
  throw new UsageError(cmd === undefined ? "give a command: list, show RUN, export RUN or trend" : `unknown command "${cmd}": use list, show RUN, export RUN or trend`, true);
}, USAGE);
