// One cell's metric over time: its median in each stored run that measured
// the cell, oldest first, with the build it measured and a mark where the
// environment or the harness differed from the run before (a step there may
// be the host's or the harness's, not PicoShare's). results.ts trend prints
// it, the report draws it: both read the flags and the runs through here.
import { loadRun, type StoredRun } from "../store/stored-runs.ts";
import type { ResultsDb } from "../store/results-db.ts";
import { RAM_FLOOR_KIND } from "../floor/search.ts";
import { UsageError, errorMessage } from "../core/errors.ts";
import { parseSize } from "../core/sizes.ts";
import type { Align } from "../output/table.ts";
import { cellKeyOf, cellName, parseCellName } from "./cells.ts";
import { compareFingerprints, describeDifferences } from "./fingerprint.ts";
import { COMPARED_METRICS, type ComparedMetric } from "./metrics.ts";
import { summarize } from "./stats.ts";
import { isWarmup } from "../upload/result.ts";

/** What can differ from the run before: the environment (host, backend, provenance) or the harness's commit. */
export type TrendChange = "environment" | "harness";

export interface TrendPoint {
  run_id: number;
  started_at: string;
  kind: string;
  picoshare_version: string;
  picoshare_commit: string | null;
  harness_commit: string | null;
  /** Passed measured runs of the cell. */
  n: number;
  median: number | null;
  ci95: [number, number] | null;
  /** What differs from the previous point's run, in words; empty when nothing. */
  changes: string[];
  /** Which of the two differs, in the order of `changes`. */
  differs: TrendChange[];
}

/** A cell as the trend reads it: its spelling's parts and its size in bytes. */
export interface TrendCell {
  ram_mb: number;
  file_size: string;
  file_size_bytes: number;
  concurrency: number;
}

// The fingerprint's provenance carries the harness's commit too; the harness
// gets a line of its own (each run's commits, dirty or not), so it is left out
// of the environment's.
const HARNESS_FIELDS = new Set(["harness_commit", "harness_dirty"]);

export function trendMetric(key: string): ComparedMetric | undefined {
  return COMPARED_METRICS.find((m) => m.key === key);
}

/** A flag's cell (--cell, --trend), spelt as cellName spells it; exit 2 naming the form otherwise. */
export function parseTrendCell(flag: string, text: string): TrendCell {
  let cell;
  try {
    cell = parseCellName(text);
  } catch (err) {
    throw new UsageError(`${flag}: ${errorMessage(err)}`);
  }
  try {
    return { ...cell, file_size_bytes: parseSize(cell.file_size).bytes };
  } catch (err) {
    throw new UsageError(`${flag} ${text}: ${errorMessage(err)}`);
  }
}

/** A flag's metric (--metric, --trend-metric): a metric of compare; exit 2 listing them otherwise. */
export function parseTrendMetric(flag: string, text: string): ComparedMetric {
  const metric = trendMetric(text);
  if (!metric) throw new UsageError(`${flag} "${text}" is not a metric of compare (${COMPARED_METRICS.map((m) => m.key).join(", ")})`);
  return metric;
}

/**
 * --since as a moment (ms since the epoch): an ISO 8601 date, meaning local
 * midnight (as a user who types a day means it, while started_at carries its
 * local offset), or a date and time, with an offset or else local. Anything
 * else (which Date.parse would guess at) is refused with exit 2.
 */
export function parseSince(flag: string, text: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(Z|[+-]\d{2}:\d{2})?)?$/.exec(text);
  const refuse = () => new UsageError(`${flag} "${text}" is not an ISO 8601 date or time (e.g. ${flag} 2026-11-01, or ${flag} 2026-11-01T14:30:00+01:00)`);
  if (!m) throw refuse();
  const given = m.slice(1, 7).map((x) => Number(x ?? 0));
  const [y, mo, d, h, mi, sec] = given;
  const ms = Number((m[7] ?? "0").padEnd(3, "0"));
  const offset = m[8];
  const at = offset === undefined ? new Date(y, mo - 1, d, h, mi, sec, ms) : new Date(Date.UTC(y, mo - 1, d, h, mi, sec, ms));
  // A day or an hour that does not exist (2026-02-30, 25:00) rolls over in Date: refused instead.
  const read = offset === undefined
    ? [at.getFullYear(), at.getMonth() + 1, at.getDate(), at.getHours(), at.getMinutes(), at.getSeconds()]
    : [at.getUTCFullYear(), at.getUTCMonth() + 1, at.getUTCDate(), at.getUTCHours(), at.getUTCMinutes(), at.getUTCSeconds()];
  if (read.some((f, i) => f !== given[i])) throw refuse();
  if (offset === undefined || offset === "Z") return at.getTime();
  const [oh, om] = offset.slice(1).split(":").map(Number);
  if (oh > 23 || om > 59) throw refuse();
  return at.getTime() - (offset[0] === "-" ? -1 : 1) * (oh * 60 + om) * 60_000;
}

