// run-test against a real PicoShare in a real cgroup, with small files.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { Database } from "bun:sqlite";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import { runScript, startScript, uploadStarted, waitFor } from "./helpers/run.ts";
import { alive, cgroupPids, testCgroups } from "./helpers/cgroups.ts";
import { cgroupMounts } from "../lib/backends/cgroup-place.ts";
import { instructionsUnavailable } from "../lib/upload/perf-events.ts";
import { readTimeline } from "../lib/upload/timeline.ts";
import { BUN } from "../lib/core/paths.ts";
import { $ } from "../lib/core/shell.ts";

setDefaultTimeout(120_000);

let root: string;
let files: string;
let picoshare: string;

beforeAll(async () => {
  picoshare = (await resolvePicoShare()).path;
  root = mkdtempSync(join(tmpdir(), "run-test-spec-"));
  chmodSync(root, 0o755); // readable by the unprivileged user of the no-cgroup test
  files = join(root, "files");
  for (const [label, bytes] of [["8M", 8 * MiB], ["64M", 64 * MiB], ["256M", 256 * MiB]] as const) {
    mkdirSync(files, { recursive: true });
    await writeTestFile(testFilePath(label, files), bytes);
  }
}, 600_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A fresh results dir and work dir per test, so each checks only its own output. */
function dirs() {
  const base = mkdtempSync(join(root, "case-"));
  const results = join(base, "results");
  const work = join(base, "work");
  mkdirSync(work);
  return { results, work, base };
}

function args(d: { results: string; work: string }, ...extra: string[]): string[] {
  return ["--test-files", files, "--results-dir", d.results, "--work-dir", d.work, "--picoshare", picoshare, ...extra];
}

function readResult(path: string) {
  return JSON.parse(readFileSync(path.trim(), "utf8"));
}

const ORIGINAL_FIELDS: Record<string, "string" | "number" | "boolean"> = {
  timestamp: "string",
  ram_mb: "number",
  file_size: "string",
  file_size_mb: "number",
  duration_seconds: "number",
  throughput_mbps: "number",
  initial_memory_bytes: "number",
  peak_memory_bytes: "number",
  peak_memory_mb: "number",
  http_status: "string",
  exit_reason: "string",
  success: "boolean",
};

describe("a passing upload", () => {
  test("exit 0, the path alone on stdout, the original's fields, a verified entry, a database row", async () => {
    const d = dirs();
    const ran = await runScript("run-test", args(d, "--ram", "256", "--file-size", "8M", "--verify"));
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    const lines = ran.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/result-256MB-8M-\d{8}-\d{6}\.json$/);
    const r = readResult(lines[0]);
    for (const [field, type] of Object.entries(ORIGINAL_FIELDS)) expect(typeof r[field]).toBe(type);
    expect(r.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/);
    expect(r).toMatchObject({ ram_mb: 256, file_size: "8M", file_size_mb: 8, http_status: "200", exit_reason: "success", success: true, verified: true, backend: "local" });
    expect(r.initial_memory_bytes).toBeGreaterThan(0);
    expect(r.peak_memory_bytes).toBeGreaterThanOrEqual(r.initial_memory_bytes);
    expect(r.peak_memory_mb).toBe(Math.round(r.peak_memory_bytes / MiB));
    expect(r.throughput_mbps).toBeGreaterThan(0);
    // throughput = MiB / seconds; the file rounds seconds to 0.001 and throughput to 0.01.
    const roundingSlack = (8 * 0.0005) / r.duration_seconds ** 2 + 0.005;
    expect(Math.abs(r.throughput_mbps - 8 / r.duration_seconds)).toBeLessThanOrEqual(roundingSlack);
    expect(r.entry_id).toMatch(/^\w{10}$/);
    expect(r.memory_samples).toBeGreaterThan(0);
    expect(r.picoshare_peak_rss_bytes).toBeGreaterThan(0);
    expect(r.kernel_peak_memory_bytes).toBeGreaterThanOrEqual(r.peak_memory_bytes);
    expect(r.picoshare_sha256).toBe(new Bun.CryptoHasher("sha256").update(readFileSync(picoshare)).digest("hex"));
    expect(Object.keys(r.phases).sort()).toEqual(["auth", "download", "readiness", "requests", "setup", "teardown", "upload", "verify"]);
    expect(ran.stderr).toContain("=== PicoShare Performance Test ===");
    // This host is cgroup v1 (the v2 set-ups are tested in a VM: cgroup-v2.test.ts).
    expect(r.backend_settings).toMatchObject({ cgroup_version: "1", cgroup_placement: "v1", memory_limit_bytes: 256 * MiB, work_dir_memory_backed: null });
    expect(ran.stderr).toMatch(/Memory limits: cgroup v1, beneath the harness's own memory cgroup \/sys\/fs\/cgroup\/memory\S*/);
    expect(ran.stderr).toContain("TEST PASSED");
    expect(ran.stderr).toMatch(/Peak Memory: \d+MB \/ 256MB/);
    expect(existsSync(join(d.results, readdirSync(d.results).find((n) => n.startsWith("picoshare-"))!))).toBe(true);
    // Nothing left behind: the work dir is empty, no test cgroup of this run remains.
    expect(readdirSync(d.work)).toEqual([]);
    const db = new Database(join(d.results, "results.db"), { readonly: true });
    const rows = db.query("SELECT run_id, exit_reason, ram_mb, success, result_file FROM results").all() as any[];
    db.close();
    expect(rows).toEqual([{ run_id: null, exit_reason: "success", ram_mb: 256, success: 1, result_file: lines[0] }]);
  });

  test("kernel counters of PicoShare's processes: present, positive and consistent, in the result and the database", async () => {
    const d = dirs();
    const ran = await runScript("run-test", args(d, "--ram", "256", "--file-size", "8M", "--verify"));
    expect(ran.code).toBe(0);
    const r = readResult(ran.stdout);
    const file = 8 * MiB;
    // The spilled temp file and the database each take the file once.
    expect(r.disk_write_bytes).toBeGreaterThanOrEqual(file);
    expect(r.write_amplification).toBeGreaterThan(1);
    expect(r.write_amplification).toBeLessThan(10);
    expect(r.write_amplification).toBeCloseTo(r.disk_write_bytes / file, 3);
    expect(r.disk_write_cancelled_bytes).toBeGreaterThanOrEqual(0);
    expect(r.disk_write_cancelled_bytes).toBeLessThanOrEqual(r.disk_write_bytes);
    expect(r.disk_read_bytes).toBeGreaterThanOrEqual(0);
    // The body arrives through read syscalls and goes out through writes, in chunks of at most a few MiB.
    expect(r.read_syscalls).toBeGreaterThan(8);
    expect(r.write_syscalls).toBeGreaterThan(8);
    expect(r.minor_faults).toBeGreaterThan(0);
    expect(r.major_faults).toBeGreaterThanOrEqual(0);
    // This host's cpuacct is its own v1 hierarchy: the test had a cpuacct cgroup of its own, removed with it.
    expect(r.backend_settings.cpu_source).toBe("cpuacct");
    const cpuacct = cgroupMounts().v1Cpuacct!;
    const own = readFileSync("/proc/self/cgroup", "utf8").split("\n").find((l) => l.split(":")[1]?.split(",").includes("cpuacct"))!.split(":")[2];
    expect(existsSync(join(cpuacct, own, basename(r.backend_settings.cgroup_path)))).toBe(false);
    expect(r.cpu_user_seconds + r.cpu_system_seconds).toBeGreaterThan(0);
    // The exact total (cpuacct.usage, nanoseconds), beside the split sampled per tick.
    expect(r.cpu_seconds).toBeGreaterThan(0);
    expect(r.test_counters.cpu_seconds).toBeGreaterThanOrEqual(r.cpu_seconds);
    expect(r.cpu_user_seconds + r.cpu_system_seconds).toBeLessThan(r.duration_seconds * 2 + 0.02);
    expect(r.data_dir_bytes).toBeGreaterThanOrEqual(file);
    expect([0, 1]).toContain(r.temp_files_left);
    // Anonymous memory, sampled with the working set; the breakdown at the working set's peak (v1: no PSI).
    expect(r.anon_peak_bytes).toBeGreaterThan(0);
    expect(r.anon_peak_bytes).toBeLessThanOrEqual(r.kernel_peak_memory_bytes);
    expect(r.memory_at_peak.anon).toBeGreaterThan(0);
    expect(r.memory_at_peak.anon).toBeLessThanOrEqual(r.anon_peak_bytes);
    expect(r.memory_at_peak.active_file).toBeLessThanOrEqual(r.memory_at_peak.file);
    expect(r.memory_pressure).toBeNull();
    // The host probed before the test: an fsync'd write to the work dir, a CPU loop.
    expect(r.environment_probe.disk_write_mibps).toBeGreaterThan(0);
    expect(r.environment_probe.cpu_seconds).toBeGreaterThan(0);
    expect(r.environment_probe.cpu_seconds).toBeLessThan(1);
    // The host settled before the probe: the wait (sync at least) and what the kernel had dirty then.
    expect(r.settle_seconds).toBeGreaterThan(0);
    expect(r.settle_seconds).toBeLessThan(10);
    expect(r.settle_dirty_bytes).toBeGreaterThanOrEqual(0);
    expect(r.caches_dropped).toBe(false);
    // Instructions where the host has hardware counters; here none: null, and said once.
    const why = await instructionsUnavailable();
    if (why === null) expect(r.instructions).toBeGreaterThan(0);
    else {
      expect(r.instructions).toBeNull();
      expect(ran.stderr.split("\n").filter((l) => l.includes("Instructions: not counted"))).toHaveLength(1);
    }
    // The whole test holds the upload phase, and the --verify download reads the entry back.
    for (const k of ["cpu_user_seconds", "cpu_system_seconds", "disk_write_bytes", "write_syscalls", "read_syscalls", "minor_faults"]) {
      expect(r.test_counters[k]).toBeGreaterThanOrEqual(r[k]);
    }
    expect(r.test_counters.read_syscalls).toBeGreaterThan(r.read_syscalls);
    const db = new Database(join(d.results, "results.db"), { readonly: true });
    const row = db.query("SELECT disk_write_bytes, write_amplification, write_syscalls, data_dir_bytes, test_counters_json FROM results").get() as any;
    db.close();
    expect(row).toEqual({
      disk_write_bytes: r.disk_write_bytes, write_amplification: r.write_amplification, write_syscalls: r.write_syscalls,
      data_dir_bytes: r.data_dir_bytes, test_counters_json: JSON.stringify(r.test_counters),
    });
  });

  test("the download is measured as its own phase, and --verify checks that same download byte for byte", async () => {
    const d = dirs();
    // --no-recovery: no small entry first, whose writes would blur the count of downloads below.
    // 64M, not 8M: a download's socket writes grow with the file, the test's other writes (start-up,
    // login, the length check) do not; with 8M the two were close enough for the bound below to miss.
    const ran = await runScript("run-test", args(d, "--ram", "256", "--file-size", "64M", "--verify", "--no-recovery"));
    expect(ran.code).toBe(0);
    const r = readResult(ran.stdout);
    expect(r).toMatchObject({ success: true, exit_reason: "success", verified: true, download_exit_reason: "success", download_error: null });
    expect(r.download_duration_seconds).toBeGreaterThan(0);
    // MiB over seconds (the duration is shown to the millisecond, the throughput from the unrounded time).
    expect(Math.abs((r.download_throughput_mbps * r.download_duration_seconds) / 64 - 1)).toBeLessThan(0.03);
    expect(r.download_peak_memory_bytes).toBeGreaterThan(0);
    expect(r.phases.download).toBeGreaterThanOrEqual(r.download_duration_seconds);
    // PicoShare sent the entry through the socket: writes, and the database read (from disk or cache).
    const dc = r.download_counters;
    expect(dc.write_syscalls).toBeGreaterThan(8);
    expect(dc.cpu_seconds).toBeGreaterThan(0);
    // One download, not two: the whole test wrote to sockets no more than the upload, this download and a little more.
    const others = r.test_counters.write_syscalls - r.write_syscalls - dc.write_syscalls;
    if (others >= 0.5 * dc.write_syscalls) console.error(`write syscalls: test ${r.test_counters.write_syscalls}, upload ${r.write_syscalls}, download ${dc.write_syscalls}`);
    expect(others).toBeLessThan(0.5 * dc.write_syscalls);
    expect(ran.stderr).toMatch(/Download: [\d.]+s, [\d.]+ MB\/s, peak \d+MB/);
    const db = new Database(join(d.results, "results.db"), { readonly: true });
    expect(db.query("SELECT download_exit_reason, download_throughput_mbps FROM results").get()).toEqual({
      download_exit_reason: "success", download_throughput_mbps: r.download_throughput_mbps,
    });
    db.close();

    const skip = dirs();
    const skipped = await runScript("run-test", args(skip, "--ram", "256", "--file-size", "8M", "--no-download"));
    expect(skipped.code).toBe(0);
    const s = readResult(skipped.stdout);
    expect(s).toMatchObject({
      success: true, download_duration_seconds: null, download_throughput_mbps: null, download_peak_memory_bytes: null,
      download_counters: null, download_exit_reason: null,
    });
    expect(s.phases.download).toBe(0);
    expect(skipped.stderr).not.toContain("Download:");
  });

  test("--drop-caches: the kernel drops the page cache before each test, and the result says so", async () => {
    const drops = () => Number(/^drop_pagecache (\d+)$/m.exec(readFileSync("/proc/vmstat", "utf8"))![1]);
    const d = dirs();
    const before = drops();
    const ran = await runScript("run-test", args(d, "--ram", "256", "--file-size", "8M", "--iterations", "2", "--drop-caches"));
    expect(ran.code).toBe(0);
    // The kernel counts each write to drop_caches: one per test.
    expect(drops() - before).toBe(2);
    expect(ran.stderr).toContain("Page cache: synced and dropped before each test (--drop-caches)");
    for (const path of ran.stdout.trim().split("\n")) expect(readResult(path).caches_dropped).toBe(true);
    const db = new Database(join(d.results, "results.db"), { readonly: true });
    expect(db.query("SELECT caches_dropped FROM results").all()).toEqual([{ caches_dropped: 1 }, { caches_dropped: 1 }]);
    db.close();
  });

  test("--keep-vm leaves PicoShare serving the entry, with the secret in no log, result or command line", async () => {
    const d = dirs();
    const ran = await runScript("run-test", args(d, "--ram", "256", "--file-size", "8M", "--keep-vm"));
    expect(ran.code).toBe(0);
    const r = readResult(ran.stdout);
    const [kept] = readdirSync(d.work);
    const dir = join(d.work, kept);
    const secret = readFileSync(join(dir, "secret"), "utf8");
    expect(secret.length).toBeGreaterThan(20);
    const url = /kept running at (http:\/\/127\.0\.0\.1:\d+)/.exec(ran.stderr)![1];
    const pid = Number(/\(pid (\d+)/.exec(ran.stderr)![1]);
    const cgroup = /cgroup:\s+(\S+)/.exec(ran.stderr)![1];
    try {
      expect(alive(pid)).toBe(true);
      // The entry really is on the server, with the file's length.
      const auth = await fetch(`${url}/api/auth`, { method: "POST", body: JSON.stringify({ sharedSecretKey: secret }) });
      expect(auth.status).toBe(200);
      const cookie = auth.headers.getSetCookie()[0].split(";")[0];
      const entry = await fetch(`${url}/-${r.entry_id}`, { headers: { Cookie: cookie } });
      expect(entry.status).toBe(200);
      expect((await entry.arrayBuffer()).byteLength).toBe(8 * MiB);
      // The secret is nowhere it could leak.
      const places = [
        ran.stderr,
        ran.stdout,
        ...readdirSync(d.results).filter((n) => !n.endsWith(".db") && !n.includes(".db-")).map((n) => readFileSync(join(d.results, n), "utf8")),
        readFileSync(`/proc/${pid}/cmdline`, "utf8"),
        readFileSync(`/proc/${pid}/environ`, "utf8"),
        readFileSync(join(dir, "picoshare.log"), "utf8"),
      ];
      for (const text of places) expect(text).not.toContain(secret);
      expect(ran.stderr).toContain("Stop it:");
    } finally {
      process.kill(-pid, "SIGTERM");
      await waitFor("PicoShare to stop", () => !alive(pid), 10_000);
      await waitFor("cgroup to empty", () => cgroupPids(cgroup).length === 0, 5_000);
      rmdirSync(cgroup);
    }
  });
});

/** Exit 1 with a result of the given kind, written and recorded. */
async function expectFailure(d: ReturnType<typeof dirs>, ran: { code: number | null; stdout: string; stderr: string }, reason: string) {
  expect(ran.code).toBe(1);
  const r = readResult(ran.stdout);
  expect(r.exit_reason).toBe(reason);
  expect(r.success).toBe(false);
  expect(r.throughput_mbps).toBe(0);
  expect(r.error).toBeTruthy();
  expect(ran.stderr).toContain(`TEST FAILED: ${reason}`);
  const db = new Database(join(d.results, "results.db"), { readonly: true });
  expect((db.query("SELECT exit_reason FROM results").get() as any).exit_reason).toBe(reason);
  db.close();
  expect(readdirSync(d.work)).toEqual([]);
  return r;
}

describe("where the time goes, parallel uploads, the timeline", () => {
  test("the upload splits into transfer and processing, the end of the transfer seen by the server", async () => {
    const d = dirs();
    const ran = await runScript("run-test", args(d, "--ram", "256", "--file-size", "64M"));
    expect(ran.code).toBe(0);
    const r = readResult(ran.stdout);
    expect(r.upload_transfer_end).toBe("server");
    expect(r.upload_transfer_seconds).toBeGreaterThan(0);
    // Storing 64 MiB in SQLite takes PicoShare well over the 10 ms poll.
    expect(r.upload_processing_seconds).toBeGreaterThan(0.02);
    expect(r.upload_transfer_seconds + r.upload_processing_seconds).toBeCloseTo(r.duration_seconds, 2);
    // The client handed its last byte to the socket before the server had it all (by the buffers' worth), never after the response.
    expect(r.upload_body_sent_seconds).toBeGreaterThan(0);
    expect(r.upload_body_sent_seconds).toBeLessThanOrEqual(r.upload_transfer_seconds + 0.011);
    expect(ran.stderr).toMatch(/Transfer \/ processing: [\d.]+s \/ [\d.]+s \(end of transfer seen by the server\)/);
    const db = new Database(join(d.results, "results.db"), { readonly: true });
    expect(db.query("SELECT upload_transfer_seconds t, upload_processing_seconds p, concurrency c FROM results").get()).toEqual({
      t: r.upload_transfer_seconds, p: r.upload_processing_seconds, c: 1,
    });
    db.close();
  });

  test("--concurrency 2: two uploads at once, two whole entries, throughput over both", async () => {
    const d = dirs();
    const ran = await runScript("run-test", args(d, "--ram", "256", "--file-size", "8M", "--concurrency", "2", "--verify"));
    expect(ran.code).toBe(0);
    const r = readResult(ran.stdout);
    expect(r.concurrency).toBe(2);
    expect(r.entry_ids).toHaveLength(2);
    expect(new Set(r.entry_ids).size).toBe(2);
    expect(r.entry_ids.every((id: string | null) => typeof id === "string" && id.length > 0)).toBe(true);
    expect(r.upload_durations_seconds).toHaveLength(2);
    expect(Math.max(...r.upload_durations_seconds)).toBeCloseTo(r.duration_seconds, 2);
    // Both files are in the database: more than twice 8 MiB (plus the small entry).
    expect(r.data_dir_bytes).toBeGreaterThan(16 * MiB);
    // Aggregate: 16 MiB over the wall time.
    expect(Math.abs((r.throughput_mbps * r.duration_seconds) / 16 - 1)).toBeLessThan(0.03);
    expect(ran.stderr).toContain("Concurrency: 2 uploads at once");
    expect(ran.stderr).toMatch(/Each upload: [\d.]+s, [\d.]+s/);
  });

  test("the memory timeline beside the result has samples in the upload, processing and download", async () => {
    const d = dirs();
    const ran = await runScript("run-test", args(d, "--ram", "256", "--file-size", "64M"));
    expect(ran.code).toBe(0);
    const r = readResult(ran.stdout);
    expect(basename(r.timeline_file)).toBe(basename(ran.stdout.trim()).replace(/^result-/, "timeline-").replace(/\.json$/, ".csv"));
    const samples = readTimeline(r.timeline_file);
    const phases = new Set(samples.map((s) => s.phase));
    expect([...phases].sort()).toEqual(["download", "processing", "upload"]);
    // In time order, phase by phase, within the test's own upload and download.
    const t = samples.map((s) => s.t);
    expect(t).toEqual([...t].sort((a, b) => a - b));
    expect(samples.findLast((s) => s.phase === "upload")!.t).toBeLessThanOrEqual(r.upload_transfer_seconds + 0.06);
    expect(samples.find((s) => s.phase === "processing")!.t).toBeGreaterThanOrEqual(r.upload_transfer_seconds);
    // The cgroup tells anon from file, and the working set peaked where the result says.
    expect(samples.every((s) => s.anon_bytes !== null && s.file_bytes !== null)).toBe(true);
    const peak = Math.max(...samples.filter((s) => s.phase !== "download").map((s) => s.working_set_bytes));
    expect(peak).toBeLessThanOrEqual(r.peak_memory_bytes);
    expect(peak).toBeGreaterThan(r.initial_memory_bytes);
  });
});

describe("after a failure: what a restart finds", () => {
  test("an OOM-killed upload: PicoShare starts again, its database is intact, the earlier entry is served whole, the temp file is counted", async () => {
    const d = dirs();
    const ran = await runScript("run-test", args(d, "--ram", "10", "--file-size", "64M"));
    const r = await expectFailure(d, ran, "oom_killed");
    expect(r.recovery).toMatchObject({ started: true, integrity_check: "ok", earlier_entry_intact: true, error: null });
    expect(r.recovery.restart_seconds).toBeGreaterThan(0);
    // Go's spill file of the killed upload stays behind: its bytes are part of the file.
    expect(r.recovery.temp_files_left).toBeGreaterThanOrEqual(1);
    expect(r.recovery.temp_bytes_left).toBeGreaterThan(0);
    expect(r.recovery.temp_bytes_left).toBeLessThanOrEqual(64 * MiB);
    expect(ran.stderr).toMatch(/Recovery: restart answered in [\d.]+ s, integrity_check ok, earlier entry served whole, \d+ temp file/);
    const db = new Database(join(d.results, "results.db"), { readonly: true });
    expect(JSON.parse((db.query("SELECT recovery_json j FROM results").get() as { j: string }).j)).toEqual(r.recovery);
    db.close();
  });

  test("a passing test has no recovery record, and --no-recovery makes none after a failure", async () => {
    const d = dirs();
    const ran = await runScript("run-test", args(d, "--ram", "10", "--file-size", "64M", "--no-recovery"));
    const r = await expectFailure(d, ran, "oom_killed");
    expect(r.recovery).toBeNull();
    expect(ran.stderr).not.toContain("Recovery:");
  });
});

describe("behind a real nginx", () => {
  test("--proxy nginx: the upload and download go through it; its memory and buffered bytes are recorded", async () => {
    const d = dirs();
    const ran = await runScript("run-test", args(d, "--ram", "256", "--file-size", "8M", "--proxy", "nginx", "--verify"));
    expect(ran.code).toBe(0);
    const r = readResult(ran.stdout);
    expect(r).toMatchObject({ success: true, verified: true, download_exit_reason: "success" });
    expect(r.proxy.proxy).toBe("nginx");
    expect(r.proxy.version).toMatch(/^\d+\.\d+/);
    expect(r.proxy.settings).toMatchObject({ proxy_request_buffering: "on", proxy_read_timeout: "60s" });
    // Request buffering on: nginx held the whole request body on disk before passing it on.
    expect(r.proxy.body_temp_peak_bytes).toBeGreaterThanOrEqual(8 * MiB);
    expect(r.proxy.peak_rss_bytes).toBeGreaterThan(0);
    // nginx's access shows in PicoShare's log as requests from the proxy's connection.
    expect(ran.stderr).toMatch(/Proxy: nginx at http:\/\/127\.0\.0\.1:\d+ in front of PicoShare/);
  });

  test("PicoShare's processing outlasting proxy_read_timeout: a 504 from the proxy, said in its terms", async () => {
    const d = dirs();
    const ran = await runScript("run-test", args(d, "--ram", "256", "--file-size", "64M", "--proxy", "nginx", "--proxy-settings", "proxy_read_timeout=1ms"));
    const r = await expectFailure(d, ran, "http_error");
    expect(r.http_status).toBe("504");
    expect(r.error).toContain("proxy_read_timeout 1ms");
    expect(r.proxy.settings.proxy_read_timeout).toBe("1ms");
  });

  test("--proxy-settings without --proxy, or with a name nginx is not given: exit 2, one line", async () => {
    const d = dirs();
    const alone = await runScript("run-test", args(d, "--ram", "256", "--file-size", "8M", "--proxy-settings", "proxy_read_timeout=5s"));
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain("--proxy-settings without --proxy");
    const bad = await runScript("run-test", args(d, "--ram", "256", "--file-size", "8M", "--proxy", "nginx", "--proxy-settings", "worker_processes=4"));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("worker_processes");
    expect(existsSync(d.results)).toBe(false);
  });
});

describe("failures are classified and written", () => {
  test("a RAM limit too small for the upload: oom_killed, from the cgroup's OOM counter", async () => {
    const d = dirs();
    const ran = await runScript("run-test", args(d, "--ram", "10", "--file-size", "64M"));
    const r = await expectFailure(d, ran, "oom_killed");
    expect(r.oom_kills).toBeGreaterThan(0);
  });

  test("an upload slower than --timeout: timeout", async () => {
    const d = dirs();
    const ran = await runScript("run-test", args(d, "--ram", "512", "--file-size", "256M", "--timeout", "0.05"));
    const r = await expectFailure(d, ran, "timeout");
    expect(r.duration_seconds).toBeLessThan(2);
  });

  test("PicoShare killed mid-upload (not by the OOM killer): process_died", async () => {
    const d = dirs();
    const run = startScript("run-test", args(d, "--ram", "512", "--file-size", "256M"));
    const cg = await waitFor("the test cgroup", () => testCgroups(run.pid)[0]);
    await waitFor("the multipart temp file", () => uploadStarted(d.work));
    for (const pid of cgroupPids(cg)) process.kill(pid, "SIGKILL");
    const ran = await run.done;
    const r = await expectFailure(d, ran, "process_died");
    expect(r.oom_kills).toBe(0);
    expect(r.error).toContain("SIGKILL");
  });
});

describe("a work dir in memory (tmpfs)", () => {
  let mnt: string;
  beforeAll(() => {
    mnt = mkdtempSync(join(root, "tmpfs-"));
    const r = $({ nothrow: true }).sync`mount -t tmpfs -o size=128m tmpfs ${mnt}`;
    if (r.exitCode !== 0) throw new Error(`mount tmpfs: ${r.stderr}`);
  });
  afterAll(() => {
    expect($({ nothrow: true }).sync`umount ${mnt}`.exitCode).toBe(0);
    rmdirSync(mnt);
  });

  test("is refused: exit 2, one line naming tmpfs and --work-dir, nothing written", async () => {
    const d = dirs();
    const ran = await runScript("run-test", [...args(d, "--ram", "256", "--file-size", "8M"), "--work-dir", mnt]);
    expect(ran.code).toBe(2);
    const errors = ran.stderr.split("\n").filter((l) => l.includes("ERROR:"));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/--work-dir \S+ is on tmpfs: .*count against PicoShare's limit.*--allow-memory-backed-work-dir/);
    expect(existsSync(d.results) ? readdirSync(d.results) : []).toEqual([]);
    expect(readdirSync(mnt)).toEqual([]);
  });

  test("with --allow-memory-backed-work-dir runs, and the result says the work dir was in memory", async () => {
    const d = dirs();
    const ran = await runScript("run-test", [...args(d, "--ram", "256", "--file-size", "8M"), "--work-dir", mnt, "--allow-memory-backed-work-dir"]);
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    const r = readResult(ran.stdout);
    expect(r.backend_settings.work_dir_memory_backed).toBe("tmpfs");
    // On disk the same field is null (the first test of this file reads it from a disk work dir).
    expect(readdirSync(mnt)).toEqual([]);
  });
});

describe("bad input: exit 2, one line, nothing written", () => {
  const cases: [string, (d: ReturnType<typeof dirs>) => string[], RegExp][] = [
    ["--ram 0", (d) => args(d, "--ram", "0", "--file-size", "8M"), /--ram must be a whole number/],
    ["--ram abc", (d) => args(d, "--ram", "abc", "--file-size", "8M"), /--ram must be a whole number/],
    ["--ram 1.5", (d) => args(d, "--ram", "1.5", "--file-size", "8M"), /--ram must be a whole number/],
    ["malformed --file-size", (d) => args(d, "--ram", "256", "--file-size", "1.5G"), /invalid --file-size "1\.5G".*100M/],
    ["missing test file", (d) => args(d, "--ram", "256", "--file-size", "3M"), /missing: make it with `bun scripts\/generate-test-files\.ts --sizes 3M/],
    ["test file of the wrong size", (d) => args(d, "--ram", "256", "--file-size", "5M"), /has 100 bytes, expected 5242880.*--force/],
    ["missing --picoshare", (d) => [...args(d, "--ram", "256", "--file-size", "8M"), "--picoshare", "/nonexistent/picoshare"], /does not exist/],
    ["non-executable --picoshare", (d) => [...args(d, "--ram", "256", "--file-size", "8M"), "--picoshare", join(files, "8M.bin")], /not executable/],
    ["results dir that cannot be written", (d) => [...args(d, "--ram", "256", "--file-size", "8M"), "--results-dir", join(files, "8M.bin", "sub")], /--results-dir .* cannot be written/],
    ["--timeout 0", (d) => args(d, "--ram", "256", "--file-size", "8M", "--timeout", "0"), /--timeout must be a number above 0/],
    ["--timeout abc", (d) => args(d, "--ram", "256", "--file-size", "8M", "--timeout", "abc"), /--timeout must be a number above 0/],
    ["an unknown flag", (d) => args(d, "--ram", "256", "--file-size", "8M", "--fast"), /unknown option --fast/],
    ["a flag missing its value", (d) => args(d, "--file-size", "8M", "--ram"), /option --ram needs a value/],
    ["--ram missing", (d) => args(d, "--file-size", "8M"), /--ram is required/],
    ["an unknown backend", (d) => args(d, "--ram", "256", "--file-size", "8M", "--backend", "docker"), /--backend must be one of/],
    [
      "--ram above the host's memory",
      (d) => args(d, "--ram", "99999999", "--file-size", "8M"),
      /--ram 99999999 is more than this harness can have: \d+ MiB \(the host's MemTotal\).*use --ram \d+ or less/,
    ],
  ];
  beforeAll(() => writeFileSync(join(files, "5M.bin"), "x".repeat(100)));

  for (const [name, argv, message] of cases) {
    test(name, async () => {
      const d = dirs();
      const ran = await runScript("run-test", argv(d));
      expect(ran.code).toBe(2);
      expect(ran.stdout).toBe("");
      const errors = ran.stderr.split("\n").filter((l) => l.includes("ERROR:"));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(message);
      expect(existsSync(d.results) ? readdirSync(d.results) : []).toEqual([]);
      expect(readdirSync(d.work)).toEqual([]);
    });
  }
});

describe("interrupted mid-upload", () => {
  for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    test(`${sig}: no PicoShare, cgroup or temp folder left, no result`, async () => {
      const d = dirs();
      const run = startScript("run-test", args(d, "--ram", "512", "--file-size", "256M"));
      const cg = await waitFor("the test cgroup", () => testCgroups(run.pid)[0]);
      const [pid] = await waitFor("PicoShare in the cgroup", () => cgroupPids(cg).length > 0 && cgroupPids(cg));
      await waitFor("the upload to start", () => uploadStarted(d.work));
      process.kill(run.pid, sig);
      const ran = await run.done;
      expect(ran.code).toBe(code);
      expect(ran.stderr).toContain(`Caught ${sig}`);
      expect(alive(pid)).toBe(false);
      expect(existsSync(cg)).toBe(false);
      expect(readdirSync(d.work)).toEqual([]);
      expect(ran.stdout).toBe("");
      expect(existsSync(d.results) ? readdirSync(d.results).filter((n) => n.endsWith(".json")) : []).toEqual([]);
    });
  }
});

describe("where memory cannot be limited", () => {
  // An unprivileged user may not create cgroups under the harness's own: the
  // harness must refuse, never run without a limit. Needs the project and
  // Bun to be readable by `nobody` (they are in a clone under /tmp or /work).
  const readable = (() => {
    const r = $({ nothrow: true }).sync`setpriv --reuid=nobody --regid=nogroup --clear-groups /bin/sh -c ${'test -r "$0" && test -x "$1"'} ${join(import.meta.dir, "..", "package.json")} ${BUN}`;
    return r.exitCode === 0;
  })();
  test.skipIf(!readable)("a user who may not create cgroups gets one clear line and exit 2", async () => {
    const base = mkdtempSync(join(tmpdir(), "nocgroup-"));
    chmodSync(base, 0o777);
    try {
      const script = join(import.meta.dir, "..", "scripts", "run-test.ts");
      const nobody = $({ env: { NO_COLOR: "1" }, nothrow: true });
      const args = ["--ram", "256", "--file-size", "8M", "--test-files", files, "--results-dir", join(base, "results"), "--work-dir", base, "--picoshare", picoshare];
      const r = nobody.sync`setpriv --reuid=nobody --regid=nogroup --clear-groups ${BUN} ${script} ${args}`;
      const stderr = r.stderr;
      if (r.exitCode !== 2) console.error(stderr);
      expect(r.exitCode).toBe(2);
      expect(stderr.split("\n").filter((l) => l.includes("ERROR:"))).toHaveLength(1);
      expect(stderr).toMatch(/ERROR: cannot create memory cgroups under \S+ \(cgroup v1\): run as root/);
      expect(r.stdout).toBe("");
      expect(readdirSync(join(base, "results"))).toEqual([]);
      // --drop-caches needs root too: refused by name before anything runs.
      const dc = nobody.sync`setpriv --reuid=nobody --regid=nogroup --clear-groups ${BUN} ${script} ${args} --drop-caches`;
      expect(dc.exitCode).toBe(2);
      expect(dc.stderr).toMatch(/ERROR: --drop-caches needs root \(it writes \/proc\/sys\/vm\/drop_caches\)/);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});

describe("what a killed harness leaves behind", () => {
  test("the next run removes the dead run's cgroup and folder, and reports a PicoShare still running", async () => {
    const d = dirs();
    const run = startScript("run-test", args(d, "--ram", "512", "--file-size", "256M"));
    const cg = await waitFor("the test cgroup", () => testCgroups(run.pid)[0]);
    await waitFor("the upload to start", () => uploadStarted(d.work));
    process.kill(run.pid, "SIGKILL");
    await run.done;
    const [orphan] = cgroupPids(cg);
    expect(orphan).toBeGreaterThan(0);
    // The test's folder (data, temp files) and the harness's own beside it (the small entry's file, a proxy's folder).
    const left = readdirSync(d.work);
    expect(left).toHaveLength(2);
    expect(left.every((n) => n.startsWith(`picoshare-perf-${run.pid}-`))).toBe(true);
    try {
      // While the orphan runs it is reported, not ended.
      const first = await runScript("run-test", args(d, "--ram", "256", "--file-size", "8M"));
      expect(first.code).toBe(0);
      expect(first.stderr).toContain(`PicoShare left running by a dead harness (pid ${orphan})`);
      expect(alive(orphan)).toBe(true);
      expect(existsSync(cg)).toBe(true);
      expect(readdirSync(d.work)).toEqual(left); // its data stays while it runs
    } finally {
      process.kill(orphan, "SIGKILL");
      await waitFor("the orphan to go", () => cgroupPids(cg).length === 0, 5_000);
    }
    const second = await runScript("run-test", args(d, "--ram", "256", "--file-size", "8M"));
    expect(second.code).toBe(0);
    expect(second.stderr).toMatch(/Removed the cgroup picoshare-perf-\d+-\w+ of a harness run that died/);
    expect(second.stderr).toContain("left by a harness run that died");
    expect(existsSync(cg)).toBe(false);
    expect(readdirSync(d.work)).toEqual([]);
  });
});
