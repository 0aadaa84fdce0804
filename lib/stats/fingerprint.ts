// The environment a run was measured in, and which differences between two
// environments make their measurements hard to compare. Built from what every
// run and result already stores: the host facts (lib/upload/host.ts), the backend
// and the backend's settings.
import type { HostFacts } from "../upload/host.ts";
import type { TestResult } from "../upload/result.ts";
import type { GoRuntimeEnv } from "../upload/provenance.ts";
import { formatBytes } from "../core/sizes.ts";

type Setting = string | number | boolean | null;

export interface Fingerprint {
  /** Host facts as stored; runs recorded before a fact existed lack it. */
  host: Partial<HostFacts>;
  backend: string;
  /**
   * The backend's settings that describe the environment, not one test:
   * names and paths made per test, and the memory limit (the cell's own
   * parameter) are left out. "(varies)" where the run's results disagree.
   */
  backend_settings: Record<string, Setting>;
  /**
   * What else could explain a change that is not PicoShare's code, from the
   * results (PROVENANCE): the cgroup version, the harness's commit and
   * whether it was modified, the Go runtime variables, PicoShare's Go release,
   * the requests made of each kind.
   * Absent from runs recorded before these existed.
   */
  provenance?: Record<string, Setting>;
}

/** A Go runtime variable as recorded: its value, "unset", or null when the result does not say (older records). */
const goVar = (r: Partial<TestResult>, name: keyof GoRuntimeEnv): Setting =>
  r.go_runtime_env ? (r.go_runtime_env[name] ?? "unset") : null;

/** The provenance facts a fingerprint carries, how each is read from a result, and why a difference matters. */
const PROVENANCE: [name: string, value: (r: Partial<TestResult>) => Setting | undefined, why: string][] = [
  ["cgroup_version", (r) => r.cgroup_version, "another cgroup version (other memory accounting)"],
  ["harness_commit", (r) => r.harness_commit, "another version of the harness (its measurement code)"],
  ["harness_dirty", (r) => r.harness_dirty, "a modified harness on one side"],
  ["GOGC", (r) => goVar(r, "GOGC"), "another Go GC target"],
  ["GOMEMLIMIT", (r) => goVar(r, "GOMEMLIMIT"), "another Go memory limit"],
  ["GODEBUG", (r) => goVar(r, "GODEBUG"), "other Go runtime settings"],
  ["GOMAXPROCS", (r) => goVar(r, "GOMAXPROCS"), "another number of Go scheduler threads"],
  ["picoshare_go_version", (r) => r.picoshare_go_version, "PicoShare built with another Go release (the compiler, not PicoShare's code)"],
  // Null where the phase did not run (--requests 0, or it failed).
  ["requests_per_kind", (r) => r.requests_per_kind, "another --requests K: the request medians over other numbers of requests"],
];

/**
 * Settings that name one test's environment (a cgroup path, a work dir, a VM
 * folder, name or address, a port), measure one test (a boot time), say how
 * one test got its environment (a reused VM), or are the cell's own
 * parameter (the memory limit, a VM's memory size): they differ between any
 * two tests and say nothing about the environment.
 */
const PER_TEST_SETTING =
  /(^|_)(path|dir|folder|id|pid|port|name|ip|address|host|url|seconds|reused)$|^memory_limit|_memory_(mib|mb|bytes)$/;

export function stableSettings(settings: Record<string, Setting>): Record<string, Setting> {
  const out: Record<string, Setting> = {};
  for (const key of Object.keys(settings).sort()) if (!PER_TEST_SETTING.test(key)) out[key] = settings[key];
  return out;
}

export const VARIES = "(varies)";

/**
 * A run's fingerprint: the host facts taken when it started, its backend, and
 * the stable backend settings of its results.
 */
export function runFingerprint(host: Partial<HostFacts>, backend: string, results: (Pick<TestResult, "backend_settings"> & Partial<TestResult>)[]): Fingerprint {
  const provenance = (r: Partial<TestResult>) => {
    const out: Record<string, Setting> = {};
    for (const [name, value] of PROVENANCE) {
      const v = value(r);
      if (v !== undefined) out[name] = v;
    }
    return out;
  };
  return {
    host,
    backend,
    backend_settings: agreed(results.map((r) => stableSettings(r.backend_settings ?? {}))),
    provenance: agreed(results.map(provenance)),
  };
}

/** Each key's value where all records agree, VARIES where they do not. */
function agreed(records: Record<string, Setting>[]): Record<string, Setting> {
  const out: Record<string, Setting> = {};
  const seen = new Set<string>();
  records.forEach((s, i) => {
    for (const key of new Set([...Object.keys(s), ...seen])) {
      if (i === 0) out[key] = s[key];
      else if (out[key] !== VARIES && out[key] !== (key in s ? s[key] : undefined)) out[key] = VARIES;
      seen.add(key);
    }
  });
  return out;
}

