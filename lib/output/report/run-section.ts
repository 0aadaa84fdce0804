// A run's section of the report: its facts, its charts over the cells, the
// per-cell statistics (with each cell's host, for a run measured on several),
// a warning for its noisy cells, the drift sentinel's controls and the
// memory timelines.
import { cellName, describeNoise, likelyCauses, type CellSummary } from "../../stats/cells.ts";
import { hostsText } from "../exporters/compare-common.ts";
import { MiB } from "../../core/sizes.ts";
import type { StoredRun } from "../../store/stored-runs.ts";
import { chartHtml, escapeHtml, factsHtml, listWarningHtml, notesHtml, scrollHtml, tableHtml } from "./html.ts";
import { CAPTIONS, renderSvg } from "./charts.ts";
import { memorySpec, outcomeGridSpec, throughputSpec } from "./run-charts.ts";
import { runFacts } from "./run-facts.ts";
import { timelinesHtml } from "./timelines.ts";

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

export async function runSection(s: StoredRun, cells: CellSummary[], threshold: number, controls: string): Promise<string> {
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
