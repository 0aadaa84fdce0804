// The RAM floor of one file size: the smallest memory limit at which the
// upload passes. A bisection between a limit that fails and one that passes,
// each probe a whole test; then the two ends are run again, and where the
// upper end fails once the bracket moves up and the search goes on, until the
// upper end passes every run (near the floor an upload may pass one run and be
// OOM-killed the next: a limit counts as passing only when all its runs did).

import type { TestResult } from "../upload/result.ts";

/** What one probe (one test at one limit) came to. */
export interface FloorProbe {
  ram_mb: number;
  passed: boolean;
  /**
   * "success", the exit_reason of a failed test, "thrashing" (stopped at the
   * thrash limit: any timeout after the reference), "download REASON" with
   * --with-download, or "no_result".
   */
  outcome: string;
  /** The upload's duration, seconds. */
  upload_seconds: number;
  /** The whole probe (start-up and teardown included), seconds. */
  wall_seconds: number;
  /** A re-run of a bracket end, after the bisection. */
  repeat: boolean;
  result_file: string | null;
}

export interface FloorSearchOptions {
  minMb: number;
  maxMb: number;
  /** The bracket is narrowed until its ends are at most this far apart. */
  resolutionMb: number;
  /** Re-runs of each end of the final bracket. */
  repeat: number;
  /** Runs one test at `ramMb`; `repeat` marks a re-run of a bracket end. */
  probe: (ramMb: number, repeat: boolean) => Promise<FloorProbe>;
  /** true once the search must stop (its time is up). */
  outOfTime: () => boolean;
}

export interface FloorOutcome {
  /** The lowest limit at which every run passed; null when even --max failed. */
  lowest_passing_mb: number | null;
  /** The highest limit below it at which a run failed; null when --min passed every run. */
  highest_failing_mb: number | null;
  /** How the highest failing limit's failing run ended (oom_killed, thrashing, ...). */
  failure: string | null;
  /** false when the search stopped on its time limit: the bracket is what it had then. */
  finished: boolean;
  probes: FloorProbe[];
}

/** The kind of a floor search's run in the results log. */
export const RAM_FLOOR_KIND = "ram-floor";

/** One size's floor, as --json, floors.json and the results log (table floors) keep it. */
export interface Floor extends FloorOutcome {
  file_size: string;
  /** The upload's duration at --max: the thrash limit is --thrash-factor times it. */
  reference_upload_seconds: number;
  /** The probes' timeout after the reference, seconds: --thrash-factor times the reference, at least --min-thrash-seconds, at most --timeout. */
  thrash_limit_seconds: number;
  seconds: number;
}

/** The search's settings, as find-ram-floor stores them in its run's options (runs.options_json). */
export interface FloorSearchSettings {
  file_sizes: string[];
  min_mb: number;
  max_mb: number;
  resolution_mb: number;
  repeat: number;
  thrash_factor: number;
  /** The thrash limit's minimum, seconds (absent in runs stored before it could be set: 5). */
  min_thrash_seconds?: number;
  max_minutes: number | null;
}

/**
 * The bracket's ends as tables print them: "< MIN" when even --min passed,
 * "> MAX" when even --max failed, "none tried" when nothing failed because
 * the search stopped (out of time) before it probed below its lowest pass.
 */
export function bracketEnds(
  f: Pick<FloorOutcome, "highest_failing_mb" | "lowest_passing_mb">,
  minMb: number | null,
  maxMb: number | null,
): [highestFailing: string, lowestPassing: string] {
  // With no failure, a lowest pass above --min means --min was never probed.
  const untried = f.lowest_passing_mb !== null && minMb !== null && f.lowest_passing_mb > minMb;
  return [
    f.highest_failing_mb !== null ? String(f.highest_failing_mb) : untried ? "none tried" : `< ${minMb ?? "--min"}`,
    f.lowest_passing_mb === null ? `> ${maxMb ?? "--max"}` : String(f.lowest_passing_mb),
  ];
}

/** The probes' timeout once the reference is known: `factor` times it (whole seconds), at least `minSeconds`, at most `timeoutSec`. */
export function thrashLimitSeconds(referenceSec: number, o: { factor: number; minSeconds: number; timeoutSec: number }): number {
  return Math.min(o.timeoutSec, Math.max(o.minSeconds, Math.ceil(o.factor * referenceSec)));
}

/**
 * Whether a probe's test passed, and its outcome. After the reference every
 * probe runs under the thrash limit, whichever of the factor, its minimum or
 * --timeout set it: out of time there means "thrashing" (before it, at --max,
 * a timeout is one). With the download, its failure is the probe's
 * ("download oom_killed", "download thrashing").
 */
export function probeVerdict(
  r: Pick<TestResult, "success" | "exit_reason" | "download_exit_reason">,
  o: { afterReference: boolean; withDownload: boolean },
): { passed: boolean; outcome: string } {
  const slow = (reason: string | null) => (o.afterReference && reason === "timeout" ? "thrashing" : String(reason));
  if (!r.success) return { passed: false, outcome: slow(r.exit_reason) };
  if (o.withDownload && r.download_exit_reason !== "success") return { passed: false, outcome: `download ${slow(r.download_exit_reason)}` };
  return { passed: true, outcome: r.exit_reason };
}

export async function findFloor(o: FloorSearchOptions): Promise<FloorOutcome> {
  const probes: FloorProbe[] = [];
  const at = (mb: number) => probes.filter((p) => p.ram_mb === mb);
  const passes = (mb: number) => at(mb).length > 0 && at(mb).every((p) => p.passed);
  const fails = (mb: number) => at(mb).some((p) => !p.passed);
  const run = async (mb: number, repeat = false) => {
    const p = await o.probe(mb, repeat);
    probes.push(p);
    return p;
  };
  const outcome = (lo: number | null, hi: number | null, finished: boolean): FloorOutcome => ({
    lowest_passing_mb: hi,
    highest_failing_mb: lo,
    failure: lo === null ? null : (at(lo).find((p) => !p.passed)?.outcome ?? null),
    finished,
    probes,
  });

  if (!(await run(o.maxMb)).passed) return outcome(o.maxMb, null, true);
  if (o.outOfTime()) return outcome(null, o.maxMb, false);
  let lo = o.minMb;
  let hi = o.maxMb;
  if ((await run(lo)).passed) {
    // Even the lowest limit passed: confirm it, or search above it.
    for (let i = 0; i < o.repeat && !fails(lo); i++) {
      if (o.outOfTime()) return outcome(null, lo, false);
      await run(lo, true);
    }
    if (passes(lo)) return outcome(null, lo, true);
  }

  for (;;) {
    while (hi - lo > o.resolutionMb) {
      if (o.outOfTime()) return outcome(lo, hi, false);
      const mid = Math.round((lo + hi) / 2);
      if ((await run(mid)).passed && passes(mid)) hi = mid;
      else lo = mid;
    }
    // The upper end must pass every re-run; the lower end's re-runs say how often it fails.
    for (let i = 0; i < o.repeat && passes(hi); i++) {
      if (o.outOfTime()) return outcome(lo, hi, false);
      await run(hi, true);
    }
    if (!passes(hi)) {
      lo = hi;
      // The next limit up whose every run passed (--max passed, so there is one).
      hi = [...new Set(probes.map((p) => p.ram_mb))].filter((mb) => mb > lo && passes(mb)).sort((x, y) => x - y)[0];
      continue;
    }
    for (let i = 0; i < o.repeat; i++) {
      if (o.outOfTime()) return outcome(lo, hi, false);
      await run(lo, true);
    }
    return outcome(lo, hi, true);
  }
}
