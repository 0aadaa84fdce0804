#!/usr/bin/env bun
// One self-contained HTML report of stored runs: charts (throughput and peak
// memory against file size, the pass / fail / OOM grid, memory timelines,
// B / A for a comparison, RAM floors, trends over the stored runs) and the
// per-cell statistics. stdout: the report's path, alone.
import { dirname, join, resolve } from "node:path";
import { list, parseCli } from "../lib/core/cli.ts";
import { FLAG } from "../lib/core/flags.ts";
import { flagSpec, flagsOf, shownAs, switchFlag, usageText, valueFlag, valueOf, withDefault, type Flag } from "../lib/core/flag-kit.ts";
import { runMain } from "../lib/core/main.ts";
import { log } from "../lib/core/log.ts";
import { UsageError } from "../lib/core/errors.ts";
import { ensureWritableDir, writeFileAtomic } from "../lib/core/files.ts";
import { RESULTS_DIR, displayPath } from "../lib/core/paths.ts";
import { openExistingDb, parseRunId } from "../lib/store/stored-runs.ts";
import { buildReport, type TrendOptions } from "../lib/output/report/build.ts";
import { parseSince, parseTrendCell, parseTrendMetric } from "../lib/stats/trend.ts";

const OWN = {
  trend: valueFlag("trend", {
    value: "CELL,...", help: "Trends of these cells instead (spelt 256MB/1G, 256MB/1G/x3), each drawn however few runs measured it",
  }),
  trendMetric: withDefault(valueFlag("trend-metric", {
    value: "M,...",
    help: "The trends' metrics, of compare: throughput, picoshare_peak_rss, cpu_seconds, disk_write_bytes, peak_memory, ...",
  }), "throughput"),
  noTrend: switchFlag("no-trend", "No trends"),
};
const GROUPS: Array<[string, Flag<any>[]]> = [
  ["Options:", [
    shownAs(FLAG.db, "./results/results.db"), shownAs(FLAG.out, "report-RUN[-RUN...].html beside the results log"), FLAG.alpha,
    FLAG.cvThreshold, OWN.trend, OWN.trendMetric, FLAG.since, OWN.noTrend,
  ]],
];

const USAGE = usageText(
  `Usage: bun scripts/report.ts RUN [RUN ...] [--db PATH] [--out FILE]
                             [--trend CELL,... | --no-trend] [--trend-metric M,...] [--since DATE]

Writes one self-contained HTML report (inline SVG charts, no scripts, nothing
fetched: it opens offline) of runs stored in the results log, and prints its
path on stdout. For each run: throughput against file size (a line per RAM
limit), peak memory against file size (each RAM limit drawn as a dashed
rule), a pass / fail / OOM grid, the per-cell statistics (median, 95 %
interval, coefficient of variation), and per cell the memory timeline of one
test (the successful run with the median upload duration, else the last
failed one): memory against time, the upload, processing and download
shaded, the limit drawn. A merged run (results merge) names each cell's
host and lists its shards; a matrix run with a control cell (--control-cell)
gets its control series against the tests before each control, the drift
band shaded and the drifted controls marked. Given two runs, or one run of a live comparison
(bun scripts/compare.ts), also the ratio B / A per cell with its interval and
verdict (the first run given is A). Runs of bun scripts/find-ram-floor.ts
(kind ram-floor) are drawn as RAM floors instead: floor against file size, a
line per build, and per size the builds' brackets side by side.

Trends: for every cell of the reported runs that two or more stored runs
measured (matrices and comparison sides), the metric's median per run against
when the run started, with its 95 % interval, labelled with the PicoShare
version and commit where the build changes, marked where the environment or
the harness differs from the run before, the reported runs ringed; and the
same as a table (as bun scripts/results.ts trend prints it).
`,
  GROUPS,
  `Examples:
  bun scripts/report.ts 7
  bun scripts/report.ts 12 13 --out pr-1234.html
  bun scripts/report.ts 20 21          # two find-ram-floor runs: their floors side by side
  bun scripts/report.ts 12 --db /tmp/perf/results.db
  bun scripts/report.ts 31 --trend 256MB/1G --since 2026-11-01
  bun scripts/report.ts 31 --trend 256MB/1G,256MB/1G/x3 --trend-metric throughput,picoshare_peak_rss
  bun scripts/report.ts 31 --no-trend
`,
);

/** The trend flags, checked (exit 2 naming the bad value); undefined: --no-trend. */
function trendOptions(v: { trend?: string; "trend-metric"?: string; since?: string; "no-trend"?: boolean }): TrendOptions | undefined {
  if (v["no-trend"]) {
    const given = (["trend", "trend-metric", "since"] as const).find((k) => v[k] !== undefined);
    if (given) throw new UsageError(`--no-trend and --${given} do not go together: drop one`);
    return undefined;
  }
  return {
    cells: v.trend === undefined ? null : list("--trend", v.trend, (c) => parseTrendCell("--trend", c), "256MB/1G,256MB/1G/x3"),
    metrics: list("--trend-metric", valueOf(OWN.trendMetric, v["trend-metric"]), (m) => parseTrendMetric("--trend-metric", m), "throughput,picoshare_peak_rss"),
    since: v.since === undefined ? null : { at: parseSince("--since", v.since), text: v.since },
  };
}

await runMain(async () => {
  const { values: v, positionals } = parseCli(
    flagSpec(flagsOf(GROUPS)),
    USAGE,
    process.argv.slice(2),
    Number.MAX_SAFE_INTEGER,
  );
  if (positionals.length === 0) throw new UsageError("give at least one run id (e.g. bun scripts/report.ts 12)", true);
  const ids = positionals.map((p) => parseRunId(p, "RUN"));
  if (new Set(ids).size !== ids.length) throw new UsageError(`run ids are given twice in "${positionals.join(" ")}": give each once`);
  const alpha = valueOf(FLAG.alpha, v.alpha);
  const cv = valueOf(FLAG.cvThreshold, v["cv-threshold"]);
  const trend = trendOptions(v);
  const dbPath = resolve(v.db ?? join(RESULTS_DIR, "results.db"));
  const out = resolve(v.out ?? join(dirname(dbPath), `report-${ids.join("-")}.html`));
  if (out.endsWith("/")) throw new UsageError(`--out ${v.out} names a folder: give a file name (e.g. --out report.html)`);
  ensureWritableDir(dirname(out), "--out's folder");

  const db = openExistingDb(dbPath);
  let html: string;
  try {
    html = await buildReport(db, ids, { dbPath: displayPath(dbPath), alpha, cvThreshold: cv / 100, trend });
  } finally {
    db.close();
  }
  writeFileAtomic(out, html);
  log(`Report of run(s) ${ids.join(", ")} written (${(html.length / 1024).toFixed(0)} KiB)`);
  process.stdout.write(`${displayPath(out)}\n`);
}, USAGE);
