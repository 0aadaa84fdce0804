// A run's memory timelines: per cell the test that stands for it (the median
// successful run, else the last failed one), its timeline read back and drawn,
// or the reason there is none.
import { cellName } from "../../stats/cells.ts";
import { iterationOf, type TestResult } from "../../upload/result.ts";
import { displayPath } from "../../core/paths.ts";
import { findResultFile, type StoredRun } from "../../store/stored-runs.ts";
import { readTimeline, type TimelineSample } from "../../upload/timeline.ts";
import { chartHtml, notesHtml } from "./html.ts";
import { CAPTIONS, renderSvg } from "./charts.ts";
import { timelineSpec } from "./timeline-chart.ts";
import { cellGroups } from "./run-cells.ts";

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
export async function timelinesHtml(s: StoredRun, name: string): Promise<string> {
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
