// A comparison as JSON: the whole Comparison record, with a format version
// so that scripts reading it can tell when its shape changes.
import type { Comparison } from "../../stats/comparison.ts";
import type { GateResult } from "../../stats/gate.ts";

// 2: every metric per cell (cells[].metrics, cells[].derived), Holm-adjusted
// p-values and the minimum detectable effect; "same" labels name that effect.
export const COMPARISON_JSON_VERSION = 2;

/** With --fail-on, the gate's verdict as `gate` (breaches, and what the runs could not see). */
export function comparisonJson(c: Comparison, gate: GateResult | null = null): string {
  return `${JSON.stringify({ format: "picoshare-perf-comparison", version: COMPARISON_JSON_VERSION, ...(gate ? { gate } : {}), ...c }, null, 2)}\n`;
}
