// Comparisons: fingerprints, cell matching and the exporters on synthetic
// results; the command line's refusals; a stored comparison from a real
// results log; and a live A/A comparison of two real PicoShare builds.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compareFingerprints, describeDifferences, runFingerprint, stableSettings } from "../lib/stats/fingerprint.ts";
import { buildComparison, buildComparisons, type SideInput } from "../lib/stats/comparison.ts";
import { comparisonText } from "../lib/output/exporters/compare-table.ts";
import { comparisonMarkdown } from "../lib/output/exporters/compare-markdown.ts";
import { comparisonJson } from "../lib/output/exporters/compare-json.ts";
import { answerText, geomean, nwayCell, nwayJson, nwayMarkdown, nwayText } from "../lib/output/exporters/compare-nway.ts";
import { answerOf } from "../lib/stats/answers.ts";
import { GATE_COUNTS, parseThresholds, plannedBlindSpots } from "../lib/stats/gate.ts";
import { COMPARED_METRICS, metricByKey } from "../lib/stats/metrics.ts";
import { minimumDetectableEffect, runsForMde } from "../lib/stats/power.ts";
import { orderText, runOrder } from "../lib/matrix/live-compare.ts";
import { ResultsDb } from "../lib/store/results-db.ts";
import { resolvePicoShareVersion } from "../lib/upload/picoshare.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import { fmtPercent } from "../lib/stats/verdict.ts";
import type { TestResult } from "../lib/upload/result.ts";
import { HOST, fakeCell, fakeResult, mergedRun } from "./helpers/results.ts";
import { runScript } from "./helpers/run.ts";
import { BUN } from "../lib/core/paths.ts";
import { $ } from "../lib/core/shell.ts";

setDefaultTimeout(120_000);

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "compare-spec-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function side(label: string, results: TestResult[], extra: Partial<SideInput> = {}): SideInput {
  return {
    label,
    run_id: null,
    picoshare_version: "v1.5.4",
    picoshare_sha256: label === "A" ? "aa".repeat(32) : "bb".repeat(32),
    fingerprint: runFingerprint(results[0]?.host ?? HOST, "local", results),
    results,
    harness_errors: [],
    ...extra,
  };
}

describe("fingerprints", () => {
  const fp = (host: Partial<typeof HOST>, settings: Record<string, string | number | boolean | null> = { cgroup_version: "2", swap: "excluded" }) =>
    runFingerprint({ ...HOST, ...host }, "local", [fakeResult({ settings })]);

  test("the same environment: no difference, per-test paths and the memory limit ignored", () => {
    const a = runFingerprint(HOST, "local", [fakeResult({ ram: 256 }), fakeResult({ ram: 512 })]);
    const b = runFingerprint({ ...HOST, memory_available_bytes: HOST.memory_available_bytes * 0.8, load_average_1m: 0.9 }, "local", [fakeResult({ ram: 1024 })]);
    expect(a.backend_settings).toEqual({ cgroup_version: "2", swap: "excluded" });
    expect(compareFingerprints(a, b)).toEqual([]);
    expect(stableSettings({ cgroup_path: "/x", work_dir: "/tmp", vm_name: "pv-1", ssh_port: 2222, memory_limit_bytes: 1, box: "debian/bookworm64" })).toEqual({ box: "debian/bookworm64" });
    // The vagrant backend's settings: the VM's memory is the cell's RAM, boot time and reuse are per test.
    expect(
      stableSettings({ vagrant_folder: "/srv/v", vagrant_version: "2.4.1", provider: "libvirt", box: "debian/bookworm64", vm_memory_mib: 512, vm_cpus: 1, vm_reused: false, vm_boot_seconds: 41, memory_metric: "MemTotal - MemAvailable" }),
    ).toEqual({ box: "debian/bookworm64", memory_metric: "MemTotal - MemAvailable", provider: "libvirt", vagrant_version: "2.4.1", vm_cpus: 1 });
  });

  test("differences that matter are named, with why", () => {
    const a = fp({});
    const b = fp({ cpu_governor: "powersave", kernel: "6.12.0", data_disk_rotational: true, cpu_model: "Intel Xeon" }, { cgroup_version: "1", swap: "excluded" });
    const fields = compareFingerprints(a, b).map((d) => d.field);
    expect(fields).toEqual(["cpu_model", "cpu_governor", "kernel", "data_disk_rotational", "backend_settings.cgroup_version"]);
    expect(describeDifferences(compareFingerprints(a, b))).toContain("cpu_governor: performance vs powersave (CPU frequency scaling policy)");
  });

  test("free memory and load only when very different", () => {
    const a = fp({ memory_available_bytes: 10 * 1024 * MiB, load_average_1m: 0.5 });
    // Less than half the available memory; load per CPU 0.5/4 -> 4.5/4: 1.0 apart.
    const b = fp({ memory_available_bytes: 4 * 1024 * MiB, load_average_1m: 4.5 });
    expect(compareFingerprints(a, b).map((d) => d.field)).toEqual(["memory_available_bytes", "load_average_1m"]);
    // 60 % of the memory, load 0.5 -> 2.0 (0.375 per CPU apart): not named.
    expect(compareFingerprints(a, fp({ memory_available_bytes: 6 * 1024 * MiB, load_average_1m: 2 }))).toEqual([]);
  });

  test("unknown or unrecorded facts are not differences; another backend is", () => {
    const old = runFingerprint({ hostname: HOST.hostname, kernel: HOST.kernel }, "local", []);
    expect(compareFingerprints(old, fp({ cpu_governor: null }))).toEqual([]);
    const vm = runFingerprint(HOST, "vagrant", [fakeResult({ settings: { box: "debian" } })]);
    expect(compareFingerprints(fp({}), vm).map((d) => d.field)).toEqual(["backend"]);
  });

  test("what is not PicoShare's is named: cgroup version, harness version, Go runtime variables, Go release, requests per kind", () => {
    const prov = (over: Partial<TestResult>) => runFingerprint(HOST, "local", [fakeResult({ settings: {} }), fakeResult({ settings: {} })].map((r) => ({
      ...r, cgroup_version: "2", harness_commit: "a".repeat(40), harness_dirty: false, picoshare_go_version: "go1.26.8",
      go_runtime_env: { GOGC: null, GOMEMLIMIT: null, GODEBUG: null, GOMAXPROCS: null }, requests_per_kind: 20, ...over,
    })));
    expect(compareFingerprints(prov({}), prov({}))).toEqual([]);
    const d = compareFingerprints(prov({}), prov({
      cgroup_version: "1", harness_commit: "b".repeat(40), harness_dirty: true, picoshare_go_version: "go1.25.1",
      go_runtime_env: { GOGC: "50", GOMEMLIMIT: null, GODEBUG: null, GOMAXPROCS: null }, requests_per_kind: 5,
    }));
    expect(d.map((x) => x.field)).toEqual(["cgroup_version", "harness_commit", "harness_dirty", "GOGC", "picoshare_go_version", "requests_per_kind"]);
    expect(describeDifferences(d)).toContain("GOGC: unset vs 50 (another Go GC target)");
    expect(describeDifferences(d)).toContain("requests_per_kind: 20 vs 5 (another --requests K");
    // Records from before these fields existed (no field at all) are not a difference.
    expect(compareFingerprints(runFingerprint(HOST, "local", [fakeResult({ settings: {} })]), prov({}))).toEqual([]);
  });

  test("a setting that changes within a run shows as varying", () => {
    const f = runFingerprint(HOST, "local", [fakeResult({ settings: { swap: "excluded" } }), fakeResult({ settings: { swap: "allowed" } })]);
    expect(f.backend_settings).toEqual({ swap: "(varies)" });
  });
});

