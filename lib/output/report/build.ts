// Assembles the report of one or more stored runs: per run its facts, charts
// and per-cell statistics; for two runs (or a live comparison's run, whose
// paired run comes along) the comparison B / A with its intervals.
import { DEFAULT_CV_THRESHOLD, cellKeyOf, describeNoise, likelyCauses, summarizeRuns, type CellKey, type CellSummary } from "../../stats/cells.ts";
import { buildComparison, type Comparison, type ComparisonOptions } from "../../stats/comparison.ts";
import { UsageError } from "../../core/errors.ts";
import { cellTables, methodLine, notes, outcomeTable, primaryTable } from "../exporters/compare-common.ts";
import type { HostFacts } from "../../upload/host.ts";
import { isoTimestamp } from "../../upload/result.ts";
import type { ResultsDb } from "../../store/results-db.ts";
import { formatBytes, MiB, parseSize } from "../../core/sizes.ts";
import { loadRun, sideOf, type StoredRun } from "../../store/stored-runs.ts";
import { chartHtml, escapeHtml, factsHtml, listWarningHtml, notesHtml, pageHtml, scrollHtml, tableHtml, warningsHtml } from "./html.ts";
import { CAPTIONS, memorySpec, outcomeGridSpec, ratioSpec, renderSvg, throughputSpec } from "./charts.ts";

export interface ReportOptions extends ComparisonOptions {
  dbPath: string;
}

