// The drift sentinel: one fixed cell re-run every K tests of a matrix, as
// control runs (a run of kind "control" in the results log, files in
// DIR/control/), never as that cell's measurements, so shards and merges do
// not see them. When a control's throughput, CPU seconds or environment probe
// leaves the spread of the first controls, the host has changed under the
// matrix: a warning at once, and with --stop-on-drift a stop (resumable).
import { DriftWatch, outsideBand, type DriftBand, type DriftFigure } from "../upload/noise.ts";
import type { TestResult } from "../upload/result.ts";
import { UsageError } from "../core/errors.ts";
import { parseCellName } from "../stats/cells.ts";
import { parseSize } from "../core/sizes.ts";
import type { Cell } from "./plan.ts";

/** The results-log kind (and label) of a matrix's control run; its paired_run_id is the matrix's run. */
export const CONTROL_KIND = "control";

export interface ControlOptions {
  /** The control cell, spelt as cells are (256MB/100M). */
  cell: string;
  every: number;
  stop_on_drift: boolean;
}

/** What one control run came to (kept in matrix.json). */
export interface ControlRecord {
  /** Tests of the matrix run before it. */
  after_tests: number;
  finished: string;
  success: boolean;
  throughput_mbps: number | null;
  cpu_seconds: number | null;
  probe_disk_write_mibps: number | null;
  probe_cpu_seconds: number | null;
  result_file: string | null;
  /** The drift warning this control gave, if any. */
  drift: string | null;
}

const FIGURES: DriftFigure<ControlRecord>[] = [
  { key: "throughput", name: "throughput", unit: "MiB/s", slowerIsHigher: false, value: (c) => (c.success ? c.throughput_mbps : null) },
  { key: "cpu_seconds", name: "CPU seconds", unit: "s", slowerIsHigher: true, value: (c) => (c.success ? c.cpu_seconds : null) },
  { key: "probe_disk", name: "probe disk write (fsync'd)", unit: "MiB/s", slowerIsHigher: false, value: (c) => c.probe_disk_write_mibps },
  { key: "probe_cpu", name: "probe CPU loop", unit: "s", slowerIsHigher: true, value: (c) => c.probe_cpu_seconds },
];

/** A new watch over a control series. */
export function controlWatch(): DriftWatch<ControlRecord> {
  return new DriftWatch<ControlRecord>(FIGURES, "the control cell", "control runs");
}

/** A control series as the sentinel judges it: per control its warning, per figure the band and which controls lie outside it. */
export interface ControlJudgement {
  warnings: (string | null)[];
  figures: { key: string; name: string; unit: string; band: DriftBand | null; values: (number | null)[]; outside: boolean[] }[];
}

/** Replays the series through a new watch, as a resumed matrix does, so the report marks what the matrix warned of. */
export function judgeControls(records: ControlRecord[]): ControlJudgement {
  const watch = controlWatch();
  const warnings = records.map((c, i) => watch.add(c, `control ${i + 1} (after test ${c.after_tests})`));
  return {
    warnings,
    figures: FIGURES.map((f) => {
      const band = watch.band(f.key);
      const values = records.map(f.value);
      return { key: f.key, name: f.name, unit: f.unit, band, values, outside: values.map((v) => band !== null && v !== null && outsideBand(band, v)) };
    }),
  };
}

/** --control-cell CELL --control-every K, checked: the cell must be spelt right and its test file at hand (the caller checks the file). */
export function parseControl(cell: string | undefined, every: string | undefined, stop: boolean): ControlOptions | null {
  if (cell === undefined) {
    if (every !== undefined || stop) throw new UsageError("--control-every and --stop-on-drift go with --control-cell CELL (e.g. --control-cell 256MB/100M --control-every 5)");
    return null;
  }
  try {
    parseCellName(cell);
  } catch (err) {
    throw new UsageError(`--control-cell: ${(err as Error).message}`);
  }
  const k = every ?? "5";
  if (!/^[1-9][0-9]*$/.test(k)) throw new UsageError(`--control-every must be a whole number of tests above 0, got "${k}" (e.g. --control-every 5)`);
  return { cell, every: Number(k), stop_on_drift: stop };
}

/** The control cell as a test (its n-th run). */
export function controlTest(o: ControlOptions, n: number): Cell {
  const c = parseCellName(o.cell);
  return { index: n, ram: c.ram_mb, size: parseSize(c.file_size), concurrency: c.concurrency, iteration: n, warmup: false };
}

/** A control run's record from its result (null: run-test wrote none). */
export function controlRecord(afterTests: number, finished: string, r: TestResult | null, resultFile: string | null): ControlRecord {
  return {
    after_tests: afterTests, finished, success: r?.success ?? false, throughput_mbps: r?.success ? r.throughput_mbps : null,
    cpu_seconds: r?.success ? (r.cpu_seconds ?? null) : null, probe_disk_write_mibps: r?.environment_probe?.disk_write_mibps ?? null,
    probe_cpu_seconds: r?.environment_probe?.cpu_seconds ?? null, result_file: resultFile, drift: null,
  };
}
