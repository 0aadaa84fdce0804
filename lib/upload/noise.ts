// Noise control before each test: settling the host (the test before's
// writes flushed), dropping the page cache (--drop-caches), and a short probe
// of the host (an fsync'd disk write in the work dir and a
// fixed CPU loop), stored with the result so that a slower host can be told
// from a slower PicoShare: compare warns when the two sides' probes differ,
// a matrix when the probe drifts from its own first tests.
import { createHash } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { median } from "simple-statistics";
import { UsageError } from "../core/errors.ts";
import { log, warn } from "../core/log.ts";
import { MiB } from "../core/sizes.ts";
import { $ } from "../core/shell.ts";

/** What the probe measured just before a test. */
export interface EnvironmentProbe {
  /** An 8 MiB write to the work dir's file system, fsync'd: MiB/s. */
  disk_write_mibps: number;
  /** SHA-256 over 32 MiB in memory (native code, one core): seconds. */
  cpu_seconds: number;
}

const DISK_BYTES = 8 * 1024 * 1024;
const CPU_BYTES = 32 * 1024 * 1024;
/**
 * Each figure is the fastest of this many runs: a preemption or a writeback
 * only ever adds time, so the fastest is the host's speed (measured: one run
 * of the 20 ms CPU loop ranged 0.0195-0.0253 s between a matrix's tests, and
 * a 25 % drift band around it is 5 ms, one scheduler slice).
 */
const PROBE_REPEATS = 3;