/** Every cell of a stored run, harness-error-only cells included. */
export function runCells(s: StoredRun, opts: ComparisonOptions = {}): CellSummary[] {
  const cells = new Map<string, { key: CellKey; results: StoredRun["results"]; errors: number }>();
  const get = (key: CellKey) => {
    const k = cellKeyOf(key);
    let c = cells.get(k);
    if (!c) cells.set(k, (c = { key, results: [], errors: 0 }));
    return c;
  };
  for (const r of s.results) get({ ram_mb: r.ram_mb, file_size: r.file_size, file_size_bytes: r.file_size_bytes }).results.push(r);
  for (const e of s.harnessErrors) {
    let bytes = -1;
    try {
      bytes = parseSize(e.file_size).bytes;
    } catch {
      // an unparsable label stays a cell of its own
    }
    get({ ram_mb: e.ram_mb, file_size: e.file_size, file_size_bytes: bytes }).errors++;
  }
  return [...cells.values()]
    .map((c) => summarizeRuns(c.key, c.results, { seed: opts.seed, resamples: opts.resamples, cvThreshold: opts.cvThreshold, harnessErrors: c.errors }))
    .sort((x, y) => y.ram_mb - x.ram_mb || x.file_size_bytes - y.file_size_bytes);
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
  return tableHtml(
    {
      header: [
        "RAM (MB)", "File", "Runs", "Passed", "OOM", "Other failures", "No result",
        "Throughput median (MiB/s)", "95 % CI", "CV",
        "Peak memory median (MiB)", "95 % CI", "CV",
        "PicoShare peak RSS median (MiB)", "95 % CI", "Anon peak median (MiB)",
        "Duration median (s)", "CV",
      ],
      rows: cells.map((c) => [
        String(c.ram_mb), c.file_size, String(c.runs), String(c.passed), String(c.oom), String(c.failed - c.oom), String(c.harness_errors),
        fmt(c.throughput_mbps.median, 2), ci(c.throughput_mbps, 2), pct(c.throughput_mbps.cv),
        fmt(c.peak_memory_bytes.median, 1, MiB), ci(c.peak_memory_bytes, 1, MiB), pct(c.peak_memory_bytes.cv),
        fmt(c.picoshare_peak_rss_bytes.median, 1, MiB), ci(c.picoshare_peak_rss_bytes, 1, MiB), fmt(c.anon_peak_bytes.median, 1, MiB),
        fmt(c.duration_seconds.median, 2), pct(c.duration_seconds.cv),
      ]),
      numeric: [true, false, true, true, true, true, true, true, false, true, true, false, true, true, false, true, true, true],
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
    noisy.map((c) => `${c.ram_mb}MB ${c.file_size}: ${describeNoise(c.noisy)}`),
    `Likely causes: ${causes.join("; ")}.`,
  );
}

async function runSection(s: StoredRun, cells: CellSummary[], threshold: number): Promise<string> {
  const r = s.run;
  const side = sideOf(s, ""); // version and sha256 from the run, else from its results
  const name = `Run ${r.id}`;
  const facts: [string, string][] = [
    ["Kind", `${r.kind}${r.label ? ` (side ${r.label}${r.paired_run_id ? ` of a comparison with run ${r.paired_run_id}` : ""})` : ""}`],
    ["Status", r.status],
    ["Started / finished", `${r.started_at} / ${r.finished_at ?? "-"}`],
    ["PicoShare", `${side.picoshare_version ?? "?"}, sha256 ${side.picoshare_sha256 ?? "?"}`],
    ["Backend", `${r.backend} ${JSON.stringify(s.fingerprint.backend_settings)}`],
    ...hostLine(s.fingerprint.host),
    ["Results", r.results_dir ?? "-"],
  ];
  const parts = [`<h2 id="run-${r.id}">${escapeHtml(name)}</h2>`, factsHtml(facts)];
  if (cells.length === 0) {
    parts.push(notesHtml(["This run has no results yet."]));
    return parts.join("\n");
  }
  const [tp, mem, grid] = await Promise.all([
    renderSvg(throughputSpec(cells, `${name}: throughput against file size`)),
    renderSvg(memorySpec(cells, `${name}: peak memory against file size`)),
    renderSvg(outcomeGridSpec(cells, `${name}: pass / fail / OOM`)),
  ]);
  parts.push(
    `<div class="charts">${chartHtml(`throughput-${r.id}`, tp, CAPTIONS.throughput)}${chartHtml(`memory-${r.id}`, mem, CAPTIONS.memory)}` +
      `${chartHtml(`outcomes-${r.id}`, grid, CAPTIONS.outcomes)}</div>`,
    scrollHtml(statsTable(cells)),
    noiseWarning(s, cells, threshold),
  );
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
  if (runs.length === 1 && runs[0].run.paired_run_id !== null) {
    const r = runs[0].run;
    // A compare-b run given alone is still the B side.
    return r.kind === "compare-b" ? [r.paired_run_id!, r.id] : [r.id, r.paired_run_id!];
  }
  return null;
}

export async function buildReport(db: ResultsDb, ids: number[], opts: ReportOptions): Promise<string> {
  if (ids.length === 0) throw new UsageError("give at least one run id (e.g. bun scripts/report.ts 12)", true);
  const given = ids.map((id) => loadRun(db, id, opts.dbPath));
  const pair = comparisonPair(given);
  const runs = [...given];
  if (pair) for (const id of pair) if (!runs.some((r) => r.run.id === id)) runs.push(loadRun(db, id, opts.dbPath));
  if (pair) runs.sort((x, y) => (x.run.id === pair[0] ? -1 : y.run.id === pair[0] ? 1 : 0));

  const sections: string[] = [];
  let comparison: Comparison | null = null;
  if (pair) {
    const a = runs.find((r) => r.run.id === pair[0])!;
    const b = runs.find((r) => r.run.id === pair[1])!;
    comparison = buildComparison(sideOf(a, "A"), sideOf(b, "B"), opts);
    sections.push(await comparisonSection(comparison));
  } else if (runs.length > 2) {
    sections.push(notesHtml([`${runs.length} runs: no comparison (give two runs, or one run of a live comparison, for B / A).`]));
  }
  for (const s of runs) sections.push(await runSection(s, runCells(s, opts), opts.cvThreshold ?? DEFAULT_CV_THRESHOLD));

  const title = comparison
    ? `PicoShare performance: run ${comparison.b.run_id} against run ${comparison.a.run_id}`
    : `PicoShare performance: run${runs.length > 1 ? "s" : ""} ${runs.map((r) => r.run.id).join(", ")}`;
  const toc = runs.length > 1 || comparison
    ? `<p>${[comparison ? `<a href="#comparison">Comparison</a>` : null, ...runs.map((r) => `<a href="#run-${r.run.id}">Run ${r.run.id}</a>`)].filter(Boolean).join(" · ")}</p>`
    : "";
  return pageHtml(
    title,
    `Results log ${opts.dbPath}; generated ${isoTimestamp(new Date())}`,
    `${toc}\n${sections.join("\n")}`,
    "Made by picoshare-perf-test scripts/report.ts. Charts: Vega-Lite, rendered to SVG when the report was made.",
  );
}
