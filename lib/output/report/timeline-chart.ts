// One test's memory timeline as a chart: the memory series against time,
// the phases shaded, the limit drawn; long timelines thinned for drawing.
import type { TopLevelSpec } from "vega-lite";
import { MiB } from "../../core/sizes.ts";
import { TIMELINE_PHASES, type TimelinePhase, type TimelineSample } from "../../upload/timeline.ts";
import { HEIGHT, WIDTH, frame } from "./charts.ts";

/** More samples than this in a timeline are thinned for drawing. */
export const TIMELINE_MAX_POINTS = 600;

const PHASE_COLORS: Record<TimelinePhase, string> = { upload: "#a0cbe8", processing: "#ffbe7d", download: "#8cd17d" };
const TIMELINE_SERIES = [
  { name: "working set", key: "working_set_bytes", color: "#222222" },
  { name: "anon", key: "anon_bytes", color: "#b07aa1" },
  { name: "file", key: "file_bytes", color: "#9c755f" },
] as const;

/** The phases as spans of time, each from its first sample to the next phase's first (the first from 0, the last to its last sample). */
export function phaseSpans(samples: TimelineSample[]): { phase: TimelinePhase; start: number; end: number }[] {
  const spans: { phase: TimelinePhase; start: number; end: number }[] = [];
  for (const s of samples) {
    const last = spans.at(-1);
    if (last && last.phase === s.phase) last.end = s.t;
    else {
      if (last) last.end = s.t;
      spans.push({ phase: s.phase, start: spans.length === 0 ? 0 : s.t, end: s.t });
    }
  }
  return spans;
}

/**
 * At most about `max` samples, for drawing: each phase's samples in runs of
 * n / max, each run reduced to its highest working set, so that every peak
 * (each phase's among them) is kept and the page stays small.
 */
export function thinTimeline(samples: TimelineSample[], max = TIMELINE_MAX_POINTS): TimelineSample[] {
  if (samples.length <= max) return samples;
  const k = Math.ceil(samples.length / max);
  const out: TimelineSample[] = [];
  let run: TimelineSample[] = [];
  const flush = () => {
    if (run.length > 0) out.push(run.reduce((a, b) => (b.working_set_bytes > a.working_set_bytes ? b : a)));
    run = [];
  };
  for (const s of samples) {
    if (run.length === k || (run.length > 0 && run[0].phase !== s.phase)) flush();
    run.push(s);
  }
  flush();
  return out;
}

/** One test's memory against time: working set (anon, file where known), the phases shaded, the limit as a labelled rule. */
export function timelineSpec(samples: TimelineSample[], limitMb: number, title: string): TopLevelSpec {
  const spans = phaseSpans(samples);
  const phases = TIMELINE_PHASES.filter((p) => spans.some((s) => s.phase === p));
  const series = TIMELINE_SERIES.filter((x) => samples.some((s) => s[x.key] !== null));
  const values = thinTimeline(samples).flatMap((s) =>
    series.filter((x) => s[x.key] !== null).map((x) => ({ t: s.t, phase: s.phase, series: x.name, mib: s[x.key]! / MiB })),
  );
  const tMax = Math.max(0.001, samples.at(-1)?.t ?? 0);
  const peak = Math.max(0, ...values.map((v) => v.mib));
  const x = { type: "quantitative" as const, title: "Seconds since the upload began", scale: { domain: [0, tMax], nice: false } };
  const y = { type: "quantitative" as const, title: "Memory (MiB)", scale: { domain: [0, Math.max(limitMb, peak) * 1.08], nice: false } };
  const limit = [{ limit: limitMb, t: tMax, label: `limit ${limitMb} MiB` }];
  return {
    ...frame(title),
    width: WIDTH,
    height: HEIGHT,
    layer: [
      {
        data: { values: spans },
        mark: { type: "rect", opacity: 0.6 },
        encoding: {
          x: { ...x, field: "start" },
          x2: { field: "end" },
          fill: { field: "phase", type: "nominal", title: "Phase", scale: { domain: phases, range: phases.map((p) => PHASE_COLORS[p]) } },
        },
      },
      {
        data: { values },
        mark: { type: "line", strokeWidth: 1.5 },
        encoding: {
          x: { ...x, field: "t" },
          y: { ...y, field: "mib" },
          stroke: { field: "series", type: "nominal", title: "Memory", scale: { domain: series.map((s) => s.name), range: series.map((s) => s.color) } },
        },
      },
      { data: { values: limit }, mark: { type: "rule", color: "#e15759", strokeDash: [6, 4], strokeWidth: 1.5 }, encoding: { y: { ...y, field: "limit" } } },
      {
        data: { values: limit },
        mark: { type: "text", align: "right", baseline: "bottom", dy: -3, color: "#e15759", fontSize: 10 },
        encoding: { x: { ...x, field: "t" }, y: { ...y, field: "limit" }, text: { field: "label" } },
      },
    ],
  };
}
