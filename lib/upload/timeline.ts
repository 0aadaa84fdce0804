// A test's memory over time: the samples its memory monitors took during the
// upload and the download, each stamped with the phase it fell in, kept as a
// small CSV beside the result (the report draws it; a spreadsheet reads it).
import { readFileSync } from "node:fs";
import type { MemoryPoint } from "../backends/types.ts";

export const TIMELINE_PHASES = ["upload", "processing", "download"] as const;
/**
 * upload: the request body on its way; processing: from the end of the
 * transfer to the response (PicoShare copying its temp file into SQLite);
 * download: the entry read back.
 */
export type TimelinePhase = (typeof TIMELINE_PHASES)[number];

export interface TimelineSample {
  /** Seconds since the upload began. */
  t: number;
  phase: TimelinePhase;
  working_set_bytes: number;
  /** Anonymous and file-backed memory where the backend can tell (a cgroup); null in a VM. */
  anon_bytes: number | null;
  file_bytes: number | null;
}

export const TIMELINE_HEADER = "t_seconds,phase,working_set_bytes,anon_bytes,file_bytes";

/** The monotonic moments (performance.now(), ms) that bound the phases. */
export interface PhaseBounds {
  uploadStart: number;
  /** The end of the transfer; the response when it is not known. */
  transferEnd: number | null;
  response: number;
  downloadStart: number | null;
}

/** Points from the monitors as samples, in time order, each with its phase. */
export function timelineOf(points: MemoryPoint[], b: PhaseBounds): TimelineSample[] {
  const transferEnd = b.transferEnd ?? b.response;
  return [...points]
    .sort((x, y) => x.at - y.at)
    .map((p) => ({
      t: Math.max(0, Math.round(p.at - b.uploadStart) / 1000),
      phase: b.downloadStart !== null && p.at >= b.downloadStart ? "download" : p.at > transferEnd ? "processing" : "upload",
      working_set_bytes: p.workingSet,
      anon_bytes: p.anon ?? null,
      file_bytes: p.file ?? null,
    }));
}

export function timelineCsv(samples: TimelineSample[]): string {
  const cell = (n: number | null) => (n === null ? "" : String(n));
  const rows = samples.map((s) => [s.t.toFixed(3), s.phase, s.working_set_bytes, cell(s.anon_bytes), cell(s.file_bytes)].join(","));
  return `${[TIMELINE_HEADER, ...rows].join("\n")}\n`;
}

/** A timeline file back as samples; throws naming the line that is not one. */
export function parseTimelineCsv(text: string): TimelineSample[] {
  const lines = text.trimEnd().split("\n");
  if (lines[0] !== TIMELINE_HEADER) throw new Error(`not a timeline: its header is not ${TIMELINE_HEADER}`);
  const num = (s: string) => (s === "" ? null : Number(s));
  return lines.slice(1).map((line, i) => {
    const [t, phase, ws, anon, file] = line.split(",");
    const s = { t: Number(t), phase: phase as TimelinePhase, working_set_bytes: Number(ws), anon_bytes: num(anon), file_bytes: num(file) };
    if (!TIMELINE_PHASES.includes(s.phase) || !Number.isFinite(s.t) || !Number.isFinite(s.working_set_bytes)) {
      throw new Error(`timeline line ${i + 2} is not a sample: ${line}`);
    }
    return s;
  });
}

export function readTimeline(path: string): TimelineSample[] {
  return parseTimelineCsv(readFileSync(path, "utf8"));
}
