// A matrix folder's report files, rewritten atomically after every test (with
// matrix.json) so that a crash keeps the partial picture: matrix-results.csv,
// one row per measured test (warm-ups left out), matrix-counters.csv, the
// same tests' kernel counters, and summary.txt, with repeated tests each
// cell's statistics and their warnings too.
import { join } from "node:path";
import { writeFileAtomic } from "../core/files.ts";
import { command, displayPath } from "../core/paths.ts";
import { parseSize } from "../core/sizes.ts";
import { countersCsv, matrixCsv } from "../store/csv.ts";
import { summarizeRuns, type CellSummary } from "../stats/cells.ts";
import { cellStatsTable } from "../stats/text.ts";
import { summaryText } from "../output/summary.ts";
import { formatTable } from "../output/table.ts";
import { isoTimestamp, type TestResult } from "../upload/result.ts";
import { readResultFile } from "./run-test-child.ts";
import { DriftWatch } from "../upload/noise.ts";
import { testCellName, type Cell } from "./plan.ts";
import { cellName } from "../stats/cells.ts";
import {
  findRecord, isRepeated, levelsOf, measuredCells, orderedCells, overheadPerTest, pendingTests, testCount, testCounts, testSuffix,
  totalSeconds, type MatrixState, type Session,
} from "./state.ts";

export const CSV_FILE = "matrix-results.csv";
export const COUNTERS_CSV_FILE = "matrix-counters.csv";
export const SUMMARY_FILE = "summary.txt";

export function csvPath(dir: string): string {
  return join(dir, CSV_FILE);
}

export function summaryPath(dir: string): string {
  return join(dir, SUMMARY_FILE);
}

export function resumeCommand(dir: string): string {
  return command("run-test-matrix", `--resume ${displayPath(dir)}`);
}

/** One matrix folder's CSV and summary, with the statistics they are made from kept between writes. */
export class MatrixOutputs {
  /** Result records read back for the statistics, by path. */
  private readonly resultCache = new Map<string, TestResult | null>();
  /** Each cell's statistics, with what they were computed from. */
  private readonly statsCache = new Map<string, { from: string; summary: CellSummary }>();

  constructor(private readonly dir: string) {}

  /**
   * Per-cell statistics over the measured tests (warm-ups left out), in
   * matrix order, for the cells that have run at least one measured test.
   */
  cellStatistics(state: MatrixState): CellSummary[] {
    const o = state.options;
    const measured = measuredCells(state);
    const out: CellSummary[] = [];
    for (const ram of o.memory_limits) {
      for (const label of o.file_sizes) for (const concurrency of levelsOf(o)) {
        const records = measured.filter((c) => c.ram_mb === ram && c.file_size === label && (c.concurrency ?? 1) === concurrency);
        if (records.length === 0) continue;
        const files = records.map((c) => c.row.result_file).filter((f): f is string => f !== null);
        const errors = records.length - files.length;
        const key = cellName({ ram_mb: ram, file_size: label, concurrency });
        const from = `${errors}|${files.join("|")}`;
        const cached = this.statsCache.get(key);
        if (cached?.from === from) {
          out.push(cached.summary);
          continue;
        }
        const results = files.map((f) => this.readResult(f)).filter((r): r is TestResult => r !== null);
        const summary = summarizeRuns({ ram_mb: ram, file_size: label, file_size_bytes: parseSize(label).bytes, concurrency }, results, {
          harnessErrors: errors,
        });
        this.statsCache.set(key, { from, summary });
        out.push(summary);
      }
    }
    return out;
  }

  /**
   * The environment probe's drift, over every test in the order run (warm-ups
   * included: they ran on the same host): each figure's first move beyond the
   * first tests' spread.
   */
  driftWarnings(state: MatrixState): string[] {
    const watch = new DriftWatch();
    const out: string[] = [];
    for (const c of state.cells) {
      const result = c.row.result_file ? this.readResult(c.row.result_file) : null;
      const w = watch.add(result?.environment_probe, `${cellName(c)}${testSuffix(state.options, c)} (${c.finished})`);
      if (w) out.push(w);
    }
    return out;
  }

