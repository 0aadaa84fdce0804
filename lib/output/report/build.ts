// Assembles the report of one or more stored runs: per run its facts, charts,
// per-cell statistics (with each cell's host, for a run measured on several),
// the drift sentinel's control series and memory timelines; for two runs (or a live
// comparison's run, whose paired run comes along) the comparison B / A with
// its intervals; for ram-floor runs their floors, builds side by side.
import {
  DEFAULT_CV_THRESHOLD, cellKeyOf, cellName, describeNoise, errorCell, likelyCauses, resultCell, runHosts, summarizeRuns, type CellKey, type CellSummary,
} from "../../stats/cells.ts";
import { buildComparison, type Comparison, type ComparisonOptions } from "../../stats/comparison.ts";
import { UsageError } from "../../core/errors.ts";
import { cellTables, hostsText, methodLine, notes, outcomeTable, primaryTable } from "../exporters/compare-common.ts";
import type { HostFacts } from "../../upload/host.ts";
import { isoTimestamp, iterationOf, type TestResult } from "../../upload/result.ts";
import type { FloorRow, ResultsDb } from "../../store/results-db.ts";
import { formatBytes, MiB } from "../../core/sizes.ts";
import { formatDuration } from "../../core/durations.ts";
import { displayPath } from "../../core/paths.ts";
import { findResultFile, loadRun, sideOf, type StoredRun } from "../../store/stored-runs.ts";
import type { MergedShard } from "../../store/merge.ts";
import { CONTROL_KIND } from "../../matrix/sentinel.ts";
import { controlSection } from "./controls.ts";
import { readTimeline, type TimelineSample } from "../../upload/timeline.ts";
import { RAM_FLOOR_KIND, bracketEnds, type Floor, type FloorSearchSettings } from "../../floor/search.ts";
import { chartHtml, escapeHtml, factsHtml, listWarningHtml, notesHtml, pageHtml, scrollHtml, tableHtml, warningsHtml } from "./html.ts";
import { CAPTIONS, floorSpec, memorySpec, outcomeGridSpec, ratioSpec, renderSvg, throughputSpec, timelineSpec, trendSpec, type FloorPoint } from "./charts.ts";
import { cellTrend, trendRuns, trendTable, trendTitle, type TrendCell } from "../../stats/trend.ts";
import type { ComparedMetric } from "../../stats/metrics.ts";

/** Which trends the report draws. */
export interface TrendOptions {
  /** The cells asked for (each drawn, measured or not); null: every cell of the reported runs that two or more stored runs measured. */
  cells: TrendCell[] | null;
  metrics: ComparedMetric[];
  /** Only runs started at or after this moment (ms), as given (`text`); null: every run. */
  since: { at: number; text: string } | null;
}

export interface ReportOptions extends ComparisonOptions {
  dbPath: string;
  /** None: no trend section. */
  trend?: TrendOptions;
}

/** A cell of a stored run: its measured results and its tests that wrote none. */
interface CellGroup {
  key: CellKey;
  results: TestResult[];
  errors: number;
}

/** A stored run's results and harness errors by cell, largest RAM first, then smallest file first. */
function cellGroups(s: StoredRun): CellGroup[] {
  const cells = new Map<string, CellGroup>();
  const get = (key: CellKey) => {
    const k = cellKeyOf(key);
    let c = cells.get(k);
    if (!c) cells.set(k, (c = { key, results: [], errors: 0 }));
    return c;
  };
  for (const r of s.results) get(resultCell(r)).results.push(r);
  for (const e of s.harnessErrors) get(errorCell(e)).errors++;
  return [...cells.values()].sort(
    (x, y) => y.key.ram_mb - x.key.ram_mb || x.key.file_size_bytes - y.key.file_size_bytes || (x.key.concurrency ?? 1) - (y.key.concurrency ?? 1),
  );
}

/** Every cell of a stored run, harness-error-only cells included; each names its host when the run was measured on several. */
export function runCells(s: StoredRun, opts: ComparisonOptions = {}): CellSummary[] {
  const hosts = runHosts(s.results).length > 1;
  return cellGroups(s).map((c) =>
    summarizeRuns(c.key, c.results, { seed: opts.seed, resamples: opts.resamples, cvThreshold: opts.cvThreshold, harnessErrors: c.errors, hosts }),
  );
}

