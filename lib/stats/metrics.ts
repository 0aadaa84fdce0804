// The metrics a comparison tests, from the declared result fields
// (lib/result/declared/): what each is read from, its unit and display
// scale, which direction is better, the words of its verdict, the smallest
// step its measurement can show, and its family.
// The primary family's verdicts are corrected together (Holm), and so are
// the instruction counts' (a family of their own: docs/methodology.md says
// why); the secondary ones are shown with their own label. Duration and write
// amplification are derived from tested metrics: shown, not tested again.
import type { TestResult } from "../upload/result.ts";
import type { MetricSpec } from "./verdict.ts";
import { FIELDS } from "../result/fields.ts";
import type { Field, MetricFamily } from "../result/field.ts";

export type { MetricFamily };

export interface ComparedMetric extends MetricSpec {
  /** The metric's key in JSON (cells[].metrics[].key). */
  key: string;
  family: MetricFamily;
  /** Its value in one successful result, in raw units (bytes, seconds, MiB/s, counts); null when not measured. */
  value: (r: TestResult) => number | null;
  /** Raw value / scale = the value shown in `unit`. */
  scale: number;
  digits: number;
  /** The smallest step of the measurement in raw units, for the results given: the MDE never goes below it. */
  resolution: (results: TestResult[]) => number;
  /** A wall-clock figure: paired by round in a live comparison. */
  wallClock?: boolean;
}

/** A figure shown beside the tested ones, derived from them. */
export interface DerivedMetric {
  key: string;
  name: string;
  unit: string;
  value: (r: TestResult) => number | null;
  scale: number;
  digits: number;
  /** What it is derived from, for the table. */
  from: string;
}

const declared = FIELDS as readonly Field[];
const own = (name: string) => (r: TestResult) => {
  const v = (r as Record<string, unknown>)[name];
  return typeof v === "number" ? v : null;
};

/** The families whose metrics are corrected together in a cell (Holm); any other metric is tested on its own. */
export const CORRECTED_FAMILIES = ["primary", "instructions"] as const satisfies readonly MetricFamily[];

/** Whether a metric of `family` is corrected with the rest of its family. */
export function isCorrected(family: MetricFamily | null): boolean {
  return (CORRECTED_FAMILIES as readonly (MetricFamily | null)[]).includes(family);
}

/** Every tested metric, primary family first, then the secondary metrics, then the instruction counts, each in the declared fields' order (the order tables show unchanged ones). */
export const COMPARED_METRICS: ComparedMetric[] = (["primary", "secondary", "instructions"] as const).flatMap((family) =>
  declared.flatMap((f): ComparedMetric[] =>
    f.compare?.family === family ? [{ ...f.compare, value: f.compare.value ?? own(f.name), resolution: f.compare.resolution }] : [],
  ),
);

export const familyMetrics = (family: MetricFamily): ComparedMetric[] => COMPARED_METRICS.filter((m) => m.family === family);

export const PRIMARY_METRICS = familyMetrics("primary");
export const INSTRUCTION_METRICS = familyMetrics("instructions");

/** The wall-clock metrics: paired by round in a live comparison. */
export const WALL_CLOCK_METRICS = COMPARED_METRICS.filter((m) => m.wallClock);

export const DERIVED_METRICS: DerivedMetric[] = declared.flatMap((f) => (f.shown ? [{ ...f.shown, value: own(f.name) }] : []));

export function metricByKey(key: string): ComparedMetric {
  const m = COMPARED_METRICS.find((x) => x.key === key);
  if (!m) throw new Error(`no metric "${key}"`);
  return m;
}
