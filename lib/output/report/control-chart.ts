// The drift sentinel's chart: each control run's figures against the tests
// of the matrix before it, with the band they are judged against.
import type { TopLevelSpec } from "vega-lite";
import { DRIFT_BASELINE, type DriftBand } from "../../upload/noise.ts";
import { frame } from "./charts.ts";

/** How a control run stands against its figure's band, in the legend's order. */
export const CONTROL_STATES = [`first ${DRIFT_BASELINE}: set the band`, "within the band", "outside the band: drift"] as const;
const CONTROL_COLORS = ["#4e79a7", "#59a14f", "#e15759"];
const CONTROL_SHAPES = ["circle", "circle", "triangle-down"];

/** One control run's figure, for the control chart. */
export interface ControlPoint {
  /** Which control run (1-based) and after how many tests of the matrix it ran. */
  control: number;
  after: number;
  value: number;
  state: (typeof CONTROL_STATES)[number];
}

/** A panel per figure (throughput, CPU seconds): the controls against the tests before them, the band shaded, drifted ones marked. */
export function controlSpec(panels: { name: string; unit: string; band: DriftBand | null; points: ControlPoint[] }[], title: string): TopLevelSpec {
  const afters = panels.flatMap((p) => p.points.map((x) => x.after));
  const x = {
    field: "after", type: "quantitative" as const, title: "After test (of the matrix)",
    scale: { domain: [Math.min(0, ...afters), Math.max(1, ...afters)], nice: false, padding: 10 }, axis: { tickMinStep: 1, format: "d" },
  };
  const state = {
    field: "state", type: "nominal" as const, title: "Control",
    scale: { domain: [...CONTROL_STATES], range: CONTROL_COLORS }, legend: { labelLimit: 320 },
  };
  // The same field and title: one legend with both colour and shape.
  const shape = { field: "state", type: "nominal" as const, title: "Control", scale: { domain: [...CONTROL_STATES], range: CONTROL_SHAPES } };
  const panel = (p: (typeof panels)[number]) => {
    const y = { type: "quantitative" as const, title: `${p.name} (${p.unit})`, scale: { zero: false, padding: 10 } };
    const band = p.band ? [{ from: p.band.from, to: p.band.to, mid: p.band.mid }] : [];
    return {
      title: { text: p.name, fontSize: 12 },
      width: 320,
      height: 200,
      layer: [
        // No x: the band spans the whole panel.
        { data: { values: band }, mark: { type: "rect" as const, color: "#4e79a7", opacity: 0.12 }, encoding: { y: { ...y, field: "from" }, y2: { field: "to" } } },
        { data: { values: band }, mark: { type: "rule" as const, color: "#4e79a7", strokeDash: [4, 3] }, encoding: { y: { ...y, field: "mid" } } },
        {
          data: { values: p.points },
          layer: [
            { mark: { type: "line" as const, color: "#999", strokeWidth: 1.5 }, encoding: { x, y: { ...y, field: "value" } } },
            {
              mark: { type: "point" as const, filled: true, size: 80 },
              encoding: {
                x,
                y: { ...y, field: "value" },
                color: state,
                shape,
                tooltip: [{ field: "control" }, { field: "after", title: "after test" }, { field: "value", title: `${p.name} (${p.unit})` }, { field: "state" }],
              },
            },
          ],
        },
      ],
    };
  };
  return { ...frame(title), hconcat: panels.map(panel), resolve: { scale: { color: "shared", shape: "shared" } } };
}