function fmt(v: number | null, digits: number, scale = 1): string {
  return v === null ? "-" : (v / scale).toFixed(digits);
}

function ci(s: { ci95: [number, number] | null }, digits: number, scale = 1): string {
  return s.ci95 ? `[${fmt(s.ci95[0], digits, scale)}, ${fmt(s.ci95[1], digits, scale)}]` : "-";
}

function pct(v: number | null): string {
  return v === null ? "-" : `${(v * 100).toFixed(1)} %`;
}

function statsTable(cells: CellSummary[]): string {
  // A run measured on several hosts (a merged one): which host measured each cell.
  const byHost = cells.some((c) => c.hosts);
  return tableHtml(
    {
      header: [
        "Cell", ...(byHost ? ["Host"] : []), "Runs", "Passed", "OOM", "Other failures", "No result",
        "Throughput median (MiB/s)", "95 % CI", "CV",
        "Peak memory median (MiB)", "95 % CI", "CV",
        "PicoShare peak RSS median (MiB)", "95 % CI", "Anon peak median (MiB)",
        "Duration median (s)", "CV",
      ],
      rows: cells.map((c) => [
        cellName(c), ...(byHost ? [hostsText(c.hosts)] : []), String(c.runs), String(c.passed), String(c.oom), String(c.failed - c.oom), String(c.harness_errors),
        fmt(c.throughput_mbps.median, 2), ci(c.throughput_mbps, 2), pct(c.throughput_mbps.cv),
        fmt(c.peak_memory_bytes.median, 1, MiB), ci(c.peak_memory_bytes, 1, MiB), pct(c.peak_memory_bytes.cv),
        fmt(c.picoshare_peak_rss_bytes.median, 1, MiB), ci(c.picoshare_peak_rss_bytes, 1, MiB), fmt(c.anon_peak_bytes.median, 1, MiB),
        fmt(c.duration_seconds.median, 2), pct(c.duration_seconds.cv),
      ]),
      numeric: [false, ...(byHost ? [false] : []), true, true, true, true, true, true, false, true, true, false, true, true, false, true, true, true],
    },
    "Per cell (statistics over the successful runs)",
  );
}

function hostLine(h: Partial<HostFacts>): [string, string][] {
  const v = (x: unknown) => (x === undefined ? "not recorded" : x === null ? "unknown" : String(x));
  return [
    ["Host", `${v(h.hostname)}, kernel ${v(h.kernel)}`],
    ["CPU", `${v(h.cpu_model)} x ${v(h.cpu_count)}, governor ${v(h.cpu_governor)}, max ${v(h.cpu_max_mhz)} MHz, boost ${v(h.cpu_boost)}`],
    ["Memory", `${h.memory_total_bytes ? formatBytes(h.memory_total_bytes) : "?"} total, ${h.memory_available_bytes ? formatBytes(h.memory_available_bytes) : "?"} available at start`],
    ["Load average (1 min) at start", v(h.load_average_1m)],
    ["Data dir disk", `rotational ${v(h.data_disk_rotational)}, file system ${v(h.data_dir_filesystem)}`],
  ];
}

/** One warning for all of a run's noisy cells, the likely causes named once. */
function noiseWarning(s: StoredRun, cells: CellSummary[], threshold: number): string {
  const noisy = cells.filter((c) => c.noisy.length > 0);
  if (noisy.length === 0) return "";
  const withMemory = noisy.some((c) => c.noisy.some((m) => m.metric === "peak_memory_bytes"));
  const causes = likelyCauses(
    withMemory ? "peak_memory_bytes" : "throughput_mbps",
    s.fingerprint.host,
    s.results.filter((r) => r.success).map((r) => r.memory_samples),
  );
  return listWarningHtml(
    `${noisy.length} cell(s) scatter more than the ${(threshold * 100).toFixed(0)} % coefficient of variation allows:`,
    noisy.map((c) => `${cellName(c)}: ${describeNoise(c.noisy)}`),
    `Likely causes: ${causes.join("; ")}.`,
  );
}

