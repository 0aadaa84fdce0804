// bench-detection's lines on the counted metrics, after its table: what A/A
// flagged among the instruction counts, their MDE at 5 runs a side, what the
// instrumented twins cost (--count-instructions), and whether the fsync calls
// were the same in every run of a side.
import { median } from "simple-statistics";
import type { Comparison, SideInput } from "../stats/comparison.ts";
import { INSTRUCTION_METRICS, metricByKey } from "../stats/metrics.ts";
import { minimumDetectableEffect } from "../stats/power.ts";
import { fmtPercent } from "../stats/verdict.ts";
import type { TestResult } from "../upload/result.ts";

/** One live comparison of bench-detection, as its table reads it. */
export interface CountedCase {
  name: string;
  comparison: Comparison;
  sides: { a: SideInput; b: SideInput };
}

/** The runs a side the instruction counts' MDE target is stated at, and the target. */
export const INSTRUCTIONS_MDE_RUNS = 5;
export const INSTRUCTIONS_MDE_TARGET = 0.02;

const passed = (side: SideInput) => side.results.filter((r) => r.success);
const valuesOf = (key: string, rs: TestResult[]) => rs.map(metricByKey(key).value).filter((x): x is number => x !== null);
const seconds = (x: number) => `${x.toFixed(1)} s`;

/** The lines, after the table; none on instructions without --count-instructions. */
export function countedLines(cases: CountedCase[]): string[] {
  const [reference] = cases;
  const metric = (c: CountedCase, key: string) => c.comparison.cells[0].metrics.find((m) => m.key === key)!;
  const out: string[] = [];
  const counted = INSTRUCTION_METRICS.filter((m) => metric(reference, m.key).n_a > 0);
  if (counted.length > 0) {
    const flagged = counted.map((m) => metric(reference, m.key)).filter((m) => m.verdict === "higher" || m.verdict === "lower");
    out.push(`A/A (reference), instruction counts: ${flagged.length === 0 ? "none flagged" : `FLAGGED ${flagged.map((m) => `${m.metric} (${m.label})`).join(", ")}`}`);
    for (const spec of counted) {
      // The same spread at INSTRUCTIONS_MDE_RUNS a side, at the alpha the family tests it at here.
      const m = metric(reference, spec.key);
      const { a, b } = reference.sides;
      const [ra, rb] = [passed(a), passed(b)];
      const [va, vb] = [valuesOf(spec.key, ra), valuesOf(spec.key, rb)];
      const mde = m.median_a === null || m.median_b === null
        ? null
        : minimumDetectableEffect(va, vb, m.median_a, m.median_b, m.mde_alpha, { resolution: spec.resolution([...ra, ...rb]), runs: [INSTRUCTIONS_MDE_RUNS, INSTRUCTIONS_MDE_RUNS] });
      const met = mde?.mde !== null && mde?.mde !== undefined && mde.mde <= INSTRUCTIONS_MDE_TARGET;
      out.push(
        `MDE of ${m.metric} at n = ${INSTRUCTIONS_MDE_RUNS} (from A/A's spread, alpha ${+m.mde_alpha.toPrecision(3)}): ` +
          `${mde?.mde ? fmtPercent(mde.mde) : "none"} (target: at most ${fmtPercent(INSTRUCTIONS_MDE_TARGET)}: ${met ? "met" : "NOT met"})`,
      );
    }
    const all = cases.flatMap((c) => [...passed(c.sides.a), ...passed(c.sides.b)]);
    const twins = all.map((r) => r.instructions_settings?.seconds).filter((x): x is number => typeof x === "number");
    const tests = all.map((r) => Object.values(r.phases).reduce((s, x) => s + x, 0));
    if (twins.length > 0) {
      out.push(
        `Instrumented twins: ${twins.length}, each adding ${seconds(median(twins))} to its test (median; ${seconds(Math.min(...twins))}-${seconds(Math.max(...twins))}), ` +
          `whose own phases took ${seconds(median(tests))} (median)`,
      );
    }
  }
  // The fsync calls are a count of what the code asks for: the same in every run of a side, or a sign of timing-dependent durability.
  const sides = cases.flatMap((c) => [[`${c.name} A`, c.sides.a], [`${c.name} B`, c.sides.b]] as const);
  const seen = sides.map(([name, side]) => [name, valuesOf("upload_fsync_calls", passed(side))] as const).filter(([, v]) => v.length > 0);
  if (seen.length > 0) {
    const varied = seen.filter(([, v]) => new Set(v).size > 1);
    const each = (v: readonly number[]) => [...new Set(v)].sort((x, y) => x - y).map((x) => `${x} x${v.filter((y) => y === x).length}`).join(", ");
    out.push(
      varied.length === 0
        ? `upload fsync calls: the same in every run of each side (${seen.map(([n, v]) => `${n} ${v[0]}`).join(", ")})`
        : `upload fsync calls: NOT the same in every run of ${varied.map(([n, v]) => `${n} (${each(v)})`).join(", ")}`,
    );
  }
  return out;
}
