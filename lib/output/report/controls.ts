// The drift sentinel in a matrix run's report: its control runs (a run of
// kind "control" naming the matrix's run) as a chart per figure against the
// tests before each, the band they are judged against, the controls outside
// it marked, and a table. The series is the matrix's own record of it
// (matrix.json), else it is read back from the results log.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CONTROL_KIND, controlRecord, judgeControls, type ControlOptions, type ControlRecord } from "../../matrix/sentinel.ts";
import { STATE_FILE } from "../../matrix/state.ts";
import type { PairedRunRow, ResultsDb } from "../../store/results-db.ts";
import type { StoredRun } from "../../store/stored-runs.ts";
import { readResult } from "../../upload/result.ts";
import { DRIFT_BASELINE, DRIFT_MIN_BAND } from "../../upload/noise.ts";
import { displayPath } from "../../core/paths.ts";
import { CAPTIONS, renderSvg } from "./charts.ts";
import { CONTROL_STATES, controlSpec, type ControlPoint } from "./control-chart.ts";
import { chartHtml, escapeHtml, notesHtml, scrollHtml, tableHtml, warningsHtml } from "./html.ts";

/** The figures drawn; the table has all four the sentinel watches. */
const CHARTED = ["throughput", "cpu_seconds"];

/** The control series of a matrix run: from its matrix.json when the folder is at hand, else from the results log (with a note why). */
function controlSeries(db: ResultsDb, matrix: StoredRun, control: PairedRunRow): { records: ControlRecord[]; note: string | null } {
  const dir = matrix.run.results_dir;
  const path = dir === null ? null : join(dir, STATE_FILE);
  if (path !== null && existsSync(path)) {
    try {
      const state = JSON.parse(readFileSync(path, "utf8")) as { run_id?: number; control_run_id?: number; controls?: ControlRecord[] };
      if (state.run_id === matrix.run.id && (state.control_run_id ?? control.id) === control.id && Array.isArray(state.controls)) {
        return { records: state.controls, note: null };
      }
    } catch {
      // unreadable: the results log has the series too
    }
  }
  // After which test: the matrix's tests recorded before the control (a result row is written when its test ends; a test without one by its start).
  const rows = db.results(matrix.run.id);
  const errors = db.harnessErrors(matrix.run.id);
  const records = db.results(control.id).map((row) => {
    const r = readResult(JSON.parse(row.raw_json));
    const after = rows.filter((x) => x.id < row.id).length + errors.filter((e) => e.timestamp <= r.timestamp).length;
    return controlRecord(after, r.timestamp, r, row.result_file);
  });
  return {
    records,
    note:
      `${path === null ? "The matrix's folder is not recorded" : `${displayPath(path)} is not at hand`}: the controls are read from the results log, ` +
      "each after the matrix tests recorded before it, and timed by its start.",
  };
}

function fmt(v: number | null, digits: number): string {
  return v === null ? "-" : v.toFixed(digits);
}

/** The matrix run's control series as a section (a chart, a table, the drift warnings), or "" when it has no control run. */
export async function controlSection(db: ResultsDb, matrix: StoredRun): Promise<string> {
  const control = db.runsPairedWith(matrix.run.id, CONTROL_KIND).at(-1);
  if (!control) return "";
  const { records, note } = controlSeries(db, matrix, control);
  if (records.length === 0) return "";
  let o: Partial<ControlOptions> = {};
  try {
    o = (JSON.parse(control.options_json) as { control?: ControlOptions }).control ?? {};
  } catch {}
  const judged = judgeControls(records);
  const panels = judged.figures
    .filter((f) => CHARTED.includes(f.key))
    .map((f) => ({
      name: f.name,
      unit: f.unit,
      band: f.band,
      points: f.values.flatMap((value, i): ControlPoint[] =>
        value === null
          ? []
          : [{ control: i + 1, after: records[i].after_tests, value, state: CONTROL_STATES[i < DRIFT_BASELINE ? 0 : f.outside[i] ? 2 : 1] }],
      ),
    }));
  const name = `Run ${matrix.run.id}`;
  const svg = await renderSvg(controlSpec(panels, `${name}: control cell ${o.cell ?? "?"} against the tests before it`));
  const table = tableHtml(
    {
      header: ["Control", "After test", note ? "Started" : "Finished", "Result", "Throughput (MiB/s)", "CPU (s)", "Probe disk (MiB/s)", "Probe CPU (s)", "Outside the band"],
      rows: records.map((c, i) => [
        String(i + 1), String(c.after_tests), c.finished, c.success ? "PASS" : "FAIL",
        fmt(c.throughput_mbps, 2), fmt(c.cpu_seconds, 3), fmt(c.probe_disk_write_mibps, 1), fmt(c.probe_cpu_seconds, 3),
        i < DRIFT_BASELINE ? `(sets the band)` : judged.figures.filter((f) => f.outside[i]).map((f) => f.name).join(", ") || "-",
      ]),
      numeric: [true, true, false, false, true, true, true, true, false],
    },
    `Control cell ${o.cell ?? "?"}, every ${o.every ?? "?"} test(s) (control run ${control.id})`,
  );
  const num = (v: number) => +v.toPrecision(4);
  const bands = judged.figures.flatMap(({ name, unit, band: b }) =>
    b ? [`${name} ${num(b.from)}-${num(b.to)} ${unit} (first ${DRIFT_BASELINE}: ${num(b.lo)}-${num(b.hi)})`] : [],
  );
  return [
    `<h3 id="controls-${matrix.run.id}">The drift sentinel: ${escapeHtml(o.cell ?? "the control cell")}</h3>`,
    `<div class="charts">${chartHtml(`control-${matrix.run.id}`, svg, CAPTIONS.control)}</div>`,
    scrollHtml(table),
    warningsHtml(judged.warnings.filter((w): w is string => w !== null)),
    notesHtml([
      bands.length > 0
        ? `Bands (the first ${DRIFT_BASELINE} controls' spread, widened to at least ${DRIFT_MIN_BAND * 100} % of their median): ${bands.join("; ")}.`
        : `Fewer than ${DRIFT_BASELINE + 1} controls: no drift is judged yet.`,
      ...(note ? [note] : []),
    ]),
  ].join("\n");
}