/** A merged run's shards as `results merge` recorded them (options.merged_from); none for other runs. */
function mergedFrom(s: StoredRun): MergedShard[] {
  try {
    const from = (JSON.parse(s.run.options_json) as { merged_from?: MergedShard[] }).merged_from;
    return Array.isArray(from) ? from : [];
  } catch {
    return [];
  }
}

/** What every run's section starts with: its kind, status, build, backend, host, shards (a merged run) and folder. */
function runFacts(s: StoredRun): [string, string][] {
  const r = s.run;
  const side = sideOf(s, ""); // version and sha256 from the run, else from its results
  const shards = mergedFrom(s).map(
    (m) => `${m.shard ? `${m.shard.index}/${m.shard.count}` : "?"} on ${m.hostname ?? "unknown host"}, ${m.cells.length} cell(s) (run ${m.run_id} of ${displayPath(m.path)})`,
  );
  return [
    ["Kind", `${r.kind}${r.label ? ` (side ${r.label}${r.paired_run_id ? ` of a comparison with run ${r.paired_run_id}` : ""})` : ""}`],
    ["Status", r.status],
    ["Started / finished", `${r.started_at} / ${r.finished_at ?? "-"}`],
    ["PicoShare", `${side.picoshare_version ?? "?"}, sha256 ${side.picoshare_sha256 ?? "?"}`],
    ["Backend", `${r.backend} ${JSON.stringify(s.fingerprint.backend_settings)}`],
    ...hostLine(s.fingerprint.host),
    // The host facts above are the first shard's; each cell's host is in the per-cell table.
    ...(shards.length > 0 ? [["Shards", shards.join("; ")] as [string, string]] : []),
    ["Results", r.results_dir ?? "-"],
  ];
}

async function runSection(s: StoredRun, cells: CellSummary[], threshold: number, controls: string): Promise<string> {
  const r = s.run;
  const name = `Run ${r.id}`;
  const parts = [`<h2 id="run-${r.id}">${escapeHtml(name)}</h2>`, factsHtml(runFacts(s))];
  if (cells.length === 0) {
    parts.push(notesHtml(["This run has no results yet."]));
    return parts.join("\n");
  }
  const [tp, mem, grid, timelines] = await Promise.all([
    renderSvg(throughputSpec(cells, `${name}: throughput against file size`)),
    renderSvg(memorySpec(cells, `${name}: peak memory against file size`)),
    renderSvg(outcomeGridSpec(cells, `${name}: pass / fail / OOM`)),
    timelinesHtml(s, name),
  ]);
  parts.push(
    `<div class="charts">${chartHtml(`throughput-${r.id}`, tp, CAPTIONS.throughput)}${chartHtml(`memory-${r.id}`, mem, CAPTIONS.memory)}` +
      `${chartHtml(`outcomes-${r.id}`, grid, CAPTIONS.outcomes)}</div>`,
    scrollHtml(statsTable(cells)),
    noiseWarning(s, cells, threshold),
    controls,
    timelines,
  );
  return parts.join("\n");
}

/** A test's timeline read back, or why it cannot be drawn. */
function timelineOf(s: StoredRun, r: TestResult): { samples: TimelineSample[] } | { reason: string } {
  // (Results written before timelines existed have no such field at all.)
  if (!r.timeline_file) return { reason: "no timeline recorded" };
  const path = findResultFile(r.timeline_file, s.resultFiles.get(r) ?? null);
  if (path === null) return { reason: `timeline file missing (${r.timeline_file})` };
  try {
    const samples = readTimeline(path);
    return samples.length > 0 ? { samples } : { reason: `timeline file has no samples (${displayPath(path)})` };
  } catch (e) {
    return { reason: `timeline file unreadable (${displayPath(path)}: ${(e as Error).message})` };
  }
}

/**
 * The test that stands for a cell's memory over time: the successful run with
 * the median upload duration (the lower of the two middle ones), or if none
 * passed the last failed one; where its timeline cannot be read, the nearest
 * one to it whose timeline can. `which` says in words which one it is.
 */
