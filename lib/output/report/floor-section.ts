// The RAM floors of ram-floor runs: floor against file size, one line per
// build, the builds side by side per size; and each such run's own section
// with its search's settings and probes.
import type { FloorRow } from "../../store/results-db.ts";
import { formatDuration } from "../../core/durations.ts";
import { sideOf, type StoredRun } from "../../store/stored-runs.ts";
import { RAM_FLOOR_KIND, bracketEnds, type Floor, type FloorSearchSettings } from "../../floor/search.ts";
import { chartHtml, factsHtml, notesHtml, scrollHtml, tableHtml } from "./html.ts";
import { CAPTIONS, renderSvg } from "./charts.ts";
import { floorSpec, type FloorPoint } from "./floor-chart.ts";
import { runFacts } from "./run-facts.ts";

export function isFloorRun(s: StoredRun): boolean {
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
export async function floorSection(runs: StoredRun[]): Promise<string> {
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
export function floorRunSection(s: StoredRun): string {
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