describe("a comparison of synthetic runs", () => {
  const aResults = [
    ...fakeCell([100, 102, 98, 101, 99], { ram: 512, size: "1G", peakMiB: 40 }),
    ...fakeCell([50, 51, 49, 50, 52], { ram: 256, size: "100M", peakMiB: 30 }),
    fakeResult({ ram: 256, size: "100M", reason: "oom_killed" }),
    ...fakeCell([10, 11], { ram: 128, size: "100M" }),
  ];
  const bResults = [
    // The same file written as 1024M: matched with A's 1G.
    ...fakeCell([130, 133, 128, 131, 129], { ram: 512, size: "1024M", peakMiB: 40 }),
    ...fakeCell([50, 49, 51, 52, 50], { ram: 256, size: "100M", peakMiB: 30 }),
    ...fakeCell([70, 71, 69, 70], { ram: 2048, size: "5G" }),
  ];
  const c = buildComparison(side("A", aResults), side("B", bResults, { harness_errors: [{ ram_mb: 256, file_size: "100M" }] }));

  test("cells matched by RAM and size in bytes; the rest listed as unmatched", () => {
    expect(c.cells.map((x) => `${x.ram_mb} ${x.file_size}`)).toEqual(["512 1G", "256 100M"]);
    expect(c.unmatched).toEqual([
      { side: "b", ram_mb: 2048, file_size: "5G", concurrency: 1 },
      { side: "a", ram_mb: 128, file_size: "100M", concurrency: 1 },
    ]);
  });

  test("verdicts, counts and method", () => {
    const [big, small] = c.cells;
    expect(big.throughput).toMatchObject({ verdict: "higher", label: "faster", better: true });
    expect(big.throughput.ratio).toBeCloseTo(130 / 100, 10);
    expect(big.peak_memory).toMatchObject({ verdict: "same", ratio: 1 });
    expect(small.throughput.verdict).toBe("same");
    expect(small.a).toMatchObject({ passed: 5, failed: 1, oom: 1, harness_errors: 0 });
    expect(small.b).toMatchObject({ passed: 5, failed: 0, oom: 0, harness_errors: 1 });
    expect(c.method).toMatchObject({ alpha: 0.05, runs_needed: 5, seed: 1, resamples: 10000, cv_threshold: 0.1 });
    expect(c.fingerprint_differences).toEqual([]);
  });

  test("the terminal table is aligned; Markdown has GitHub tables; JSON carries everything", () => {
    const text = comparisonText(c);
    const lines = text.split("\n");
    // The primary table first, one row per cell.
    const primary = lines.findIndex((l) => l.startsWith("RAM (MB)"));
    expect(lines[primary]).toMatch(/throughput +PicoShare peak RSS +CPU seconds +disk bytes written/);
    expect(lines[primary + 2]).toMatch(/^ +512 +1G +5\/5 +1\.300 faster +1\.000 no difference larger than/);
    // Then each cell's every metric: header, rule and rows share column positions, the changed metric first.
    const header = lines.findIndex((l) => l.startsWith("Metric "));
    expect(lines[header - 1]).toBe("512MB/1G: every metric, changed first");
    const end = lines[header].indexOf("B/A") + 3;
    expect(lines[header + 2]).toStartWith("throughput (MiB/s)");
    expect(lines[header + 2].slice(end - 5, end)).toBe("1.300");
    expect(lines[header + 1]).toMatch(/^-+( +-+)+$/);
    expect(text).toMatch(/upload duration \(s\) +derived .*from throughput, not tested/);
    expect(text).toContain("5G was only run by B");

    const md = comparisonMarkdown(c);
    expect(md).toContain("| RAM (MB) | File | Runs A/B | throughput | PicoShare peak RSS | CPU seconds | disk bytes written |");
    expect(md).toContain("| Metric | Family | Runs A/B | Median A | Median B | B/A | 95 % CI | p (Holm) | MDE | Verdict |");
    expect(md).toContain("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |");
    // 5 vs 5 fully apart: p = 2/252; two primary metrics measured here (throughput, PicoShare's RSS): Holm doubles it.
    expect(md).toMatch(/\| throughput \(MiB\/s\) \| primary \| 5\/5 \| 100\.00 \| 130\.00 \| 1\.300 \| \[1\.\d{3}, 1\.\d{3}\] \| 0\.008 \(0\.016\) \| \d+\.\d % \| faster \|/);

    const json = JSON.parse(comparisonJson(c));
    expect(json).toMatchObject({ format: "picoshare-perf-comparison", version: 2 });
    expect(json.cells[0].throughput.label).toBe("faster");
    expect(json.cells[0].metrics.map((m: { key: string }) => m.key)).toEqual([
      "throughput", "picoshare_peak_rss", "peak_memory", "cpu_seconds", "disk_write_bytes", "anon_peak", "write_syscalls", "read_syscalls", "instructions", "major_faults", "minor_faults",
      "upload_fsync_calls",
      "download_throughput", "download_cpu_seconds", "download_peak_rss", "list_page_seconds", "info_page_seconds", "download_first_byte_seconds",
      // The per-request counts are secondary: before the instruction counts' family, as COMPARED_METRICS declares them.
      "list_page_instructions", "info_page_instructions", "download_first_byte_instructions", "upload_instructions", "download_instructions",
    ]);
    expect(json.cells[0].metrics[3]).toMatchObject({ key: "cpu_seconds", verdict: "too_few", label: "not measured" });
    expect(json.cells).toHaveLength(2);
    // One host on both sides: no hosts per cell side.
    expect(json.cells.flatMap((x: { a: object; b: object }) => [x.a, x.b]).some((x: object) => "hosts" in x)).toBe(false);
  });

  test("fsync calls, the same count in every run: more on B is called, the same count is no difference", () => {
    const runs = (fsyncs: number) => fakeCell([100, 101, 99, 102, 98]).map((r) => ({ ...r, upload_fsync_calls: fsyncs }));
    const fsyncVerdict = (a: number, b: number) =>
      JSON.parse(comparisonJson(buildComparison(side("A", runs(a)), side("B", runs(b))))).cells[0].metrics.find((m: { key: string }) => m.key === "upload_fsync_calls");
    expect(fsyncVerdict(40, 48)).toMatchObject({ family: "secondary", label: "more fsyncs" });
    expect(fsyncVerdict(40, 40).label).toMatch(/^no difference/);
  });

  test("environment differences come first in every rendering", () => {
    const other = aResults.map((r) => ({ ...r, host: { ...r.host, cpu_governor: "powersave" } }));
    const d = buildComparison(side("A", aResults), side("B", other));
    expect(d.fingerprint_differences.map((x) => x.field)).toEqual(["cpu_governor"]);
    expect(comparisonText(d)).toContain("WARNING: the two sides ran in different environments: cpu_governor: performance vs powersave");
    expect(comparisonMarkdown(d)).toContain("> **Warning:** the two sides ran in different environments");
  });

  test("interleaving: each side goes first equally often", () => {
    expect([0, 1, 2, 3].map((i) => runOrder(i))).toEqual([["a", "b"], ["b", "a"], ["a", "b"], ["b", "a"]]);
    // Three builds: each round followed by its reverse, each in each place twice every six rounds.
    const three = [0, 1, 2, 3, 6].map((i) => runOrder(i, ["a", "b1", "b2"]));
    expect(three).toEqual([["a", "b1", "b2"], ["b2", "b1", "a"], ["b1", "b2", "a"], ["a", "b2", "b1"], ["a", "b1", "b2"]]);
    expect(orderText(["A", "B"])).toBe("ABBA (A B, B A, ...) within each cell");
    expect(orderText(["A", "B1", "B2", "B3"])).toContain("a balanced Latin square over 4 rounds");
  });

  test("Williams design: over a cycle, each build follows every other equally often (2 to 6 builds)", () => {
    for (let n = 2; n <= 6; n++) {
      const sides = Array.from({ length: n }, (_, k) => `s${k}`);
      const cycle = n % 2 === 0 ? n : 2 * n;
      const rounds = Array.from({ length: cycle }, (_, i) => runOrder(i, sides));
      // The cycle starts over: round `cycle` is round 0.
      expect(runOrder(cycle, sides)).toEqual(rounds[0]);
      const within = new Map<string, number>();
      const count = (m: Map<string, number>, from: string, to: string) => m.set(`${from}>${to}`, (m.get(`${from}>${to}`) ?? 0) + 1);
      for (const r of rounds) {
        expect([...r].sort()).toEqual(sides); // every build once a round
        for (let k = 1; k < n; k++) count(within, r[k - 1], r[k]);
      }
      // Each place: every build equally often.
      for (let k = 0; k < n; k++) {
        const at = rounds.map((r) => r[k]);
        for (const s of sides) expect(at.filter((x) => x === s).length).toBe(cycle / n);
      }
      // Within rounds: every ordered pair of different builds equally often (once for even n, twice for odd n).
      for (const a of sides) for (const b of sides) expect(within.get(`${a}>${b}`) ?? 0).toBe(a === b ? 0 : cycle / n);
      // Tests run back to back, so across a round boundary the round's first test follows the last of the round
      // before: counting those too (over the cycle, wrapping into the next), each build gets one more predecessor per
      // n rounds; for two builds that one is itself (A B | B A: ABBA), so their balance is exact.
      const all = new Map<string, number>();
      const seq = rounds.flat();
      for (let t = 0; t < seq.length; t++) count(all, seq[(t + seq.length - 1) % seq.length], seq[t]);
      for (const b of sides) {
        const others = sides.filter((a) => a !== b).map((a) => all.get(`${a}>${b}`) ?? 0);
        expect(Math.max(...others) - Math.min(...others)).toBeLessThanOrEqual(n === 2 ? 0 : 1);
        expect(Math.min(...others)).toBe(cycle / n);
      }
    }
  });
});

