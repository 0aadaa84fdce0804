// Synthetic test results for the statistics, comparison and report tests:
// a complete TestResult with the given measurements, everything else fixed.
import type { HostFacts } from "../../lib/upload/host.ts";
import { NO_VALUES, type TestResult } from "../../lib/upload/result.ts";
import { MiB, parseSize } from "../../lib/core/sizes.ts";
import { ResultsDb } from "../../lib/store/results-db.ts";
import { join } from "node:path";
import { runScript } from "./run.ts";

export const HOST: HostFacts = {
  hostname: "bench-1",
  kernel: "6.1.0-18-amd64",
  cpu_model: "AMD EPYC 7B13",
  cpu_count: 4,
  cpu_governor: "performance",
  memory_total_bytes: 16 * 1024 * MiB,
  memory_available_bytes: 14 * 1024 * MiB,
  load_average_1m: 0.2,
  data_disk_rotational: false,
  data_dir_filesystem: "ext4",
  cpu_max_mhz: 3000,
  cpu_boost: true,
};

export interface Fake {
  ram?: number;
  size?: string;
  throughput?: number;
  peakMiB?: number;
  reason?: TestResult["exit_reason"];
  host?: Partial<HostFacts>;
  settings?: TestResult["backend_settings"];
  runId?: number | null;
  samples?: number;
  concurrency?: number;
}

export function fakeResult(f: Fake = {}): TestResult {
  const size = parseSize(f.size ?? "100M");
  const fileMiB = size.bytes / MiB;
  const reason = f.reason ?? "success";
  const success = reason === "success";
  const throughput = success ? (f.throughput ?? 100) : 0;
  const peak = Math.round((f.peakMiB ?? 20) * MiB);
  return {
    // Every field a record may lack, then the ones this fixture sets.
    ...NO_VALUES,
    concurrency: f.concurrency ?? 1,
    timestamp: "2026-01-29T12:00:00+00:00",
    ram_mb: f.ram ?? 512,
    file_size: size.label,
    file_size_mb: fileMiB,
    duration_seconds: success ? Number((fileMiB / throughput).toFixed(2)) : 1,
    throughput_mbps: throughput,
    initial_memory_bytes: 5 * MiB,
    peak_memory_bytes: peak,
    peak_memory_mb: Math.round(peak / MiB),
    http_status: success ? "200" : "000",
    exit_reason: reason,
    success,
    backend: "local",
    file_size_bytes: size.bytes,
    picoshare_version: "v1.5.4",
    picoshare_sha256: "ab".repeat(32),
    kernel_peak_memory_bytes: peak,
    picoshare_peak_rss_bytes: peak,
    harness_peak_rss_bytes: 60 * MiB,
    memory_samples: f.samples ?? 100,
    memory_sample_interval_ms: 50,
    oom_kills: reason === "oom_killed" ? 1 : 0,
    entry_id: success ? "abcdefghij" : null,
    verified: null,
    error: success ? null : `failed: ${reason}`,
    phases: { setup: 0.01, readiness: 0.05, auth: 0.01, upload: 1, download: 0, verify: 0.01, teardown: 0.01 },
    backend_settings: f.settings ?? { cgroup_version: "2", cgroup_path: `/sys/fs/cgroup/x-${Math.random()}`, memory_limit_bytes: (f.ram ?? 512) * MiB, swap: "excluded", work_dir: "/tmp" },
    host: { ...HOST, ...f.host },
    log_file: null,
    run_id: f.runId ?? null,
    iteration: 1,
    warmup: false,
  };
}

/** One fake result per throughput value (all successful), for one cell. */
export function fakeCell(throughputs: number[], f: Omit<Fake, "throughput"> = {}): TestResult[] {
  return throughputs.map((t) => fakeResult({ ...f, throughput: t }));
}

/** One shard of a split matrix: which of how many, the host it ran on, and its cells' throughputs. */
export interface FakeShard {
  index: number;
  count: number;
  hostname: string;
  cells: { ram: number; size: string; throughputs: number[] }[];
}

/**
 * A shard's results log as run-test-matrix --shard I/N leaves one on its
 * host: a matrix run whose options name the shard (as the matrix sets them)
 * and whose run and results carry that host's facts. Shards of one split
 * share every other option, so that results merge takes them.
 */
export function writeShardLog(path: string, s: FakeShard): void {
  const host = { ...HOST, hostname: s.hostname };
  const db = ResultsDb.open(path);
  try {
    const run = db.startRun({
      kind: "matrix", startedAt: "2026-01-29T12:00:00+00:00", backend: "local", resultsDir: null, picoshareVersion: "v1.5.4", picoshareSha256: "ab".repeat(32),
      options: { memory_limits: [512, 256], file_sizes: ["100M"], iterations: 5, warmup: 0, shard: { index: s.index, count: s.count, source: `--shard ${s.index}/${s.count}` } },
      host,
    });
    for (const c of s.cells) for (const t of c.throughputs) db.addResult(fakeResult({ ram: c.ram, size: c.size, throughput: t, runId: run, host }), null);
    db.setRunStatus(run, "complete", "2026-01-29T12:10:00+00:00");
  } finally {
    db.close();
  }
}

/** Each shard's log written as `${name}-I.db` in `dir`, then merged by `results merge` into `into`: the merged run's id. */
export async function mergedRun(dir: string, name: string, into: string, shards: FakeShard[]): Promise<number> {
  const logs = shards.map((s) => join(dir, `${name}-${s.index}.db`));
  shards.forEach((s, i) => writeShardLog(logs[i], s));
  const ran = await runScript("results", ["merge", ...logs, "--into", into]);
  if (ran.code !== 0) throw new Error(`results merge: ${ran.stderr}`);
  return Number(ran.stdout.trim());
}