function cellTimeline(s: StoredRun, results: TestResult[]): { samples: TimelineSample[]; which: string } | { reason: string } {
  const passed = results.filter((r) => r.success).sort((x, y) => x.duration_seconds - y.duration_seconds);
  const mid = Math.floor((passed.length - 1) / 2);
  const nearMedian = (i: number) => Math.abs(i - mid) * 2 + (i > mid ? 1 : 0);
  const candidates =
    passed.length > 0 ? passed.map((r, i) => ({ r, d: nearMedian(i) })).sort((x, y) => x.d - y.d).map((x) => x.r) : [...results].reverse();
  let first: string | null = null;
  for (const [n, r] of candidates.entries()) {
    const t = timelineOf(s, r);
    if ("reason" in t) {
      first ??= t.reason;
      continue;
    }
    const it = `iteration ${iterationOf(r)}`;
    const which =
      passed.length > 0
        ? `of ${passed.length} successful run(s), the one ${n === 0 ? "with" : "nearest"} the median upload duration` +
          `${n === 0 ? "" : " whose timeline could be read"}: ${it}, ${r.duration_seconds.toFixed(2)} s${n === 0 ? "" : ` (the median one's: ${first})`}`
        : `no run passed; of ${results.length} failed, ${n === 0 ? "the last one" : "the latest one whose timeline could be read"}: ` +
          `${it}, ${r.exit_reason}${n === 0 ? "" : ` (the last one's: ${first})`}`;
    return { samples: t.samples, which };
  }
  return { reason: first ?? "no test result" };
}

/** One memory timeline per cell of the run, or per cell the reason there is none. */
async function timelinesHtml(s: StoredRun, name: string): Promise<string> {
  // A run from before timelines existed: one line, not one per cell.
  if (!s.results.some((r) => r.timeline_file)) return notesHtml(["Memory over time: no test of this run recorded a timeline."]);
  const figures: Promise<string>[] = [];
  const reasons: string[] = [];
  for (const c of cellGroups(s)) {
    const label = cellName(c.key);
    const t = cellTimeline(s, c.results);
    if ("reason" in t) {
      reasons.push(`${label}: no memory timeline: ${t.reason}.`);
      continue;
    }
    const caption = `${t.which[0].toUpperCase()}${t.which.slice(1)}. ${CAPTIONS.timeline}`;
    figures.push(
      renderSvg(timelineSpec(t.samples, c.key.ram_mb, `${name}, ${label}: memory over time`)).then((svg) =>
        chartHtml(`timeline-${s.run.id}-${label.replace(/\//g, "-")}`, svg, caption),
      ),
    );
  }
  const charts = await Promise.all(figures);
  return [
    `<h3 id="timelines-${s.run.id}">Memory over time, one test per cell</h3>`,
    charts.length > 0 ? `<div class="charts">${charts.join("")}</div>` : "",
    notesHtml(reasons),
  ].join("\n");
}

/** The cells of the reported runs, in the order of their sections (largest RAM first, then smallest file, then fewest uploads at once). */
function reportedCells(runs: StoredRun[]): TrendCell[] {
  const cells = new Map<string, TrendCell>();
  for (const r of runs.flatMap((s) => s.results)) {
    const c = resultCell(r);
    cells.set(cellKeyOf(c), { ram_mb: c.ram_mb, file_size: c.file_size, file_size_bytes: c.file_size_bytes, concurrency: c.concurrency ?? 1 });
  }
  return [...cells.values()].sort((x, y) => y.ram_mb - x.ram_mb || x.file_size_bytes - y.file_size_bytes || x.concurrency - y.concurrency);
}

/**
 * Each cell's metric over every stored run (lib/stats/trend.ts, as `results
 * trend` prints it): a chart and the table. Asked-for cells are drawn however
 * few runs measured them; by default a cell of the report needs two runs with
 * a median to make a trend. "" when trends are off or nothing is drawn.
 */
async function trendSection(db: ResultsDb, reported: StoredRun[], opts: ReportOptions): Promise<string> {
  const t = opts.trend;
  if (!t) return "";
  const since = t.since ? ` since ${t.since.text}` : "";
  const stored = trendRuns(db, opts.dbPath, t.since?.at ?? null);
  const mine = reported.map((s) => s.run.id);
  const cells = t.cells ?? reportedCells(reported);
  // The charts side by side first, then the tables: a glance along the charts shows where a step came.
  const charts: string[] = [];
  const tables: string[] = [];
  const notes: string[] = [];
  for (const cell of cells) {
    for (const metric of t.metrics) {
      const points = cellTrend(stored, cell, metric);
      const drawn = points.filter((p) => p.median !== null).length;
      if (t.cells === null && drawn < 2) continue;
      const title = trendTitle(cell, metric);
      if (points.length === 0) {
        notes.push(`${title}: no stored run${since} measured this cell.`);
        continue;
      }
      const table = trendTable(points, metric, mine);
      const name = `trend-${cellName(cell).replace(/\//g, "-")}-${metric.key}`;
      if (drawn > 0) charts.push(chartHtml(name, await renderSvg(trendSpec(points, metric, mine, `${title}${since}`)), CAPTIONS.trend));
      tables.push(
        scrollHtml(tableHtml({ header: table.header, rows: table.rows, numeric: table.align.map((a) => a === "right") }, `${title}${since}`)),
        notesHtml([...(drawn === 0 ? ["No run passed this cell in any stored run: nothing to draw."] : []), ...table.notes]),
      );
    }
  }
  if (tables.length === 0 && notes.length === 0 && t.cells === null) {
    if (cells.length === 0) return "";
    notes.push(`No cell of this report was measured by two or more stored runs${since} with a run that passed: no trend to draw.`);
  }
  return [
    `<h2 id="trends">Trends: ${escapeHtml(`${t.metrics.map((m) => m.name).join(", ")} over the stored runs${since}`)}</h2>`,
    charts.length > 0 ? `<div class="charts">${charts.join("")}</div>` : "",
    ...tables,
    notesHtml(notes),
  ].join("\n");
}

function isFloorRun(s: StoredRun): boolean {
  return s.run.kind === RAM_FLOOR_KIND;
}

/** The floor search's settings as its run stored them (older or foreign runs: what is there). */
function floorSettings(s: StoredRun): Partial<FloorSearchSettings> {
  try {
    return JSON.parse(s.run.options_json) as Partial<FloorSearchSettings>;
  } catch {
    return {};
  }
}

/** A build as the report names it: its PicoShare version (a build from source: source@commit) and its sha256, shortened. */
function buildName(s: StoredRun): string {
  const side = sideOf(s, "");
  const src = s.results.find((r) => r.picoshare_source);
  const what = src?.picoshare_source
    ? src.picoshare_commit
      ? `${src.picoshare_source}@${src.picoshare_commit.slice(0, 12)}${src.picoshare_dirty ? " (dirty)" : ""}`
      : `${src.picoshare_source} (${side.picoshare_version ?? "?"})`
    : (side.picoshare_version ?? "unknown version");
  return side.picoshare_sha256 ? `${what}, sha256 ${side.picoshare_sha256.slice(0, 12)}` : what;
}

/** Each run's build name; where runs share one, each gets its run id too. */
function buildNames(runs: StoredRun[]): string[] {
  const names = runs.map(buildName);
  return names.map((n, i) => (names.filter((m) => m === n).length > 1 ? `${n} (run ${runs[i].run.id})` : n));
}

/** The floors of ram-floor runs: floor against file size, one line per build, and per size the builds side by side. */
async function floorSection(runs: StoredRun[]): Promise<string> {
  const builds = buildNames(runs);
  const parts = [`<h2 id="ram-floor">RAM floor</h2>`];
  const points: FloorPoint[] = runs.flatMap((s, i) =>
    s.floors.map((f) => ({
      build: builds[i], size: f.file_size, file_size_bytes: f.file_size_bytes, lowest_passing_mb: f.lowest_passing_mb,
      highest_failing_mb: f.highest_failing_mb, failure: f.failure, finished: f.unfinished === 0, probes: f.probes,
    })),
  );
  const without = runs
    .filter((s) => s.floors.length === 0)
    .map(
      (s) =>
        `Run ${s.run.id} (${s.run.status}) has no floor stored: it ended before its first size's search did, ` +
        `or it is older than the results log's floors (its floors.json: ${s.run.results_dir ?? "-"}).`,
    );
  if (points.length === 0) return [...parts, notesHtml(without)].join("\n");
  const svg = await renderSvg(floorSpec(points, builds, "RAM floor against file size"));
  parts.push(`<div class="charts">${chartHtml("ram-floor", svg, CAPTIONS.floor)}</div>`);
  const sizes = [...new Map(points.map((p) => [p.size, p.file_size_bytes])).entries()].sort((x, y) => x[1] - y[1]).map(([size]) => size);
  const settings = runs.map(floorSettings);
  const bracket = (f: FloorRow, i: number) => `[${bracketEnds(f, settings[i].min_mb ?? null, settings[i].max_mb ?? null).join(", ")}]`;
  for (const size of sizes) {
    const at = runs.map((s) => s.floors.find((f) => f.file_size === size) ?? null);
    const row = (what: string, cell: (f: FloorRow, run: number) => string) => [what, ...at.map((f, i) => (f === null ? "not searched" : cell(f, i)))];
    parts.push(
      scrollHtml(
        tableHtml(
          {
            header: [size, ...builds],
            rows: [
              row("Bracket [highest failing, lowest passing] (MiB)", bracket),
              row("How the highest failing limit failed", (f) => f.failure ?? "-"),
              row("Probes", (f) => String(f.probes)),
              row("Time", (f) => formatDuration(f.seconds)),
              row("Search", (f) => (f.unfinished ? "UNFINISHED (time limit)" : "finished")),
            ],
          },
          `RAM floor of ${size}`,
        ),
      ),
    );
  }
  parts.push(notesHtml(without));
  return parts.join("\n");
}

/** A ram-floor run's own section: its facts, the search's settings, and each size's probes in the order run. */
function floorRunSection(s: StoredRun): string {
  const o = floorSettings(s);
  const search =
    `${o.min_mb ?? "?"} to ${o.max_mb ?? "?"} MiB, to ${o.resolution_mb ?? "?"} MiB, ends re-run ${o.repeat ?? "?"} x, ` +
    `thrashing above ${o.thrash_factor ?? "?"} x the upload at --max${o.max_minutes ? `, at most ${o.max_minutes} min per size` : ""}`;
  const parts = [`<h2 id="run-${s.run.id}">Run ${s.run.id}: RAM floor</h2>`, factsHtml([...runFacts(s), ["Search", search]])];
  for (const row of s.floors) {
    const f = JSON.parse(row.floor_json) as Floor;
    parts.push(
      scrollHtml(
        tableHtml(
          {
            header: ["RAM (MiB)", "Outcome", "Upload (s)", "Whole probe (s)", "Re-run"],
            rows: f.probes.map((p) => [String(p.ram_mb), p.passed ? "passed" : p.outcome, p.upload_seconds.toFixed(2), p.wall_seconds.toFixed(2), p.repeat ? "yes" : ""]),
            numeric: [true, false, true, true, false],
          },
          `${f.file_size}: the probes in the order run (upload at --max ${f.reference_upload_seconds.toFixed(2)} s; slower than ${f.thrash_limit_seconds} s: thrashing)`,
        ),
      ),
    );
  }
  if (s.floors.length === 0) parts.push(notesHtml([`No floor stored for this run; its probes are its ${s.results.length} result(s).`]));
  return parts.join("\n");
}

async function comparisonSection(c: Comparison): Promise<string> {
  const { warnings, noise, notes: extra } = notes(c);
  const parts = [
    `<h2 id="comparison">Comparison: run ${c.b.run_id} (B) against run ${c.a.run_id} (A)</h2>`,
    warningsHtml(warnings),
    noise ? listWarningHtml(noise.intro, noise.items, noise.causes) : "",
  ];
  if (c.cells.length > 0) parts.push(`<div class="charts">${chartHtml("ratio", await renderSvg(ratioSpec(c)), CAPTIONS.ratio)}</div>`);
  for (const t of [primaryTable(c), ...cellTables(c), outcomeTable(c)]) {
    parts.push(scrollHtml(tableHtml({ header: t.header, rows: t.rows, numeric: t.align.map((a) => a === "right") }, t.title)));
  }
  parts.push(notesHtml([methodLine(c), ...extra]));
  return parts.join("\n");
}

/** Which two runs to compare: the two given, or a live comparison's run and its pair. */
export function comparisonPair(runs: StoredRun[]): [number, number] | null {
  if (runs.length === 2) return [runs[0].run.id, runs[1].run.id];
  // A control run names its matrix's run as its pair, but is no side of a comparison.
  if (runs.length === 1 && runs[0].run.paired_run_id !== null && runs[0].run.kind !== CONTROL_KIND) {
    const r = runs[0].run;
    // A compare-b run given alone is still the B side.
    return r.kind === "compare-b" ? [r.paired_run_id!, r.id] : [r.id, r.paired_run_id!];
  }
  return null;
}

export async function buildReport(db: ResultsDb, ids: number[], opts: ReportOptions): Promise<string> {
  if (ids.length === 0) throw new UsageError("give at least one run id (e.g. bun scripts/report.ts 12)", true);
  const given = ids.map((id) => loadRun(db, id, opts.dbPath));
  // A floor search's probes each ran at a limit of their own: they are no matrix, and compare's statistics do not apply.
  const floorRuns = given.filter(isFloorRun);
  const runs = given.filter((s) => !isFloorRun(s));
  const pair = comparisonPair(runs);
  if (pair) for (const id of pair) if (!runs.some((r) => r.run.id === id)) runs.push(loadRun(db, id, opts.dbPath));
  if (pair) runs.sort((x, y) => (x.run.id === pair[0] ? -1 : y.run.id === pair[0] ? 1 : 0));

  const sections: string[] = [];
  if (floorRuns.length > 0) sections.push(await floorSection(floorRuns));
  let comparison: Comparison | null = null;
  if (pair) {
    const a = runs.find((r) => r.run.id === pair[0])!;
    const b = runs.find((r) => r.run.id === pair[1])!;
    comparison = buildComparison(sideOf(a, "A"), sideOf(b, "B"), opts);
    sections.push(await comparisonSection(comparison));
  } else if (runs.length > 2) {
    sections.push(notesHtml([`${runs.length} runs: no comparison (give two runs, or one run of a live comparison, for B / A).`]));
  }
  for (const s of runs) {
    sections.push(await runSection(s, runCells(s, opts), opts.cvThreshold ?? DEFAULT_CV_THRESHOLD, await controlSection(db, s)));
  }
  const trends = await trendSection(db, runs, opts);
  sections.push(trends);
  for (const s of floorRuns) sections.push(floorRunSection(s));

  const all = [...runs, ...floorRuns];
  const title = comparison
    ? `PicoShare performance: run ${comparison.b.run_id} against run ${comparison.a.run_id}`
    : `PicoShare ${runs.length === 0 ? "RAM floor" : "performance"}: run${all.length > 1 ? "s" : ""} ${all.map((r) => r.run.id).join(", ")}`;
  const toc = all.length > 1 || comparison || trends
    ? `<p>${[
      floorRuns.length > 0 && all.length > 1 ? `<a href="#ram-floor">RAM floor</a>` : null,
      comparison ? `<a href="#comparison">Comparison</a>` : null,
      ...runs.map((r) => `<a href="#run-${r.run.id}">Run ${r.run.id}</a>`),
      trends ? `<a href="#trends">Trends</a>` : null,
      ...floorRuns.map((r) => `<a href="#run-${r.run.id}">Run ${r.run.id}</a>`),
    ].filter(Boolean).join(" · ")}</p>`
    : "";
  return pageHtml(
    title,
    `Results log ${opts.dbPath}; generated ${isoTimestamp(new Date())}`,
    `${toc}\n${sections.join("\n")}`,
    "Made by picoshare-perf-test scripts/report.ts. Charts: Vega-Lite, rendered to SVG when the report was made.",
  );
}