export interface FingerprintDifference {
  /** The fact that differs, e.g. "cpu_governor" or "backend_settings.cgroup_version". */
  field: string;
  a: string;
  b: string;
  /** Why it matters, in a few words. */
  why: string;
}

// When free memory and load count as "very different". They change by the
// minute on any host, so only a gap large enough to change a measurement is
// named: one side with less than half the other's available memory (page
// cache for the test file and the database shrinks), or a 1-minute load
// average per CPU more than 0.5 apart (other work competed for the CPUs).
export const AVAILABLE_MEMORY_RATIO = 0.5;
export const LOAD_PER_CPU_GAP = 0.5;
/** Total memory differing by more than this fraction: another machine or VM size. */
export const TOTAL_MEMORY_TOLERANCE = 0.1;

function show(v: unknown): string {
  if (v === undefined) return "(not recorded)";
  if (v === null) return "unknown";
  return String(v);
}

/** Exact facts: any difference is named. Missing on a side (older record) or unknown: not named. */
const EXACT_FACTS: [keyof HostFacts, string][] = [
  ["hostname", "another machine"],
  ["cpu_model", "another CPU"],
  ["cpu_count", "another number of CPUs"],
  ["cpu_governor", "CPU frequency scaling policy"],
  ["cpu_max_mhz", "CPU clock limit"],
  ["cpu_boost", "turbo / boost clocks"],
  ["kernel", "another kernel"],
  ["data_disk_rotational", "spinning disk against solid state"],
  ["data_dir_filesystem", "another file system for the data dir"],
];

function known(v: unknown): boolean {
  return v !== undefined && v !== null;
}

/**
 * The differences between two fingerprints that can change a measurement.
 * Ignored: facts unknown or not recorded on either side; free memory and
 * load unless very different (see AVAILABLE_MEMORY_RATIO, LOAD_PER_CPU_GAP).
 */
export function compareFingerprints(a: Fingerprint, b: Fingerprint): FingerprintDifference[] {
  const diffs: FingerprintDifference[] = [];
  if (a.backend !== b.backend) diffs.push({ field: "backend", a: a.backend, b: b.backend, why: "another test environment" });
  for (const [field, why] of EXACT_FACTS) {
    const va = a.host[field];
    const vb = b.host[field];
    if (known(va) && known(vb) && va !== vb) diffs.push({ field, a: show(va), b: show(vb), why });
  }
  const ta = a.host.memory_total_bytes;
  const tb = b.host.memory_total_bytes;
  if (ta && tb && Math.abs(ta - tb) > TOTAL_MEMORY_TOLERANCE * Math.max(ta, tb)) {
    diffs.push({ field: "memory_total_bytes", a: formatBytes(ta), b: formatBytes(tb), why: "another amount of RAM" });
  }
  const fa = a.host.memory_available_bytes;
  const fb = b.host.memory_available_bytes;
  if (fa !== undefined && fb !== undefined && Math.min(fa, fb) < AVAILABLE_MEMORY_RATIO * Math.max(fa, fb)) {
    diffs.push({
      field: "memory_available_bytes", a: formatBytes(fa), b: formatBytes(fb),
      why: "far less free memory on one side (less page cache)",
    });
  }
  const la = a.host.load_average_1m;
  const lb = b.host.load_average_1m;
  if (la !== undefined && lb !== undefined) {
    const gap = Math.abs(la / (a.host.cpu_count || 1) - lb / (b.host.cpu_count || 1));
    if (gap > LOAD_PER_CPU_GAP) diffs.push({ field: "load_average_1m", a: String(la), b: String(lb), why: "other work competing for the CPUs" });
  }
  for (const key of [...new Set([...Object.keys(a.backend_settings), ...Object.keys(b.backend_settings)])].sort()) {
    if (a.backend !== b.backend) break; // settings of different backends are not comparable one by one
    const va = a.backend_settings[key];
    const vb = b.backend_settings[key];
    if (va === undefined || vb === undefined || va === vb) continue;
    diffs.push({ field: `backend_settings.${key}`, a: show(va), b: show(vb), why: "another backend setting" });
  }
  for (const [name, , why] of PROVENANCE) {
    const va = a.provenance?.[name];
    const vb = b.provenance?.[name];
    // Unknown on a side (an older record, a build without Go to read it): not named.
    if (!known(va) || !known(vb) || va === vb) continue;
    diffs.push({ field: name, a: show(va), b: show(vb), why });
  }
  return diffs;
}

/** "cpu_governor: powersave vs performance (CPU frequency scaling policy); ..." */
export function describeDifferences(diffs: FingerprintDifference[]): string {
  return diffs.map((d) => `${d.field}: ${d.a} vs ${d.b} (${d.why})`).join("; ");
}