/**
 * The runs a trend is made of: every stored matrix and comparison side
 * started at or after `since` (ms; null: all). A floor search is left out:
 * its probes each ran at a limit of their own.
 */
export function trendRuns(db: ResultsDb, dbPath: string, since: number | null): StoredRun[] {
  return db
    .listRuns(Number.MAX_SAFE_INTEGER)
    .filter((r) => r.kind !== RAM_FLOOR_KIND && (since === null || Date.parse(r.started_at) >= since))
    .map((r) => loadRun(db, r.id, dbPath));
}

/** The cell's metric per run, oldest first (by the moment started_at names, whatever its offset); runs without the cell are left out. */
export function cellTrend(runs: StoredRun[], cell: { ram_mb: number; file_size_bytes: number; concurrency: number }, metric: ComparedMetric): TrendPoint[] {
  const key = cellKeyOf(cell);
  const points: TrendPoint[] = [];
  let previous: { run: StoredRun; harness: string } | null = null;
  for (const s of [...runs].sort((a, b) => Date.parse(a.run.started_at) - Date.parse(b.run.started_at) || a.run.id - b.run.id)) {
    const mine = s.results.filter((r) => cellKeyOf(r) === key && !isWarmup(r));
    if (mine.length === 0) continue;
    const ok = mine.filter((r) => r.success);
    const values = ok.map(metric.value).filter((v): v is number => v !== null).map((v) => v / metric.scale);
    const sum = summarize(values);
    const harness = harnessOf(s);
    const changes: string[] = [];
    const differs: TrendChange[] = [];
    if (previous) {
      const diffs = compareFingerprints(previous.run.fingerprint, s.fingerprint).filter((d) => !HARNESS_FIELDS.has(d.field));
      if (diffs.length > 0) {
        changes.push(`environment: ${describeDifferences(diffs)}`);
        differs.push("environment");
      }
      if (previous.harness !== harness) {
        changes.push(`harness: ${previous.harness} -> ${harness}`);
        differs.push("harness");
      }
    }
    points.push({
      run_id: s.run.id, started_at: s.run.started_at, kind: s.run.kind, picoshare_version: s.run.picoshare_version ?? mine[0].picoshare_version,
      picoshare_commit: mine[0].picoshare_commit ?? null, harness_commit: mine[0].harness_commit ?? null,
      n: sum.n, median: sum.median, ci95: sum.ci95, changes, differs,
    });
    previous = { run: s, harness };
  }
  return points;
}

/** The harness commits a run's results were measured with ("unknown" where not recorded). */
function harnessOf(s: StoredRun): string {
  return [...new Set(s.results.map((r) => (r.harness_commit ? `${r.harness_commit.slice(0, 12)}${r.harness_dirty ? " dirty" : ""}` : "unknown")))].join(", ");
}

export function trendTitle(cell: { ram_mb: number; file_size: string; concurrency: number }, metric: ComparedMetric): string {
  return `${metric.name} (${metric.unit || "count"}) of ${cellName(cell)}, median per run`;
}

/** A point's build in a few characters: its version, and its commit where the version does not already name it. */
export function trendBuild(p: Pick<TrendPoint, "picoshare_version" | "picoshare_commit">): string {
  const c = p.picoshare_commit?.slice(0, 7);
  return c && !p.picoshare_version.includes(c) ? `${p.picoshare_version}@${c}` : p.picoshare_version;
}

/**
 * The trend as a table (the terminal's and the report's): a row per run, `*`
 * where something differs from the run before; `notes` names what, a line
 * per marked run. `mine` are the runs a report is of, marked in the Run column.
 */
export function trendTable(points: TrendPoint[], metric: ComparedMetric, mine: number[] = []): { header: string[]; rows: string[][]; align: Align[]; notes: string[] } {
  const f = (x: number | null) => (x === null ? "-" : x.toFixed(metric.digits));
  return {
    header: ["Run", "Started", "Kind", "PicoShare", "Commit", "n", "Median", "95% CI", ""],
    rows: points.map((p) => [
      `${p.run_id}${mine.includes(p.run_id) ? " (this report)" : ""}`, p.started_at, p.kind, p.picoshare_version, p.picoshare_commit?.slice(0, 12) ?? "-",
      String(p.n), f(p.median), p.ci95 ? `${f(p.ci95[0])}-${f(p.ci95[1])}` : "-", p.changes.length > 0 ? "*" : "",
    ]),
    align: ["right", "left", "left", "left", "left", "right", "right", "right", "left"],
    notes: points.filter((p) => p.changes.length > 0).map((p) => `* run ${p.run_id}: ${p.changes.join("; ")}`),
  };
}