describe("several builds against one A", () => {
  const base = [100, 101, 99, 102, 98];
  const times = (k: number) => base.map((t) => t * k);

  test("geomean: the n-th root of the product of the ratios there are", () => {
    expect(geomean([0.8, 0.5])).toBeCloseTo(Math.sqrt(0.4), 12); // 0.63246
    expect(geomean([4, null, 1, 2])).toBeCloseTo(2, 12); // cube root of 8
    expect(geomean([2, 0.5])).toBeCloseTo(1, 12);
    // A ratio that is not above 0 has no logarithm: left out, as a missing one.
    expect(geomean([0, 0.5])).toBeCloseTo(0.5, 12);
    expect(geomean([null])).toBeNull();
    expect(geomean([])).toBeNull();
  });

  test("the geomean row of two cells whose ratios differ (0.8 and 0.5) is 0.632: not their mean or median (0.650), nor the first (0.800)", () => {
    const a = side("A", [...fakeCell(base, { ram: 512 }), ...fakeCell(base, { ram: 256 })]);
    const b1 = side("B1", [...fakeCell(times(0.8), { ram: 512 }), ...fakeCell(times(0.5), { ram: 256 })]);
    const b2 = side("B2", [...fakeCell(base, { ram: 512 }), ...fakeCell(base, { ram: 256 })]);
    const cs = buildComparisons(a, [b1, b2]);
    const lines = nwayText(cs).split("\n");
    const at = lines.indexOf("throughput (MiB/s): ratio B/A per cell");
    // No change called: the cell says how large a change these runs could have missed.
    const mde = (i: number) => `<${fmtPercent(cs[1].cells[i].throughput.mde!)}`;
    expect(lines[at + 3]).toMatch(new RegExp(`^512MB/100M +0\\.800 slower +1\\.000 ~ ${mde(0)}$`));
    expect(lines[at + 4]).toMatch(new RegExp(`^256MB/100M +0\\.500 slower +1\\.000 ~ ${mde(1)}$`));
    expect(lines[at + 5]).toMatch(/^geomean +0\.632 +1\.000$/);
    expect(nwayMarkdown(cs)).toContain("| geomean | 0.632 | 1.000 |");
    expect(JSON.parse(nwayJson(cs)).geomeans.throughput[0]).toBeCloseTo(Math.sqrt(0.4), 10);
  });

  test("first one answer per build: the changes called with their cells and ratio range, the largest MDE of the rest, OOM and failures counted", () => {
    // 256 MB scatters more than 512 MB: its MDE is the larger.
    const wide = [100, 110, 90, 120, 80];
    const a = side("A", [...fakeCell(base, { ram: 512 }), ...fakeCell(wide, { ram: 256 })]);
    // B1: slower in both cells (0.8 and 0.5), twice the memory (PicoShare's RSS: primary; the working set: secondary).
    const b1 = side("B1", [...fakeCell(times(0.8), { ram: 512, peakMiB: 40 }), ...fakeCell(wide.map((t) => t * 0.5), { ram: 256, peakMiB: 40 })]);
    // B2: A's figures, labelled as a ref is; at 256 MB one run OOM-killed, one timed out and one test without a result.
    const b2 = side("B2", [...fakeCell(base, { ram: 512 }), ...fakeCell(wide, { ram: 256 }), fakeResult({ ram: 256, reason: "oom_killed" }), fakeResult({ ram: 256, reason: "timeout" })], {
      picoshare_version: "list-reads-bytes (5226b34404fd)",
      harness_errors: [{ ram_mb: 256, file_size: "100M" }],
    });
    const cs = buildComparisons(a, [b1, b2]);
    const [one, two] = cs.map(answerOf);
    expect(one.changes.map((c) => [c.key, c.family, c.label, c.cells, c.of])).toEqual([
      ["throughput", "primary", "slower", ["512MB/100M", "256MB/100M"], 2],
      ["picoshare_peak_rss", "primary", "more memory", ["512MB/100M", "256MB/100M"], 2],
      ["peak_memory", "secondary", "more memory", ["512MB/100M", "256MB/100M"], 2],
    ]);
    expect(one.changes[0].ratio[0]).toBeCloseTo(0.5, 10);
    expect(one.changes[0].ratio[1]).toBeCloseTo(0.8, 10);
    expect(one.unchanged).toEqual([]);
    expect(one.outcomes).toEqual({ a: { passed: 10, oom: 0, failed: 0 }, b: { passed: 10, oom: 0, failed: 0 } });
    // B2 changed nothing: each measured primary metric bounded by its largest MDE over the cells.
    expect(two.changes).toEqual([]);
    expect(two.unchanged.map((u) => u.key)).toEqual(["throughput", "picoshare_peak_rss"]);
    const largest = Math.max(...cs[1].cells.map((c) => c.throughput.mde!));
    expect(largest).toBeGreaterThan(Math.min(...cs[1].cells.map((c) => c.throughput.mde!))); // the cells differ: the largest is picked
    expect(two.unchanged[0]).toMatchObject({ metric: "throughput", mde: largest, cells: 2, too_few: 0 });
    expect(two.outcomes).toEqual({ a: { passed: 10, oom: 0, failed: 0 }, b: { passed: 10, oom: 1, failed: 2 } });

    const text = nwayText(cs);
    const lines = text.split("\n");
    const first = lines.findIndex((l) => l.startsWith("  B1 v1.5.4: "));
    expect(lines[first]).toBe(
      "  B1 v1.5.4: throughput slower in 2 of 2 cells (512MB/100M, 256MB/100M; B/A 0.500-0.800); " +
        "PicoShare peak RSS more memory in 2 of 2 cells (512MB/100M, 256MB/100M; B/A 2.000); " +
        "peak memory (working set) more memory in 2 of 2 cells (512MB/100M, 256MB/100M; B/A 2.000; secondary); " +
        "runs: 10 passed, 0 OOM-killed, 0 other failures (A: 10, 0, 0)",
    );
    expect(lines[first + 1]).toBe(
      `  B2 list-reads-bytes (5226b34404fd): no change larger than ${fmtPercent(largest)} on throughput, ${fmtPercent(two.unchanged[1].mde!)} on PicoShare peak RSS; ` +
        "runs: 10 passed, 1 OOM-killed, 2 other failures (A: 10, 0, 0)",
    );
    // The answers come before the tables, and the tables name B2 as the answer does.
    expect(first).toBeLessThan(lines.indexOf("throughput (MiB/s): ratio B/A per cell"));
    expect(text).toMatch(/^Cell +B1 v1\.5\.4 +B2 list-reads-bytes \(5226b34404fd\)$/m);
    const md = nwayMarkdown(cs);
    expect(md).toContain(`\n- ${lines[first + 1].trim()}\n`);
    expect(md.indexOf("- B1 v1.5.4: throughput slower")).toBeLessThan(md.indexOf("**throughput (MiB/s): ratio B/A per cell**"));
    const json = JSON.parse(nwayJson(cs));
    expect(json.answers.map((x: { build: string }) => x.build)).toEqual(["B1", "B2"]);
    expect(json.answers[1]).toMatchObject({ version: "list-reads-bytes (5226b34404fd)", outcomes: { b: { oom: 1, failed: 2 } }, text: lines[first + 1].trim() });
  });

  test("a cell with no change called shows its MDE, one with too few runs says so: the two never read alike", () => {
    const a = side("A", [...fakeCell(base, { ram: 512 }), ...fakeCell(base.slice(0, 2), { ram: 256 })]);
    const b = side("B1", [...fakeCell(base, { ram: 512 }), ...fakeCell(base.slice(0, 2), { ram: 256 })]);
    const [c] = buildComparisons(a, [b]);
    const [same, few] = c.cells.map((x) => x.throughput);
    expect([same.verdict, few.verdict]).toEqual(["same", "too_few"]);
    expect(nwayCell(same)).toBe(`1.000 ~ <${fmtPercent(same.mde!)}`);
    expect(nwayCell(few)).toBe("1.000 (too few)");
    expect(nwayCell({ ...same, mde: null })).toBe("1.000 ~ MDE >10x");
    expect(nwayCell(null)).toBe("-");
    const lines = nwayText([c, c]).split("\n");
    const at = lines.indexOf("throughput (MiB/s): ratio B/A per cell");
    expect(lines[at + 3]).toMatch(/^512MB\/100M +1\.000 ~ <[\d.]+ % +1\.000 ~ <[\d.]+ %$/);
    expect(lines[at + 4]).toMatch(/^256MB\/100M +1\.000 \(too few\) +1\.000 \(too few\)$/);
    // The answer bounds the cell it could test and counts the other.
    expect(answerOf(c).unchanged[0]).toMatchObject({ key: "throughput", mde: same.mde, cells: 1, too_few: 1 });
    expect(answerText(answerOf(c))).toContain(`no change larger than ${fmtPercent(same.mde!)} on throughput (1 cell too few)`);
    // A change in the only cell measured: "1 of 1 cell".
    const slower = buildComparisons(side("A", fakeCell(base)), [side("B1", fakeCell(times(0.8)))])[0];
    expect(answerText(answerOf(slower))).toStartWith("B1 v1.5.4: throughput slower in 1 of 1 cell (512MB/100M; B/A 0.800); no change larger than ");
  });

  test("the two-way notes, once where every build gives them, after the builds' names where only some do; live or stored alike", () => {
    // A scatters at 256 MB and alone ran 128 MB: every build's comparison says so.
    const a = side("A", [...fakeCell(base, { ram: 512 }), ...fakeCell([60, 80, 100, 80, 80], { ram: 256 }), ...fakeCell(base, { ram: 128 })]);
    // B1: A's very binary, and alone ran 2048 MB / 5G.
    const b1 = side("B1", [...fakeCell(base, { ram: 512 }), ...fakeCell(base, { ram: 256 }), ...fakeCell(base, { ram: 2048, size: "5G" })], { picoshare_sha256: "aa".repeat(32) });
    // B2: another CPU governor, and it scatters at 512 MB.
    const b2 = side("B2", [...fakeCell([60, 80, 100, 80, 80], { ram: 512 }), ...fakeCell(base, { ram: 256 })].map((r) => ({ ...r, host: { ...r.host, cpu_governor: "powersave" } })));
    const cs = buildComparisons(a, [b1, b2]);
    const text = nwayText(cs);
    const count = (s: string, part: string) => s.split(part).length - 1;
    expect(count(text, "128MB/100M was only run by A: not compared.")).toBe(1);
    expect(text).toContain("\n2048MB/5G was only run by B1: not compared.");
    expect(text).toContain("\nA and B1 are the same PicoShare binary (same SHA-256)");
    expect(text).not.toContain("A and B2 are the same");
    expect(text).toContain("\nWARNING: B2: the two sides ran in different environments: cpu_governor: performance vs powersave");
    expect(text).not.toContain("B1: the two sides");
    expect(text).toContain("WARNING: runs scatter more than the 10 % coefficient of variation allows");
    expect(count(text, "\n  A 256MB/100M: upload duration")).toBe(1);
    expect(count(text, "\n  B2 512MB/100M: upload duration")).toBe(1);
    expect(text).not.toMatch(/ B1 \d+MB\/\S+: upload duration/);
    const md = nwayMarkdown(cs);
    expect(md).toContain("> **Warning:** B2: the two sides ran in different environments: cpu_governor");
    expect(md).toContain("> - A 256MB/100M: upload duration");
    const sub = md.split("\n").find((l) => l.startsWith("<sub>")) ?? "";
    for (const n of ["128MB/100M was only run by A: not compared.", "2048MB/5G was only run by B1: not compared.", "A and B1 are the same PicoShare binary"]) expect(sub).toContain(n);
    // The warnings come before the tables a reviewer reads.
    expect(md.indexOf("> **Warning:**")).toBeLessThan(md.indexOf("**throughput (MiB/s): ratio B/A per cell**"));
  });
});

