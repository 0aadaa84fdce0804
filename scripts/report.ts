#!/usr/bin/env bun
// One self-contained HTML report of stored runs: charts (throughput and peak
// memory against file size, the pass / fail / OOM grid, memory timelines,
// B / A for a comparison, RAM floors) and the per-cell statistics. stdout:
// the report's path, alone.
import { dirname, join, resolve } from "node:path";
import { parseCli, positiveNumber } from "../lib/core/cli.ts";
import { runMain } from "../lib/core/main.ts";
import { log } from "../lib/core/log.ts";
import { UsageError } from "../lib/core/errors.ts";
import { ensureWritableDir, writeFileAtomic } from "../lib/core/files.ts";
import { RESULTS_DIR, displayPath } from "../lib/core/paths.ts";
import { openExistingDb, parseRunId } from "../lib/store/stored-runs.ts";
import { buildReport } from "../lib/output/report/build.ts";
import { DEFAULT_CV_THRESHOLD } from "../lib/stats/cells.ts";
import { DEFAULT_ALPHA } from "../lib/stats/verdict.ts";

const USAGE = `Usage: bun scripts/report.ts RUN [RUN ...] [--db PATH] [--out FILE]

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

Options:
  --db PATH           SQLite results log (default: ./results/results.db)
  --out FILE          Where the report goes (default: report-RUN[-RUN...].html
                      beside the results log)
  --alpha A           Significance level of the comparison (default: 0.05)
  --cv-threshold PCT  Flag cells whose coefficient of variation is above PCT % (default: 10)
  --help              Show this text

Examples:
  bun scripts/report.ts 7
  bun scripts/report.ts 12 13 --out pr-1234.html
  bun scripts/report.ts 20 21          # two find-ram-floor runs: their floors side by side
  bun scripts/report.ts 12 --db /tmp/perf/results.db
`;

await runMain(async () => {
  const { values: v, positionals } = parseCli(
    {
      db: { type: "string" },
      out: { type: "string" },
      alpha: { type: "string" },
      "cv-threshold": { type: "string" },
    },
    USAGE,
    process.argv.slice(2),
    Number.MAX_SAFE_INTEGER,
  );
  if (positionals.length === 0) throw new UsageError("give at least one run id (e.g. bun scripts/report.ts 12)", true);
  const ids = positionals.map((p) => parseRunId(p, "RUN"));
  if (new Set(ids).size !== ids.length) throw new UsageError(`run ids are given twice in "${positionals.join(" ")}": give each once`);
  const alpha = v.alpha === undefined ? DEFAULT_ALPHA : positiveNumber("--alpha", v.alpha, "0.05");
  if (alpha >= 0.5) throw new UsageError(`--alpha must be below 0.5, got "${v.alpha}" (e.g. --alpha 0.05)`);
  const cv = v["cv-threshold"] === undefined ? DEFAULT_CV_THRESHOLD * 100 : positiveNumber("--cv-threshold", v["cv-threshold"], "10");
  const dbPath = resolve(v.db ?? join(RESULTS_DIR, "results.db"));
  const out = resolve(v.out ?? join(dirname(dbPath), `report-${ids.join("-")}.html`));
  if (out.endsWith("/")) throw new UsageError(`--out ${v.out} names a folder: give a file name (e.g. --out report.html)`);
  ensureWritableDir(dirname(out), "--out's folder");

  const db = openExistingDb(dbPath);
  let html: string;
  try {
    html = await buildReport(db, ids, { dbPath: displayPath(dbPath), alpha, cvThreshold: cv / 100 });
  } finally {
    db.close();
  }
  writeFileAtomic(out, html);
  log(`Report of run(s) ${ids.join(", ")} written (${(html.length / 1024).toFixed(0)} KiB)`);
  process.stdout.write(`${displayPath(out)}\n`);
}, USAGE);