  private readResult(path: string): TestResult | null {
    if (!this.resultCache.has(path)) this.resultCache.set(path, readResultFile(path));
    return this.resultCache.get(path) ?? null;
  }

  /** The CSV (measured tests only) and summary.txt, each written atomically; `session` is the one running. */
  write(state: MatrixState, session: Session): void {
    const cells = orderedCells(state);
    const rows = measuredCells(state).map((c) => c.row);
    writeFileAtomic(csvPath(this.dir), matrixCsv(rows));
    const withResults = measuredCells(state).flatMap((c) => {
      const result = c.row.result_file ? this.readResult(c.row.result_file) : null;
      return result && c.row.result_file ? [{ result: { ...result, iteration: c.iteration }, file: c.row.result_file }] : [];
    });
    writeFileAtomic(join(this.dir, COUNTERS_CSV_FILE), countersCsv(withResults));
    const c = testCounts(state);
    const status = session.status;
    const pending = pendingTests(state);
    const o = state.options;
    const stats = o.iterations > 1 ? this.cellStatistics(state) : null;
    writeFileAtomic(
      summaryPath(this.dir),
      summaryText(
        {
          started: state.created,
          finished: session.finished ?? isoTimestamp(new Date()),
          status,
          totalSeconds: totalSeconds(state),
          testsRun: c.done,
          totalTests: testCount(o),
          warmupsRun: c.warmups,
          iterations: o.iterations,
          warmup: o.warmup,
          passed: c.passed,
          failed: c.failed,
          overheadPerTest: overheadPerTest(state),
          memoryLimits: o.memory_limits,
          fileSizes: o.file_sizes,
          backend: o.backend,
          picoshare: `${o.picoshare.version} (${o.picoshare.path}, sha256 ${o.picoshare.sha256})`,
          database: `${displayPath(state.db)} (run ${state.run_id})`,
          notRun: notRun(state, pending.filter((p) => !findRecord(state, p))),
          errors: cells
            .filter((x) => x.error)
            .map((x) => `${cellName(x)}${testSuffix(o, x)}: ${x.error} (log: ${displayPath(x.log_file)})`),
          resume: status === "complete" || pending.length === 0 ? null : resumeCommand(this.dir),
          cellStats: stats && stats.length > 0 ? cellStatsTable(stats) : null,
          warnings: [
            ...(stats ? stats.flatMap((s) => s.warnings) : []),
            ...this.driftWarnings(state),
            ...(state.controls ?? []).flatMap((x) => (x.drift ? [x.drift] : [])),
          ],
          controls: controlSeries(state),
        },
        rows,
      ),
    );
  }
}

/** The control cell's runs as a table for the summary; null without a sentinel. */
function controlSeries(state: MatrixState): { title: string; table: string } | null {
  const o = state.options.control;
  const runs = state.controls ?? [];
  if (!o || runs.length === 0) return null;
  const f = (x: number | null, d: number) => (x === null ? "-" : x.toFixed(d));
  return {
    title: `Control cell ${o.cell}, every ${o.every} test(s) (drift: a figure outside the first 3 runs' spread, widened to 25 % of their median):`,
    table: formatTable(
      ["After test", "Finished", "Result", "Throughput (MB/s)", "CPU (s)", "Probe disk (MiB/s)", "Probe CPU (s)", "Drift"],
      runs.map((c) => [
        String(c.after_tests), c.finished, c.success ? "PASS" : "FAIL", f(c.throughput_mbps, 2), f(c.cpu_seconds, 3),
        f(c.probe_disk_write_mibps, 1), f(c.probe_cpu_seconds, 3), c.drift ? "DRIFT" : "",
      ]),
      ["right", "left", "left", "right", "right", "right", "right", "left"],
    ),
  };
}

/** "256MB/1G", one per cell, with the tests not run named when a cell runs more than one. */
function notRun(state: MatrixState, tests: Cell[]): string[] {
  const o = state.options;
  const byCell = new Map<string, Cell[]>();
  for (const t of tests) {
    const name = testCellName(t);
    byCell.set(name, [...(byCell.get(name) ?? []), t]);
  }
  return [...byCell].map(([name, ts]) => (isRepeated(o) ? `${name} (${ts.map((t) => testSuffix(o, t).slice(2, -1)).join(", ")})` : name));
}
