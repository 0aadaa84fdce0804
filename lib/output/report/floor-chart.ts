// The RAM floor chart: each build's floor against file size.
import type { TopLevelSpec } from "vega-lite";
import { MiB } from "../../core/sizes.ts";
import { HEIGHT, WIDTH, frame, sizeAxis } from "./charts.ts";

/** One build's floor at one file size, for the floor chart. */
export interface FloorPoint {
  build: string;
  size: string;
  file_size_bytes: number;
  lowest_passing_mb: number | null;
  highest_failing_mb: number | null;
  failure: string | null;
  finished: boolean;
  probes: number;
}

/** The RAM floor (lowest passing limit) against file size, one line per build, each point with its bracket down to the highest failing limit. */
export function floorSpec(points: FloorPoint[], builds: string[], title: string): TopLevelSpec {
  // Several builds at one size would hide each other's brackets: each is nudged a few per cent along the (log) size axis.
  const values = points
    .filter((p) => p.lowest_passing_mb !== null)
    .map((p) => ({
      ...p,
      size_mib: (p.file_size_bytes / MiB) * 1.07 ** (builds.indexOf(p.build) - (builds.length - 1) / 2),
      search: p.finished ? "finished" : "unfinished (time limit)",
    }));
  const x = sizeAxis(points.map((p) => p.file_size_bytes / MiB));
  const color = {
    field: "build",
    type: "nominal" as const,
    title: "Build",
    scale: { domain: builds, scheme: "category10" },
    legend: { orient: "bottom" as const, direction: "vertical" as const, labelLimit: 560 },
  };
  const y = { type: "quantitative" as const, title: "RAM floor (MiB)", scale: { zero: true } };
  const point = (finished: boolean) => ({
    transform: [{ filter: finished ? "datum.finished" : "!datum.finished" }],
    mark: { type: "point" as const, filled: finished, size: 70, strokeWidth: 2 },
    encoding: {
      y: { ...y, field: "lowest_passing_mb" },
      tooltip: [
        { field: "build" }, { field: "size" }, { field: "lowest_passing_mb", title: "lowest passing MiB" },
        { field: "highest_failing_mb", title: "highest failing MiB" }, { field: "failure" }, { field: "probes" }, { field: "search" },
      ],
    },
  });
  return {
    ...frame(title),
    width: WIDTH,
    height: HEIGHT,
    data: { values },
    encoding: { x, color },
    layer: [
      {
        transform: [{ filter: "datum.highest_failing_mb != null" }],
        mark: { type: "rule", strokeWidth: 3, opacity: 0.55 },
        encoding: { y: { ...y, field: "highest_failing_mb" }, y2: { field: "lowest_passing_mb" } },
      },
      { mark: { type: "line", strokeWidth: 2 }, encoding: { y: { ...y, field: "lowest_passing_mb" } } },
      point(true),
      point(false),
    ],
  };
}