describe("the command line", () => {
  const refused = async (args: string[], message: RegExp) => {
    const ran = await runScript("compare", args);
    expect(ran.code).toBe(2);
    expect(ran.stdout).toBe("");
    expect(ran.stderr).toMatch(message);
  };

  test("bad usage: one ERROR line, exit 2, nothing on stdout", async () => {
    await refused([], /side A is missing: give --a PATH, --a-version V or --a-source DIR/);
    await refused(["--a", "/nonexistent/picoshare", "--b", "/bin/true", "--file-sizes", "1M", "--test-files", root], /test file .*1M\.bin is missing/);
    await refused(["--a-version", "v1.5.4", "--a", "/bin/true"], /one of --a PATH, --a-version V and --a-source DIR, not several/);
    await refused(["--a-ref", "main", "--b", "/bin/true"], /--a-ref needs --a-source DIR/);
    await refused(["--a-version", "latest", "--b", "/bin/true", "--file-sizes", "8M", "--test-files", join(root, "files")], /--a-version "latest" is not a release tag/);
    await refused(["--run-a", "1", "--run-b", "x"], /--run-b must be a run id/);
    await refused(["--run-a", "1", "--run-b", "2", "--iterations", "3"], /drop --iterations \(live options\)/);
    await refused(["--run-a", "1", "--run-b", "2", "--db", join(root, "none.db")], /no results log at/);
    await refused(["--run-a", "1", "--json", "--markdown"], /--json or --markdown, not both/);
    await refused(["--a", "x", "--b", "y", "--iterations", "0"], /--iterations must be a whole number above 0/);
    await refused(["--alpha", "0.7", "--run-a", "1", "--run-b", "2"], /--alpha must be below 0.5/);
  });

  test("a work dir on tmpfs is refused before any test, as run-test refuses it; run-test's flags are compare's", async () => {
    const mnt = mkdtempSync(join(root, "tmpfs-"));
    const m = $({ nothrow: true }).sync`mount -t tmpfs -o size=16m tmpfs ${mnt}`;
    if (m.exitCode !== 0) throw new Error(`mount tmpfs: ${m.stderr}`);
    try {
      const files = join(root, "tmpfs-files");
      mkdirSync(files, { recursive: true });
      await writeTestFile(testFilePath("1M", files), MiB);
      const bin = (await resolvePicoShareVersion("v1.5.4")).path;
      const results = join(root, "tmpfs-results");
      const args = ["--a", bin, "--b", bin, "--memory-limits", "256", "--file-sizes", "1M", "--test-files", files, "--results-dir", results, "--work-dir", mnt];
      await refused(args, /--work-dir \S+ is on tmpfs: .*--allow-memory-backed-work-dir/);
      expect(existsSync(results) ? readdirSync(results) : []).toEqual([]);
      // run-test's own flags, read by the same table: a bad --timeout is refused as run-test refuses it.
      await refused([...args, "--timeout", "soon"], /--timeout must be a number above 0/);
    } finally {
      $({ nothrow: true }).sync`umount ${mnt}`;
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  test("--help prints the usage with examples, exit 0; the gate's line names every metric of the table and every count", async () => {
    const ran = await runScript("compare", ["--help"]);
    expect(ran.code).toBe(0);
    expect(ran.stdout).toContain("Examples:");
    expect(ran.stdout).toContain("--run-a ID");
    const gate = /metrics: (.*); counts: (.*)$/.exec(ran.stdout.split("\n").find((l) => l.includes("metrics: ")) ?? "");
    expect(gate).not.toBeNull();
    expect(gate![1].split(", ")).toEqual(COMPARED_METRICS.map((m) => m.key));
    expect(gate![2].split(", ")).toEqual([...GATE_COUNTS]);
  });

  test("stored runs in different environments: the warning names the differences", async () => {
    const dbPath = join(root, "stored.db");
    const db = ResultsDb.open(dbPath);
    const start = (host: typeof HOST) =>
      db.startRun({ kind: "matrix", startedAt: "2026-01-29T12:00:00+00:00", backend: "local", resultsDir: null, picoshareVersion: "v1.5.4", picoshareSha256: "ab".repeat(32), options: {}, host });
    const a = start(HOST);
    const b = start({ ...HOST, cpu_governor: "powersave", data_disk_rotational: true });
    for (const t of [100, 101, 99, 100, 102]) db.addResult(fakeResult({ ram: 512, size: "100M", throughput: t, runId: a }), null);
    for (const t of [80, 81, 79, 80, 82]) db.addResult(fakeResult({ ram: 512, size: "100M", throughput: t, runId: b, host: { cpu_governor: "powersave" } }), null);
    db.addHarnessError({ run_id: b, timestamp: "2026-01-29T12:00:00+00:00", ram_mb: 512, file_size: "100M", exit_reason: "harness_error", error: "x", exit_code: 3, signal: null, log_file: null });
    db.close();
    const ran = await runScript("compare", ["--run-a", String(a), "--run-b", String(b), "--db", dbPath]);
    expect(ran.code).toBe(0);
    expect(ran.stderr).toMatch(/WARNING: runs \d+ and \d+ ran in different environments: cpu_governor: performance vs powersave .*data_disk_rotational: false vs true/);
    expect(ran.stdout).toContain("WARNING: the two sides ran in different environments");
    expect(ran.stdout).toMatch(/512  100M +5\/5 +0\.800 slower/);
    expect(ran.stdout).toMatch(/throughput \(MiB\/s\) +primary +5\/5 +100\.00 +80\.00 +0\.800 .* slower/);
    expect(ran.stdout).toMatch(/512  100M +5\/5 +0\/0 +0\/0 +0\/1/); // outcomes: one B test wrote no result
    // Both runs measured on one host: no host columns.
    expect(ran.stdout).not.toContain("Host A");
    expect(ran.stdout).not.toMatch(/every metric, changed first \(A on/);
    const missing = await runScript("compare", ["--run-a", String(a), "--run-b", "99", "--db", dbPath]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/run 99 is not in/);
  });
});

describe("cells at several concurrency levels", () => {
  test("stored x1 and x3 cells of one RAM and size stay apart, spelt .../x3 in the table, Markdown, JSON, notes, N-way and the gate", async () => {
    const dbPath = join(root, "levels.db");
    const db = ResultsDb.open(dbPath);
    const start = () =>
      db.startRun({ kind: "matrix", startedAt: "2026-01-29T12:00:00+00:00", backend: "local", resultsDir: null, picoshareVersion: "v1.5.4", picoshareSha256: "ab".repeat(32), options: {}, host: HOST });
    const add = (run: number, ram: number, concurrency: number, throughputs: number[]) => {
      for (const t of throughputs) db.addResult(fakeResult({ ram, size: "100M", concurrency, throughput: t, runId: run }), null);
    };
    const base = [100, 101, 99, 102, 98];
    const [a, b] = [start(), start()];
    add(a, 1024, 3, base);
    add(b, 1024, 3, [60, 80, 100, 80, 80]); // B scatters there
    add(a, 512, 1, base);
    add(b, 512, 1, base);
    add(a, 512, 3, base);
    add(b, 512, 3, base.map((t) => t * 0.8)); // only the x3 cell is slower: merged with x1 it would be 10 runs a side
    add(a, 256, 3, base); // only A
    db.close();
    const args = ["--run-a", String(a), "--run-b", String(b), "--db", dbPath];

    const text = await runScript("compare", args);
    expect(text.code).toBe(0);
    const lines = text.stdout.split("\n");
    const primary = lines.findIndex((l) => l.startsWith("RAM (MB)"));
    expect(lines[primary]).toMatch(/^RAM \(MB\) +File +At once +Runs A\/B +throughput/);
    expect(lines[primary + 2]).toMatch(/^ +1024 +100M +3 +5\/5 +0\.800 no difference larger than/);
    expect(lines[primary + 3]).toMatch(/^ +512 +100M +1 +5\/5 +1\.000 no difference/);
    expect(lines[primary + 4]).toMatch(/^ +512 +100M +3 +5\/5 +0\.800 slower/);
    expect(text.stdout).toContain("512MB/100M: every metric, changed first");
    expect(text.stdout).toContain("512MB/100M/x3: every metric, changed first");
    expect(text.stdout).toContain("256MB/100M/x3 was only run by A: not compared.");
    expect(text.stdout).toContain("\n  B 1024MB/100M/x3: upload duration");
    const outcomes = lines.indexOf("Outcomes (A/B)");
    expect(lines[outcomes + 1]).toMatch(/^RAM \(MB\) +File +At once +Passed/);
    expect(lines[outcomes + 5]).toMatch(/^ +512 +100M +3 +5\/5/);

    const md = (await runScript("compare", [...args, "--markdown"])).stdout;
    expect(md).toContain("| RAM (MB) | File | At once | Runs A/B | throughput |");
    expect(md).toContain("| ---: | --- | ---: | ---: |");
    expect(md).toMatch(/\| 512 \| 100M \| 3 \| 5\/5 \| 0\.800 slower \|/);
    expect(md).toContain("> - B 1024MB/100M/x3: upload duration");

    const json = JSON.parse((await runScript("compare", [...args, "--json"])).stdout);
    expect(json.cells.map((c: { ram_mb: number; concurrency: number }) => [c.ram_mb, c.concurrency])).toEqual([[1024, 3], [512, 1], [512, 3]]);
    expect(json.unmatched).toEqual([{ side: "a", ram_mb: 256, file_size: "100M", concurrency: 3 }]);
    expect(json.noise.map((n: { side: string; ram_mb: number; concurrency: number }) => [n.side, n.ram_mb, n.concurrency])).toEqual([["b", 1024, 3]]);

    const n = (await runScript("compare", ["--run-a", String(a), "--run-b", `${b},${b}`, "--db", dbPath])).stdout;
    expect(n).toMatch(/\n512MB\/100M +1\.000 ~ <[\d.]+ % +1\.000 ~ <[\d.]+ %\n512MB\/100M\/x3 +0\.800 slower +0\.800 slower\n/);

    const gate = await runScript("compare", [...args, "--fail-on", "throughput<-5%"]);
    expect(gate.code).toBe(3);
    expect(gate.stdout.split("\n").filter((l) => l.startsWith("BREACH"))).toEqual([
      expect.stringMatching(/^BREACH throughput<-5% in 512MB\/100M\/x3: throughput ratio 0\.800/),
    ]);
  });
});

describe("merged runs", () => {
  test("two merged runs compare; each cell side names the host that measured it, in the table, Markdown and JSON", async () => {
    const dbPath = join(root, "merged.db");
    // A: 512 MB on node-1, 256 MB on node-2. B: the same split, its shards on the other hosts; 512 MB 20 % faster.
    const a = await mergedRun(root, "a", dbPath, [
      { index: 1, count: 2, hostname: "node-1", cells: [{ ram: 512, size: "100M", throughputs: [100, 101, 99, 102, 98] }] },
      { index: 2, count: 2, hostname: "node-2", cells: [{ ram: 256, size: "100M", throughputs: [50, 51, 49, 52, 48] }] },
    ]);
    const b = await mergedRun(root, "b", dbPath, [
      { index: 1, count: 2, hostname: "node-2", cells: [{ ram: 512, size: "100M", throughputs: [120, 121, 119, 122, 118] }] },
      { index: 2, count: 2, hostname: "node-1", cells: [{ ram: 256, size: "100M", throughputs: [50, 51, 49, 52, 48] }] },
    ]);
    const args = ["--run-a", String(a), "--run-b", String(b), "--db", dbPath];
    const text = await runScript("compare", args);
    expect(text.code).toBe(0);
    const lines = text.stdout.split("\n");
    const primary = lines.findIndex((l) => l.startsWith("RAM (MB)"));
    expect(lines[primary]).toMatch(/^RAM \(MB\) +File +Host A +Host B +Runs A\/B +throughput/);
    expect(lines[primary + 2]).toMatch(/^ +512 +100M +node-1 +node-2 +5\/5 +1\.200 faster/);
    expect(lines[primary + 3]).toMatch(/^ +256 +100M +node-2 +node-1 +5\/5 +1\.000 no difference/);
    expect(text.stdout).toContain("512MB/100M (A on node-1, B on node-2): every metric, changed first");
    expect(text.stdout).toContain("256MB/100M (A on node-2, B on node-1): every metric, changed first");
    const outcomes = lines.indexOf("Outcomes (A/B)");
    expect(lines[outcomes + 1]).toMatch(/^RAM \(MB\) +File +Host A +Host B +Passed/);
    expect(lines[outcomes + 3]).toMatch(/^ +512 +100M +node-1 +node-2 +5\/5/);

    const md = (await runScript("compare", [...args, "--markdown"])).stdout;
    expect(md).toContain("| RAM (MB) | File | Host A | Host B | Runs A/B | throughput |");
    expect(md).toMatch(/\| 512 \| 100M \| node-1 \| node-2 \| 5\/5 \| 1\.200 faster \|/);
    expect(md).toContain("<details><summary>256MB/100M (A on node-2, B on node-1): every metric, changed first</summary>");

    const json = JSON.parse((await runScript("compare", [...args, "--json"])).stdout);
    expect(json.cells.map((c: { ram_mb: number; a: { hosts: string[] }; b: { hosts: string[] } }) => [c.ram_mb, c.a.hosts, c.b.hosts])).toEqual([
      [512, ["node-1"], ["node-2"]],
      [256, ["node-2"], ["node-1"]],
    ]);
  });

  test("several builds, one of them merged: a host column per build in every N-way table, Markdown too; the notes per build", async () => {
    const dbPath = join(root, "merged-n.db");
    const cells = (t512: number, t256: number) => [
      { ram: 512, size: "100M", throughputs: [100, 101, 99, 102, 98].map((t) => t * t512) },
      { ram: 256, size: "100M", throughputs: [50, 51, 49, 52, 48].map((t) => t * t256) },
    ];
    // A and B2 each on one host; B1 split over two. Each comparison names the hosts, B2's too, so the columns line up.
    const shards = (hosts: [string, string], [c512, c256]: ReturnType<typeof cells>) => [
      { index: 1, count: 2, hostname: hosts[0], cells: [c512] },
      { index: 2, count: 2, hostname: hosts[1], cells: [c256] },
    ];
    const a = await mergedRun(root, "na", dbPath, shards(["node-1", "node-1"], cells(1, 1)));
    const b1 = await mergedRun(root, "nb1", dbPath, shards(["node-2", "node-1"], cells(1.2, 1)));
    const b2 = await mergedRun(root, "nb2", dbPath, shards(["node-3", "node-3"], cells(1, 0.8)));
    const args = ["--run-a", String(a), "--run-b", `${b1},${b2}`, "--db", dbPath];
    const text = await runScript("compare", args);
    expect(text.code).toBe(0);
    const lines = text.stdout.split("\n");
    const at = lines.indexOf("throughput (MiB/s): ratio B/A per cell");
    expect(lines[at + 1]).toMatch(/^Cell +Host A +Host B1 +Host B2 +B1 v1\.5\.4 +B2 v1\.5\.4$/);
    expect(lines[at + 3]).toMatch(/^512MB\/100M +node-1 +node-2 +node-3 +1\.200 faster +1\.000 ~ <[\d.]+ %$/);
    expect(lines[at + 4]).toMatch(/^256MB\/100M +node-1 +node-1 +node-3 +1\.000 ~ <[\d.]+ % +0\.800 slower$/);
    expect(lines[at + 5]).toMatch(/^geomean +1\.095 +0\.894$/); // sqrt(1.2 x 1.0), sqrt(1.0 x 0.8)
    // Each build's answer first, its change named with its cell and ratio.
    expect(lines.find((l) => l.startsWith("  B1 v1.5.4: "))).toStartWith("  B1 v1.5.4: throughput faster in 1 of 2 cells (512MB/100M; B/A 1.200); ");
    expect(lines.find((l) => l.startsWith("  B2 v1.5.4: "))).toStartWith("  B2 v1.5.4: throughput slower in 1 of 2 cells (256MB/100M; B/A 0.800); ");
    const rss = lines.indexOf("PicoShare peak RSS (MiB): ratio B/A per cell");
    expect(lines[rss + 1]).toMatch(/^Cell +Host A +Host B1 +Host B2 /);
    const outcomes = lines.findIndex((l) => l.startsWith("Outcomes: "));
    expect(lines[outcomes + 1]).toMatch(/^Cell +Host A +Host B1 +Host B2 +A +B1 v1\.5\.4 +B2 v1\.5\.4$/);
    expect(lines[outcomes + 3]).toMatch(/^512MB\/100M +node-1 +node-2 +node-3 +5\/0\/0 +5\/0\/0 +5\/0\/0$/);
    // Every fixture run has the same binary: each build's A/A note, each once.
    expect(text.stdout).toContain("\nA and B1 are the same PicoShare binary");
    expect(text.stdout).toContain("\nA and B2 are the same PicoShare binary");
    expect(text.stdout).toContain("\nWARNING: B1: the two sides ran in different environments: hostname: node-1 vs node-2");
    expect(text.stderr).toMatch(new RegExp(`WARNING: runs ${a} and ${b2} ran in different environments: hostname: node-1 vs node-3`));

    const md = (await runScript("compare", [...args, "--markdown"])).stdout;
    expect(md).toContain("| Cell | Host A | Host B1 | Host B2 | B1 v1.5.4 | B2 v1.5.4 |");
    expect(md).toMatch(/\| 512MB\/100M \| node-1 \| node-2 \| node-3 \| 1\.200 faster \| 1\.000 ~ <[\d.]+ % \|/);
    expect(md).toContain("| geomean |  |  |  | 1.095 | 0.894 |");
    // Each build's own environment difference, after its name.
    expect(md).toContain("> **Warning:** B2: the two sides ran in different environments: hostname: node-1 vs node-3");
  });
});

describe("the gate: --fail-on", () => {
  // Stored runs with known values: a breach, or none, is certain by design.
  const dbPath = () => join(root, "gate.db");
  let ids: Record<string, number> = {};
  beforeAll(() => {
    const db = ResultsDb.open(dbPath());
    const start = () =>
      db.startRun({ kind: "matrix", startedAt: "2026-01-29T12:00:00+00:00", backend: "local", resultsDir: null, picoshareVersion: "v1.5.4", picoshareSha256: "ab".repeat(32), options: {}, host: HOST });
    const add = (run: number, throughputs: number[], extra: Parameters<typeof fakeResult>[0] = {}) => {
      for (const t of throughputs) db.addResult(fakeResult({ ram: 512, size: "100M", throughput: t, runId: run, ...extra }), null);
    };
    const base = [100, 101, 99, 100, 102, 98, 101, 100];
    ids = { a: start(), same: start(), slower: start(), oom: start(), few: start(), fewA: start(), failed: start(), flatA: start(), flatB: start() };
    add(ids.a, base);
    add(ids.same, base);
    add(ids.slower, base.map((t) => t * 0.8));
    add(ids.oom, base);
    db.addResult(fakeResult({ ram: 512, size: "100M", reason: "oom_killed", runId: ids.oom }), null);
    add(ids.few, [100, 101, 99]);
    add(ids.fewA, [100, 102, 98]);
    // B: one test timed out and one wrote no result, A has neither.
    add(ids.failed, base);
    db.addResult(fakeResult({ ram: 512, size: "100M", reason: "timeout", runId: ids.failed }), null);
    db.addHarnessError({ run_id: ids.failed, timestamp: "2026-01-29T12:00:00+00:00", ram_mb: 512, file_size: "100M", exit_reason: "harness_error", error: "x", exit_code: 3, signal: null, log_file: null });
    // Values that do not vary: the MDE is the resolution wherever the rank test can reach alpha at all.
    add(ids.flatA, [100, 100, 100, 100, 100]);
    add(ids.flatB, [100, 100, 100, 100, 100]);
    db.close();
  });
  const gate = (a: number, b: number, failOn: string, ...extra: string[]) =>
    runScript("compare", ["--run-a", String(a), "--run-b", String(b), "--db", dbPath(), "--fail-on", failOn, ...extra]);

  test("a 20 % slower B breaches throughput<-5%: exit 3, the breach named first on stdout and stderr", async () => {
    const ran = await gate(ids.a, ids.slower, "throughput<-5%,picoshare_peak_rss>+10%");
    expect(ran.code).toBe(3);
    const first = ran.stdout.split("\n")[0];
    expect(first).toMatch(/^BREACH throughput<-5% in 512MB\/100M: throughput ratio 0\.800 \(-20\.0 %\), Holm p (< 0\.001|0\.0\d+)$/);
    expect(ran.stderr).toContain(`ERROR: ${first}`);
    // The same data, a looser threshold: no breach.
    const loose = await gate(ids.a, ids.slower, "throughput<-25%");
    expect(loose.code).toBe(0);
    expect(loose.stdout.split("\n")[0]).toBe("Gate passed: no breach of throughput<-25%");
  });

  test("A against the same values: no breach on any threshold, exit 0; JSON carries the gate", async () => {
    const ran = await gate(ids.a, ids.same, "throughput<-5%,picoshare_peak_rss>+10%,oom>0,failures>0", "--json");
    expect(ran.code).toBe(0);
    const c = JSON.parse(ran.stdout);
    expect(c.gate).toMatchObject({ thresholds: ["throughput<-5%", "picoshare_peak_rss>+10%", "oom>0", "failures>0"], breaches: [] });
  });

  test("oom>0: B has an OOM kill that A has not", async () => {
    const ran = await gate(ids.a, ids.oom, "oom>0");
    expect(ran.code).toBe(3);
    expect(ran.stdout.split("\n")[0]).toBe("BREACH oom>0: B 1 OOM kills, A 0");
    expect((await gate(ids.a, ids.oom, "oom>1")).code).toBe(0);
  });

  test("failures>N: B has a failed test and a test without a result that A has not", async () => {
    const ran = await gate(ids.a, ids.failed, "failures>0");
    expect(ran.code).toBe(3);
    expect(ran.stdout.split("\n")[0]).toBe("BREACH failures>0: B 2 failures, A 0");
    expect(ran.stderr).toContain("ERROR: BREACH failures>0: B 2 failures, A 0");
    expect((await gate(ids.a, ids.failed, "failures>1")).code).toBe(3);
    expect((await gate(ids.a, ids.failed, "failures>2")).code).toBe(0);
    // The other way round, A failing more: no breach.
    expect((await gate(ids.failed, ids.a, "failures>0")).code).toBe(0);
  });

  test("the runs a side a blind threshold needs, worked out by hand: 6", async () => {
    // 5 against 5 flat runs at --alpha 0.01, two primary metrics measured (throughput, PicoShare's RSS): Holm's first step
    // is 0.005, and the smallest p of 5 against 5 is 2 / C(10,5) = 2/252 = 0.0079: no verdict, no MDE. 6 against 6
    // reach 2 / C(12,6) = 2/924 = 0.0022, and runs that do not vary see any change above the resolution
    // (0.1 MiB/s of 100: 0.1 %), so -5 % too: 6 a side.
    const ran = await gate(ids.flatA, ids.flatB, "throughput<-5%", "--alpha", "0.01", "--json");
    expect(ran.code).toBe(0);
    const blind = JSON.parse(ran.stdout).gate.blind;
    expect(blind).toEqual([{
      threshold: "throughput<-5%", cell: "512MB/100M", mde: null, runs_needed: 6,
      message: "512MB/100M: these runs cannot see -5.0 % throughput (they can see no change up to 10 x); need about 6 per side",
    }]);
    expect(ran.stderr).toContain("WARNING: NOTE throughput<-5%: 512MB/100M: these runs cannot see -5.0 % throughput (they can see no change up to 10 x); need about 6 per side");
  });

  test("one candidate exported as Bencher's BMF beside the comparison", async () => {
    const out = join(root, "one-bmf.json");
    const ran = await runScript("compare", ["--run-a", String(ids.a), "--run-b", String(ids.slower), "--db", dbPath(), "--export", "bmf", "--export-out", out]);
    expect(ran.code).toBe(0);
    expect(ran.stdout).toContain("PicoShare comparison: B against A");
    expect(ran.stderr).toContain("Exported B's figures as bmf to");
    const doc = JSON.parse(readFileSync(out, "utf8"));
    // One benchmark per cell, named with its spelling, not prefixed with a build.
    expect(Object.keys(doc)).toEqual(["512MB/100M"]);
    const measures = Object.entries(doc["512MB/100M"] as Record<string, { value: number; lower_value: number; upper_value: number }>);
    expect(measures.length).toBeGreaterThan(0);
    for (const [key, m] of measures) {
      expect(COMPARED_METRICS.map((x) => x.key)).toContain(key);
      expect(Object.keys(m).sort()).toEqual(["lower_value", "upper_value", "value"]);
      expect(m.lower_value).toBeLessThanOrEqual(m.value);
      expect(m.upper_value).toBeGreaterThanOrEqual(m.value);
    }
    // B's throughput: 0.8 x (98 99 100 100 100 101 101 102), median 80.
    expect(doc["512MB/100M"].throughput.value).toBe(80);
  });

  test("runs too few to see a threshold: a NOTE with the runs it would take, and no breach claimed", async () => {
    const ran = await gate(ids.fewA, ids.few, "throughput<-5%", "--json");
    expect(ran.code).toBe(0);
    const c = JSON.parse(ran.stdout);
    expect(c.gate.blind).toHaveLength(1);
    expect(c.gate.blind[0].message).toMatch(/^512MB\/100M: these runs cannot see -5\.0 % throughput \(they can see .*\); (need about \d+ per side|not even 128)/);
    expect(ran.stderr).toMatch(/WARNING: NOTE throughput<-5%: 512MB\/100M: these runs cannot see -5\.0 % throughput/);
  });

  test("several stored builds against one A: a table per metric with a column per build, a geomean row; the gate names the build", async () => {
    const ran = await gate(ids.a, ids.same, "throughput<-5%");
    expect(ran.code).toBe(0);
    const n = await runScript("compare", ["--run-a", String(ids.a), "--run-b", `${ids.same},${ids.slower}`, "--db", dbPath(), "--fail-on", "throughput<-5%"]);
    expect(n.code).toBe(3);
    const lines = n.stdout.split("\n");
    expect(lines[0]).toMatch(/^BREACH B2 throughput<-5% in 512MB\/100M: throughput ratio 0\.800/);
    expect(n.stdout).toContain("PicoShare comparison: 2 builds against A");
    const at = lines.indexOf("throughput (MiB/s): ratio B/A per cell");
    expect(at).toBeGreaterThan(0);
    expect(lines[at + 1]).toMatch(/^Cell +B1 v1\.5\.4 +B2 v1\.5\.4$/);
    expect(lines.slice(at + 2, at + 5).join("\n")).toMatch(/512MB\/100M +1\.000 ~ <[\d.]+ % +0\.800 slower\ngeomean +1\.000 +0\.800/);
    const json = JSON.parse((await runScript("compare", ["--run-a", String(ids.a), "--run-b", `${ids.same},${ids.slower}`, "--db", dbPath(), "--json"])).stdout);
    expect(json.format).toBe("picoshare-perf-comparison-n");
    expect(json.builds.map((b: { label: string }) => b.label)).toEqual(["B1", "B2"]);
    expect(json.geomeans.throughput.map((x: number) => Number(x.toFixed(3)))).toEqual([1, 0.8]);
    expect(json.comparisons[1].cells[0].throughput).toMatchObject({ verdict: "lower", label: "slower" });
    // The candidates' figures exported beside the comparison, each benchmark under its build.
    const bmf = join(root, "gate-bmf.json");
    const ex = await runScript("compare", ["--run-a", String(ids.a), "--run-b", `${ids.same},${ids.slower}`, "--db", dbPath(), "--export", "bmf", "--export-out", bmf]);
    expect(ex.code).toBe(0);
    const doc = JSON.parse(readFileSync(bmf, "utf8"));
    expect(Object.keys(doc).sort()).toEqual(["B1 512MB/100M", "B2 512MB/100M"]);
    expect(doc["B2 512MB/100M"].throughput.value).toBe(80);
    expect((await runScript("compare", ["--run-a", String(ids.a), "--run-b", String(ids.same), "--db", dbPath(), "--export", "bmf"])).code).toBe(2);
    const md = (await runScript("compare", ["--run-a", String(ids.a), "--run-b", `${ids.same},${ids.slower}`, "--db", dbPath(), "--markdown"])).stdout;
    expect(md).toContain("| Cell | B1 v1.5.4 | B2 v1.5.4 |");
    expect(md).toContain("| geomean | 1.000 | 0.800 |");
  });

  test("thresholds are checked strictly: one line, exit 2, nothing on stdout", async () => {
    for (const [text, message] of [
      ["throughput<+5%", /a fall needs a negative change/],
      ["throughput>-5%", /a rise needs a positive change/],
      ["speed<-5%", /unknown metric "speed" \(metrics: throughput, picoshare_peak_rss/],
      ["throughput<-5", /is not a threshold: write METRIC<-N% or METRIC>\+N%/],
      ["throughput<-5%,", /--fail-on has an empty item/],
      ["oom>0,oom>1", /--fail-on gives oom twice/],
      ["oom>-1", /is not a threshold/],
    ] as const) {
      const ran = await gate(ids.a, ids.same, text);
      expect(ran.code).toBe(2);
      expect(ran.stdout).toBe("");
      expect(ran.stderr.split("\n").filter((l) => l.includes("ERROR:"))).toHaveLength(1);
      expect(ran.stderr).toMatch(message);
    }
  });
});

describe("the gate before a live run", () => {
  // 70 130 80 120 90 110 100 100: mean 100, squares of deviations 2 x (900 + 400 + 100) = 2800, sd sqrt(2800 / 7) = 20: CV 20.0 %.
  const noisy = [70, 130, 80, 120, 90, 110, 100, 100];

  test("plannedBlindSpots: from a stored run's spread, the thresholds these runs could not see, in the NOTE's words", () => {
    const rs = fakeCell(noisy, { ram: 256 });
    const quiet = fakeCell([99, 101, 100, 100, 99.5, 100.5, 100, 100], { ram: 512 });
    const history = [{ cell: "256MB/100M", run_id: 7, results: rs }, { cell: "512MB/100M", run_id: 9, results: quiet }];
    const t = parseThresholds("throughput<-20%,cpu_seconds>+5%,oom>0");
    const spots = plannedBlindSpots(t, history, 8, 0.05);
    // Only the scattered cell; CPU seconds were not measured there (the result judges it), oom is a count.
    expect(spots.map((s) => [s.threshold, s.cell])).toEqual([["throughput<-20%", "256MB/100M"]]);
    // The stored values stand for both sides; throughput and PicoShare's RSS were measured: 0.05 / 2 (Holm's first step).
    const resolution = metricByKey("throughput").resolution(rs);
    const mde = minimumDetectableEffect(noisy, noisy, 100, 100, 0.025, { resolution, runs: [8, 8] })!.mde!;
    const runs = runsForMde(noisy, noisy, 100, 100, 0.025, 0.2, { resolution });
    expect(mde).toBeGreaterThan(0.2);
    expect(runs!).toBeGreaterThan(8);
    expect(spots[0]).toMatchObject({ mde, runs_needed: runs });
    expect(spots[0].message).toBe(
      `256MB/100M: these runs cannot see -20.0 % throughput (8 a side can see ${fmtPercent(mde)}, from the spread of run 7 there: CV 20.0 %); need about ${runs} per side`,
    );
    // As many runs as it says: nothing left to say.
    expect(plannedBlindSpots(t, history, runs!, 0.05)).toEqual([]);
  });

  test("live: before anything is built or run, from the newest stored run of each cell on the same backend; none: judged after the run", async () => {
    const files = join(root, "reach-files");
    mkdirSync(files, { recursive: true });
    // Only its size is checked before the refusal below: a sparse file will do.
    writeFileSync(testFilePath("100M", files), "");
    truncateSync(testFilePath("100M", files), 100 * MiB);
    const dbPath = join(root, "reach.db");
    const db = ResultsDb.open(dbPath);
    const start = (backend = "local") =>
      db.startRun({ kind: "matrix", startedAt: "2026-01-29T12:00:00+00:00", backend, resultsDir: null, picoshareVersion: "v1.5.4", picoshareSha256: "ab".repeat(32), options: {}, host: HOST });
    const add = (run: number, throughputs: number[]) => {
      for (const t of throughputs) db.addResult(fakeResult({ ram: 256, size: "100M", throughput: t, runId: run }), null);
    };
    add(start(), [55, 145, 70, 130, 85, 115, 100, 100]); // older: CV 30.0 %
    const newer = start();
    add(newer, noisy); // the one judged from: CV 20.0 %
    add(start(), [50, 150]); // newer still, but too few runs to judge a spread
    add(start("qemu"), [100, 100.5, 99.5, 100, 100]); // the newest, another backend
    db.close();
    const results = join(root, "reach-results");
    const args = [
      "--a", "/nonexistent/picoshare", "--b", "/bin/true", "--memory-limits", "256,512", "--file-sizes", "100M", "--test-files", files,
      "--results-dir", results, "--iterations", "8", "--fail-on", "throughput<-20%,oom>0",
    ];
    const ran = await runScript("compare", [...args, "--db", dbPath]);
    // Refused afterwards for another reason: nothing was built or run.
    expect(ran.code).toBe(2);
    const lines = ran.stderr.split("\n");
    const note = lines.findIndex((l) => l.includes("WARNING: Gate throughput<-20%: 256MB/100M: these runs cannot see -20.0 % throughput (8 a side can see "));
    expect(note).toBeGreaterThanOrEqual(0);
    expect(lines[note]).toMatch(new RegExp(`, from the spread of run ${newer} there: CV 20\\.0 %\\); need about \\d+ per side$`));
    expect(lines[note + 1]).toEndWith(
      `Gate: throughput<-20% judged from the spread of run ${newer} in 256MB/100M: 1 out of reach of 8 runs a side; 512MB/100M not stored before, judged from the runs' own spread after the run`,
    );
    expect(lines.findIndex((l) => l.includes("ERROR: PicoShare binary /nonexistent/picoshare (from --a) does not exist"))).toBeGreaterThan(note);
    expect(readdirSync(results).filter((n) => n.startsWith("compare-"))).toEqual([]);

    // No results log yet: one line says the result will judge it, and none is made for the asking.
    const fresh = join(root, "none-yet.db");
    const none = await runScript("compare", [...args, "--db", fresh]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/Gate: no stored run of these cells on the local backend in \S*none-yet\.db: whether 8 runs a side can see throughput<-20% is judged from their own spread, after the run\n/);
    expect(none.stderr).not.toContain("cannot see");
    expect(existsSync(fresh)).toBe(false);
  });
});

describe("a live A/A comparison of two real PicoShare builds", () => {
  // Only v1.5.4 can be built here, so B is the same build copied to a second
  // path: two files, one program. Nothing differs, so every cell must come out
  // "no significant difference". Any valid test calls a difference by chance
  // with probability alpha when there is none; with two metrics per cell at
  // the default 0.05 this test would fail about 1 run in 10. So it runs the
  // more conservative --alpha 0.001 with 10 runs per side (the fewest at which
  // 0.001 is reachable is 7): a false alarm fails it about 1 run in 500.
  let files: string;
  let bPath: string;
  beforeAll(async () => {
    const a = await resolvePicoShareVersion("v1.5.4");
    mkdirSync(join(root, "bin"), { recursive: true });
    bPath = join(root, "bin", "picoshare");
    copyFileSync(a.path, bPath);
    files = join(root, "files");
    mkdirSync(files, { recursive: true });
    await writeTestFile(testFilePath("8M", files), 8 * MiB);
  }, 600_000);

  test("interleaved runs, both sides stored as runs, every cell no significant difference", async () => {
    const results = join(root, "live");
    const work = join(root, "work");
    mkdirSync(work, { recursive: true });
    const dbPath = join(results, "results.db");
    const ran = await runScript("compare", [
      "--a-version", "v1.5.4", "--b", bPath,
      "--memory-limits", "256", "--file-sizes", "8M", "--iterations", "10", "--warmup", "1",
      "--alpha", "0.001", "--test-files", files, "--work-dir", work, "--results-dir", results, "--timeout", "60", "--json",
    ]);
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    const c = JSON.parse(ran.stdout);
    expect(c.a.picoshare_sha256).toBe(c.b.picoshare_sha256);
    expect(c.a.picoshare_path).not.toBe(c.b.picoshare_path);
    expect(c.method.alpha).toBe(0.001);
    expect(c.fingerprint_differences).toEqual([]);
    expect(c.cells).toHaveLength(1);
    for (const cell of c.cells) {
      expect(cell.a).toMatchObject({ runs: 10, passed: 10, failed: 0, oom: 0, harness_errors: 0 });
      expect(cell.b).toMatchObject({ runs: 10, passed: 10, failed: 0, oom: 0, harness_errors: 0 });
      for (const m of [cell.throughput, cell.peak_memory]) {
        expect(m.n_a).toBe(10);
        expect(m.test).toBe("exact");
        expect(m.p_value).toBeGreaterThan(0);
        // No difference larger than the smallest one these runs could find.
        expect(m.verdict).toBe("same");
        expect(m.mde).toBeGreaterThan(0);
        expect(m.label).toBe(`no difference larger than ${fmtPercent(m.mde!)}`);
      }
    }
    // Interleaved: the log shows A and B alternating, each going first in turn.
    const order = [...ran.stderr.matchAll(/\[1\/1 256MB\/8M\] ([AB]) (\d+)\/10:/g)].map((m) => m[1]);
    expect(order.join("")).toBe("AB" + "BAAB".repeat(4) + "BA");
    expect(ran.stderr).toContain("A warm-up 1/1");

    // Stored: both sides are runs of the log, paired; warm-up runs are not in it.
    const db = ResultsDb.open(dbPath);
    const [runB, runA] = db.listRuns(2);
    const a = db.pairedRun(runA.id)!;
    const b = db.pairedRun(runB.id)!;
    expect(a).toMatchObject({ kind: "compare-a", label: "A", paired_run_id: b.id, status: "complete" });
    expect(b).toMatchObject({ kind: "compare-b", label: "B", paired_run_id: a.id, status: "complete" });
    expect(db.results(a.id)).toHaveLength(10);
    expect(db.results(b.id)).toHaveLength(10);
    expect(db.results(null)).toHaveLength(0);
    db.close();
    const dir = readdirSync(results).find((n) => n.startsWith("compare-"))!;
    expect(readdirSync(join(results, dir)).sort()).toEqual(["a", "b", "compare.json", "warmup"]);
    expect(readdirSync(join(results, dir, "warmup")).filter((n) => n.startsWith("result-"))).toHaveLength(2);
    expect(readdirSync(work)).toEqual([]);

    // The stored comparison of the same two runs gives the same cells (same seed, same data).
    const again = await runScript("compare", ["--run-a", String(a.id), "--run-b", String(b.id), "--db", dbPath, "--alpha", "0.001", "--json"]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).cells).toEqual(c.cells);
    const md = await runScript("compare", ["--run-a", String(a.id), "--run-b", String(b.id), "--db", dbPath, "--markdown"]);
    expect(md.stdout).toContain("### PicoShare comparison: B against A");
    expect(md.stdout).toContain("A and B are the same PicoShare binary");
    expect(existsSync(join(results, dir, "a"))).toBe(true);
  });
});

describe("output through a pipe", () => {
  test("more than 128 KiB of compare --json comes through a pipe to `cat` whole, the same as written to a file", async () => {
    // Three stored runs of 9 cells, B against A and C against A: about 280 KB of JSON.
    const dbPath = join(root, "pipe.db");
    const db = ResultsDb.open(dbPath);
    const start = () =>
      db.startRun({ kind: "matrix", startedAt: "2026-01-29T12:00:00+00:00", backend: "local", resultsDir: null, picoshareVersion: "v1.5.4", picoshareSha256: "ab".repeat(32), options: {}, host: HOST });
    const runs = [start(), start(), start()];
    for (const [i, run] of runs.entries()) {
      for (const ram of [1024, 512, 256]) {
        for (const size of ["10M", "100M", "1G"]) for (const t of [100, 101, 99, 102, 98]) db.addResult(fakeResult({ ram, size, throughput: t * (1 - i * 0.1), runId: run }), null);
      }
    }
    db.close();
    const file = join(root, "pipe.json");
    const compare = `"$0" scripts/compare.ts --run-a ${runs[0]} --run-b ${runs[1]},${runs[2]} --db "$1" --json`;
    const sh = async (cmd: string) => {
      const p = Bun.spawn(["sh", "-c", cmd, BUN, dbPath, file], { cwd: join(import.meta.dir, ".."), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      if (code !== 0) throw new Error(`${cmd}: exit ${code}: ${stderr}`);
      return stdout;
    };
    await sh(`${compare} > "$2"`);
    const written = readFileSync(file, "utf8");
    expect(written.length).toBeGreaterThan(128 * 1024);
    // cat starts reading once the pipe is full, as a slower reader (jq) would: the rest must wait in compare, not be dropped.
    const piped = await sh(`${compare} | { sleep 0.5; cat; }`);
    expect(piped.length).toBe(written.length);
    expect(piped).toBe(written);
    expect(JSON.parse(piped).comparisons).toHaveLength(2);
  });
});