/** The fastest of PROBE_REPEATS runs of `fn`, in seconds. */
function fastestSeconds(fn: () => void): number {
  let best = Infinity;
  for (let i = 0; i < PROBE_REPEATS; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

/**
 * About 0.11 s here: an fsync'd 8 MiB write and 32 MiB hashed, each the
 * fastest of PROBE_REPEATS. A sync first: the write measures the disk, not
 * the writeback of what the test before left dirty (measured: 175 against
 * 570-720 MiB/s right after a 64M test without it).
 */
export function probeEnvironment(workDir: string): EnvironmentProbe {
  $({ nothrow: true }).sync`sync`;
  const chunk = Buffer.alloc(1024 * 1024, 0x5a);
  const path = join(workDir, `.probe-${process.pid}`);
  let diskSeconds: number;
  try {
    diskSeconds = fastestSeconds(() => {
      const fd = openSync(path, "w", 0o600);
      try {
        for (let done = 0; done < DISK_BYTES; done += chunk.length) writeSync(fd, chunk);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    });
  } finally {
    rmSync(path, { force: true });
  }
  const cpuSeconds = fastestSeconds(() => {
    const h = createHash("sha256");
    for (let done = 0; done < CPU_BYTES; done += chunk.length) h.update(chunk);
    h.digest();
  });
  return {
    disk_write_mibps: Math.round((DISK_BYTES / 1048576 / Math.max(diskSeconds, 1e-6)) * 10) / 10,
    cpu_seconds: Math.round(cpuSeconds * 1e4) / 1e4,
  };
}

/** Refuses --drop-caches where it cannot work, before any test runs. */
export function checkDropCaches(): void {
  if (process.getuid?.() !== 0) {
    throw new UsageError("--drop-caches needs root (it writes /proc/sys/vm/drop_caches): run as root, or leave it out");
  }
}

/** sync, then drop the page cache, dentries and inodes: every test starts with the same cold cache. Root only. */
export function dropCaches(): void {
  checkDropCaches();
  $({ nothrow: true }).sync`sync`;
  writeFileSync("/proc/sys/vm/drop_caches", "3\n");
}

/** What settling the host before a test found and cost. */
export interface Settled {
  /** From the first `sync` until the kernel's dirty and writeback pages were near zero (or the wait gave up): seconds. */
  settle_seconds: number;
  /** Dirty + Writeback (/proc/meminfo) when settling began: what the test before (or another process) left to write; null without /proc. */
  settle_dirty_bytes: number | null;
}

/**
 * Settled: Dirty + Writeback at most this. As much as the probe writes
 * itself (6 ms of this disk); a few MiB of other processes' writes (logs)
 * are always about, and waiting for less would wait for them.
 */
export const SETTLE_THRESHOLD_BYTES = 8 * MiB;
/**
 * `sync` waits for everything dirty when it is called (here 0.15 s after a
 * 500 MiB write, 0.3 s after 1 GiB); what is still above the threshold
 * after that is another process writing as fast as it is flushed, which
 * waiting will not end: give up after this long (the test goes on, with a warning).
 */
export const SETTLE_MAX_SECONDS = 10;
/** A wait this long is said in the log (a slow disk, or a large residue); shorter ones are not. */
export const SETTLE_LOG_SECONDS = 1;

/** The kernel's Dirty + Writeback pages, bytes; null where /proc/meminfo cannot be read. */
export function dirtyBytes(): number | null {
  let text: string;
  try {
    text = readFileSync("/proc/meminfo", "utf8");
  } catch {
    return null;
  }
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, "m").exec(text)?.[1] ?? NaN);
  const sum = kib("Dirty") + kib("Writeback");
  return Number.isFinite(sum) ? sum * 1024 : null;
}

/**
 * Flushes what the test before left to write, so that this test (and its
 * probe) does not pay for it: `sync`, then again until Dirty + Writeback are
 * below SETTLE_THRESHOLD_BYTES or SETTLE_MAX_SECONDS have passed. Settles
 * this host: with a VM backend too, whose disk image is a file on it.
 */
export async function settleHost(): Promise<Settled> {
  const t0 = performance.now();
  const seconds = () => (performance.now() - t0) / 1000;
  const found = dirtyBytes();
  let left = found;
  for (;;) {
    await $({ nothrow: true })`sync`;
    left = dirtyBytes();
    if (left === null || left <= SETTLE_THRESHOLD_BYTES || seconds() >= SETTLE_MAX_SECONDS) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const settled: Settled = { settle_seconds: Math.round(seconds() * 1000) / 1000, settle_dirty_bytes: found };
  const mib = (b: number | null) => ((b ?? 0) / MiB).toFixed(1);
  if (left !== null && left > SETTLE_THRESHOLD_BYTES) {
    warn(
      `the host did not settle before the test: ${mib(left)} MiB still dirty or being written back after ${settled.settle_seconds} s ` +
        "(another process is writing); the test goes on, and may pay for that writeback",
    );
  } else if (settled.settle_seconds >= SETTLE_LOG_SECONDS) {
    log(`Host settled before the test: ${mib(found)} MiB of dirty pages written back in ${settled.settle_seconds} s`);
  }
  return settled;
}

/** A figure watched for drift: where it is read from, and which way is slower. */
export interface DriftFigure<T> {
  key: string;
  name: string;
  unit: string;
  slowerIsHigher: boolean;
  value: (x: T) => number | null;
}

/** How each probe figure reads: which way is slower. */
const PROBE_FIGURES: (DriftFigure<EnvironmentProbe> & { key: keyof EnvironmentProbe })[] = [
  { key: "disk_write_mibps", name: "disk write (fsync'd)", unit: "MiB/s", slowerIsHigher: false, value: (p) => p.disk_write_mibps },
  { key: "cpu_seconds", name: "CPU loop", unit: "s", slowerIsHigher: true, value: (p) => p.cpu_seconds },
];

/** Fewest probes of a matrix's first tests before drift is judged. */
export const DRIFT_BASELINE = 3;
/** The early spread is widened to at least this fraction of its median before a value counts as drift. */
export const DRIFT_MIN_BAND = 0.25;

function range(values: number[]): { lo: number; hi: number; mid: number } {
  return { lo: Math.min(...values), hi: Math.max(...values), mid: median(values) };
}

/** The early readings' range and median, and the band a later reading must stay within not to count as drift. */
export interface DriftBand {
  lo: number;
  hi: number;
  mid: number;
  from: number;
  to: number;
}

/** The early spread, widened on each side by half its width or DRIFT_MIN_BAND of its median, whichever is more. */
export function driftBand(early: number[]): DriftBand {
  const r = range(early);
  const pad = Math.max((r.hi - r.lo) / 2, DRIFT_MIN_BAND * r.mid);
  return { ...r, from: r.lo - pad, to: r.hi + pad };
}

export function outsideBand(b: DriftBand, v: number): boolean {
  return v < b.from || v > b.to;
}

/**
 * Where the two sides' probes differ beyond their spread: the ranges do not
 * overlap and the medians are more than 20 % apart. One sentence per figure.
 */
export function probeDifferences(a: EnvironmentProbe[], b: EnvironmentProbe[]): string[] {
  if (a.length === 0 || b.length === 0) return [];
  const out: string[] = [];
  for (const f of PROBE_FIGURES) {
    const ra = range(a.map((p) => p[f.key]));
    const rb = range(b.map((p) => p[f.key]));
    const apart = ra.hi < rb.lo || rb.hi < ra.lo;
    if (apart && Math.abs(rb.mid / ra.mid - 1) > 0.2) {
      out.push(`${f.name} ${ra.mid} ${f.unit} (${ra.lo}-${ra.hi}) on A, ${rb.mid} ${f.unit} (${rb.lo}-${rb.hi}) on B`);
    }
  }
  return out;
}

/**
 * Watches a series (a matrix's probes; a control cell's figures): the first
 * DRIFT_BASELINE readings set the early spread; a later one outside it
 * (widened to DRIFT_MIN_BAND of its median) gives one warning per figure,
 * the first time.
 */
export class DriftWatch<T = EnvironmentProbe> {
  private readonly early: T[] = [];
  private readonly warned = new Set<string>();

  constructor(
    private readonly figures: DriftFigure<T>[] = PROBE_FIGURES as unknown as DriftFigure<T>[],
    private readonly what = "the environment probe",
    /** What the first readings were, for the warning ("tests", "control runs"). */
    private readonly readings = "tests",
  ) {}

  /** The warning for this reading, or null. */
  add(p: T | null | undefined, what: string): string | null {
    if (!p) return null;
    if (this.early.length < DRIFT_BASELINE) {
      this.early.push(p);
      return null;
    }
    const out: string[] = [];
    for (const f of this.figures) {
      if (this.warned.has(f.key)) continue;
      const r = this.band(f.key);
      const v = f.value(p);
      if (r === null || v === null) continue;
      if (outsideBand(r, v)) {
        this.warned.add(f.key);
        const slower = (v > r.mid) === f.slowerIsHigher;
        out.push(
          `${f.name} ${v} ${f.unit} at ${what}, against ${r.lo}-${r.hi} ${f.unit} in the first ${DRIFT_BASELINE} ${this.readings}: ` +
            `the host got ${slower ? "slower" : "faster"}, and later cells are not measured on the same host as earlier ones`,
        );
      }
    }
    return out.length > 0 ? `${this.what} drifted: ${out.join("; ")}` : null;
  }

  /** The band of figure `key` that later readings are judged against; null until DRIFT_BASELINE readings (or none of them has the figure). */
  band(key: string): DriftBand | null {
    const f = this.figures.find((x) => x.key === key);
    if (!f || this.early.length < DRIFT_BASELINE) return null;
    const early = this.early.map(f.value).filter((x): x is number => x !== null);
    return early.length === 0 ? null : driftBand(early);
  }
}
