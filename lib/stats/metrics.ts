// The metrics a comparison tests, each declared once: what it is read from,
// its unit and display scale, which direction is better, the words of its
// verdict, the smallest step its measurement can show, and its family.
// The primary family's verdicts are corrected together (Holm); the
// secondary ones are shown with their own label. Duration and write
// amplification are derived from tested metrics: shown, not tested again.
import type { TestResult } from "../upload/result.ts";
import { MiB } from "../core/sizes.ts";
import type { MetricSpec } from "./verdict.ts";

export type MetricFamily = "primary" | "secondary";

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

const fixed = (step: number) => () => step;
// The exact total where recorded; a record from before it: user + system.
const cpuSeconds = (r: TestResult) =>
  typeof r.cpu_seconds === "number"
    ? r.cpu_seconds
    : r.cpu_user_seconds === null || r.cpu_system_seconds === null ? null : r.cpu_user_seconds + r.cpu_system_seconds;
const nullable = (v: number | null | undefined) => (v === undefined || v === null ? null : v);

/** Every tested metric, primary family first, in the order tables show unchanged ones. */
export const COMPARED_METRICS: ComparedMetric[] = [
  {
    key: "throughput", family: "primary", name: "throughput", unit: "MiB/s", higherIsBetter: true, higher: "faster", lower: "slower",
    value: (r) => r.throughput_mbps, scale: 1, digits: 2,
    // Shown to 0.01 MiB/s, from a duration to the millisecond.
    resolution: (rs) => Math.max(0.01, ...rs.map((r) => (r.duration_seconds > 0 ? (r.throughput_mbps * 0.001) / r.duration_seconds : 0))),
  },
  {
    key: "picoshare_peak_rss", family: "primary", name: "PicoShare peak RSS", unit: "MiB", higherIsBetter: false, higher: "more memory", lower: "less memory",
    value: (r) => nullable(r.picoshare_peak_rss_bytes), scale: MiB, digits: 1, resolution: fixed(1024), // VmHWM is in kB
  },
  {
    key: "cpu_seconds", family: "primary", name: "CPU seconds", unit: "s", higherIsBetter: false, higher: "more CPU", lower: "less CPU",
    value: cpuSeconds, scale: 1, digits: 3,
    // Process ticks are 10 ms; a cgroup's account is in microseconds or nanoseconds.
    resolution: (rs) => (rs.some((r) => r.backend_settings?.cpu_source === "process ticks") ? 0.01 : 1e-6),
  },
  {
    key: "disk_write_bytes", family: "primary", name: "disk bytes written", unit: "MiB", higherIsBetter: false, higher: "writes more", lower: "writes less",
    value: (r) => nullable(r.disk_write_bytes), scale: MiB, digits: 2, resolution: fixed(4096), // counted per page dirtied
  },
  {
    key: "peak_memory", family: "secondary", name: "peak memory (working set)", unit: "MiB", higherIsBetter: false, higher: "more memory", lower: "less memory",
    value: (r) => r.peak_memory_bytes, scale: MiB, digits: 1, resolution: fixed(4096),
  },
  {
    key: "anon_peak", family: "secondary", name: "anon peak", unit: "MiB", higherIsBetter: false, higher: "more memory", lower: "less memory",
    value: (r) => nullable(r.anon_peak_bytes), scale: MiB, digits: 1, resolution: fixed(4096),
  },
  {
    key: "write_syscalls", family: "secondary", name: "write syscalls", unit: "", higherIsBetter: false, higher: "more write calls", lower: "fewer write calls",
    value: (r) => nullable(r.write_syscalls), scale: 1, digits: 0, resolution: fixed(1),
  },
  {
    key: "read_syscalls", family: "secondary", name: "read syscalls", unit: "", higherIsBetter: false, higher: "more read calls", lower: "fewer read calls",
    value: (r) => nullable(r.read_syscalls), scale: 1, digits: 0, resolution: fixed(1),
  },
  {
    key: "instructions", family: "secondary", name: "instructions", unit: "", higherIsBetter: false, higher: "more instructions", lower: "fewer instructions",
    value: (r) => nullable(r.instructions), scale: 1, digits: 0, resolution: fixed(1),
  },
  {
    key: "major_faults", family: "secondary", name: "major faults", unit: "", higherIsBetter: false, higher: "more faults", lower: "fewer faults",
    value: (r) => nullable(r.major_faults), scale: 1, digits: 0, resolution: fixed(1),
  },
  {
    key: "minor_faults", family: "secondary", name: "minor faults", unit: "", higherIsBetter: false, higher: "more faults", lower: "fewer faults",
    value: (r) => nullable(r.minor_faults), scale: 1, digits: 0, resolution: fixed(1),
  },
];

export const PRIMARY_METRICS = COMPARED_METRICS.filter((m) => m.family === "primary");

export const DERIVED_METRICS: DerivedMetric[] = [
  { key: "duration", name: "upload duration", unit: "s", value: (r) => r.duration_seconds, scale: 1, digits: 3, from: "throughput" },
  { key: "write_amplification", name: "write amplification", unit: "x", value: (r) => nullable(r.write_amplification), scale: 1, digits: 3, from: "disk bytes written" },
];

export function metricByKey(key: string): ComparedMetric {
  const m = COMPARED_METRICS.find((x) => x.key === key);
  if (!m) throw new Error(`no metric "${key}"`);
  return m;
}
