// The statistics against values worked out by hand for small fixed samples.
import { describe, expect, test } from "bun:test";
import { combinations } from "simple-statistics";
import {
  binomial, bootstrapCI, bootstrapRatioCI, mannWhitneyU, minAttainableP, seededRandom, summarize,
} from "../lib/stats/stats.ts";
import { cellName, cvWarning, groupByCell, likelyCauses, noisyMetrics, parseCellName, summarizeCell, summarizeCells } from "../lib/stats/cells.ts";
import { MiB } from "../lib/core/sizes.ts";
import { fakeCell, fakeResult } from "./helpers/results.ts";

describe("summarize", () => {
  test("eight values", () => {
    // x = 2 4 4 4 5 5 7 9 (sorted), n = 8
    // median = (4 + 5) / 2 = 4.5          mean = 40 / 8 = 5
    // deviations -3 -1 -1 -1 0 0 2 4, squares 9 1 1 1 0 0 4 16, sum 32
    // sample variance = 32 / 7 = 4.5714..., stddev = sqrt(4.5714) = 2.13809
    // cv = 2.13809 / 5 = 0.42762            min 2, max 9
    const s = summarize([5, 2, 9, 4, 4, 7, 4, 5]);
    expect(s.n).toBe(8);
    expect(s.median).toBe(4.5);
    expect(s.mean).toBe(5);
    expect(s.stddev!).toBeCloseTo(2.13809, 5);
    expect(s.cv!).toBeCloseTo(0.42762, 5);
    expect(s.min).toBe(2);
    expect(s.max).toBe(9);
    const [lo, hi] = s.ci95!;
    expect(lo).toBeGreaterThanOrEqual(2);
    expect(hi).toBeLessThanOrEqual(9);
    expect(lo).toBeLessThanOrEqual(4.5);
    expect(hi).toBeGreaterThanOrEqual(4.5);
  });

  test("four values: simple-statistics' own coefficient-of-variation example", () => {
    // x = 1 2 3 4: median 2.5, mean 2.5
    // squares of deviations 2.25 0.25 0.25 2.25 = 5, variance 5 / 3, stddev 1.29099, cv 0.51640
    const s = summarize([1, 2, 3, 4]);
    expect(s.median).toBe(2.5);
    expect(s.stddev!).toBeCloseTo(1.29099, 5);
    expect(s.cv!).toBeCloseTo(0.5164, 4);
  });

  test("one value has no spread and no interval; none has nothing", () => {
    expect(summarize([3])).toEqual({ n: 1, median: 3, mean: 3, stddev: null, cv: null, min: 3, max: 3, ci95: null });
    expect(summarize([])).toEqual({ n: 0, median: null, mean: null, stddev: null, cv: null, min: null, max: null, ci95: null });
  });

  test("a zero mean gives no coefficient of variation rather than Infinity", () => {
    expect(summarize([-1, 1]).cv).toBeNull();
  });

  test("non-finite values are refused", () => {
    expect(() => summarize([1, Number.NaN])).toThrow(/finite/);
  });
});

describe("bootstrap", () => {
  test("the same seed gives the same interval; the seeded source is uniform on [0, 1)", () => {
    const x = [12.1, 11.8, 12.6, 13.0, 11.5, 12.2, 12.9];
    expect(bootstrapCI(x, undefined, { seed: 7 })).toEqual(bootstrapCI(x, undefined, { seed: 7 })!);
    const r = seededRandom(42);
    const draws = Array.from({ length: 20_000 }, r);
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThan(1);
    expect(draws.reduce((s, v) => s + v, 0) / draws.length).toBeCloseTo(0.5, 1);
    expect(seededRandom(42)()).toBe(draws[0]);
  });

  test("two values: the median of a resample is 1, 2 or 3", () => {
    // x = 1 3. A resample of 2 is (1,1) p 1/4 -> median 1, (1,3)/(3,1) p 1/2 -> 2, (3,3) p 1/4 -> 3.
    // The 2.5 % quantile is 1 and the 97.5 % quantile is 3 (each tail holds 25 %).
    expect(bootstrapCI([1, 3])).toEqual([1, 3]);
  });

  test("constant samples have a zero-width interval; the ratio of two constants is exact", () => {
    expect(bootstrapCI([5, 5, 5])).toEqual([5, 5]);
    // median(b) / median(a) = 6 / 4 = 1.5 in every resample.
    expect(bootstrapRatioCI([4, 4, 4], [6, 6, 6])).toEqual([1.5, 1.5]);
  });

  test("the ratio's interval covers the ratio of the medians", () => {
    const a = [100, 104, 98, 101, 99, 103];
    const b = a.map((v) => v * 1.2);
    const [lo, hi] = bootstrapRatioCI(a, b)!;
    expect(lo).toBeLessThanOrEqual(1.2);
    expect(hi).toBeGreaterThanOrEqual(1.2);
    expect(lo).toBeGreaterThan(1.1);
    expect(bootstrapRatioCI([1], [2, 3])).toBeNull();
  });
});

describe("Mann-Whitney U", () => {
  test("3 vs 3, fully separated", () => {
    // Pooled ranks: a = 1 2 3, b = 4 5 6. Rank sum of a = 6, U_a = 6 - 3*4/2 = 0, U_b = 9.
    // All C(6,3) = 20 splits are equally likely; only {1,2,3} and {4,5,6} are this extreme:
    // p = 2 / 20 = 0.1.
    const r = mannWhitneyU([1, 4, 8], [9, 12, 15]);
    expect(r).toEqual({ uA: 0, uB: 9, rankSumA: 6, p: 0.1, method: "exact" });
  });

  test("4 vs 4, fully separated: p = 2 / C(8,4) = 2 / 70", () => {
    expect(mannWhitneyU([5, 6, 7, 8], [1, 2, 3, 4]).p).toBeCloseTo(2 / 70, 12);
  });

  test("ties get mid-ranks and the exact distribution counts them", () => {
    // a = 1 2 2, b = 2 3 4. Pooled: 1(a) 2(a) 2(a) 2(b) 3(b) 4(b); the three 2s share ranks 2..4 -> 3.
    // Ranks: a = 1 3 3 (sum 7), b = 3 5 6. U_a = 7 - 6 = 1, U_b = 8.
    // Null: choose 3 of the ranks {1,3,3,3,5,6}; 20 subsets. Centre = 3 * 7 / 2 = 10.5, observed |7 - 10.5| = 3.5.
    // Sums: {1,3,3} x3 = 7 (extreme), {1,3,5} x3 = 9, {1,3,6} x3 = 10, {1,5,6} = 12, {3,3,3} = 9,
    //       {3,3,5} x3 = 11, {3,3,6} x3 = 12, {3,5,6} x3 = 14 (extreme). p = 6 / 20 = 0.3.
    const r = mannWhitneyU([1, 2, 2], [2, 3, 4]);
    expect(r.uA).toBe(1);
    expect(r.uB).toBe(8);
    expect(r.p).toBeCloseTo(0.3, 12);
  });

  test("the exact p-value matches brute-force enumeration of every split", () => {
    const a = [3.1, 2.2, 5.0, 2.2, 4.4];
    const b = [4.4, 6.1, 5.0, 7.3, 3.9, 6.6];
    const pooled = [...a, ...b];
    // Rank sum of every way to pick |a| of the pooled values (values as ranks via wilcoxon's own ranking).
    const rankSum = (idx: number[]) => mannWhitneyU(idx.map((i) => pooled[i]), pooled.filter((_, i) => !idx.includes(i))).rankSumA;
    const all = combinations([...pooled.keys()], a.length).map(rankSum);
    const centre = (a.length * (pooled.length + 1)) / 2;
    const observed = Math.abs(mannWhitneyU(a, b).rankSumA - centre);
    const brute = all.filter((s) => Math.abs(s - centre) >= observed - 1e-9).length / all.length;
    expect(mannWhitneyU(a, b).p).toBeCloseTo(brute, 12);
  });

  test("above 50 pooled values: the normal approximation with continuity correction", () => {
    // a = 2 4 ... 60 (30 values), b = 1 3 ... 59. Rank sum of a = 2 * (1 + ... + 30) = 930,
    // U_a = 930 - 30*31/2 = 465; mean 30*30/2 = 450; variance 30*30*61/12 = 4575 (no ties);
    // z = (|465 - 450| - 0.5) / sqrt(4575) = 14.5 / 67.6387 = 0.214374; p = 2 (1 - Phi(z)) = 0.830255.
    const a = Array.from({ length: 30 }, (_, i) => 2 * (i + 1));
    const b = a.map((v) => v - 1);
    const r = mannWhitneyU(a, b);
    expect(r.method).toBe("normal");
    expect(r.uA).toBe(465);
    expect(r.p).toBeCloseTo(0.830255, 5);
  });

  test("all values equal: no evidence at all", () => {
    expect(mannWhitneyU([2, 2, 2, 2], [2, 2, 2, 2]).p).toBe(1);
  });

  test("binomial and the smallest attainable p-value", () => {
    expect(binomial(10, 3)).toBe(120);
    expect(binomial(20, 10)).toBe(184756);
    expect(minAttainableP(3, 3)).toBeCloseTo(0.1, 12);
    expect(minAttainableP(4, 4)).toBeCloseTo(2 / 70, 12);
    expect(minAttainableP(3, 5)).toBeCloseTo(2 / 56, 12);
  });
});

describe("per-cell summary over test results", () => {
  test("counts every outcome; statistics over the successful runs only", () => {
    const results = [
      ...fakeCell([100, 110, 90], { ram: 256, size: "100M", peakMiB: 30 }),
      fakeResult({ ram: 256, size: "100M", reason: "oom_killed", peakMiB: 256 }),
      fakeResult({ ram: 256, size: "100M", reason: "timeout" }),
    ];
    const s = summarizeCell(results, { harnessErrors: 1 });
    expect(s).toMatchObject({ ram_mb: 256, file_size: "100M", runs: 5, passed: 3, failed: 2, oom: 1, harness_errors: 1 });
    expect(s.failures).toEqual({ oom_killed: 1, timeout: 1 });
    // throughput 90 100 110: median 100, mean 100, sd = sqrt((100 + 0 + 100) / 2) = 10, cv 0.1
    expect(s.throughput_mbps).toMatchObject({ n: 3, median: 100, mean: 100, min: 90, max: 110 });
    expect(s.throughput_mbps.stddev).toBeCloseTo(10, 10);
    expect(s.peak_memory_bytes.median).toBe(30 * MiB);
    // duration = 100 MiB / throughput: 1.00, 0.91, 1.11 s
    expect(s.duration_seconds.median).toBe(1);
  });

  test("a CV above the threshold is flagged with its likely causes; exactly at it is not", () => {
    // 90 100 110: cv = 10 / 100 = 0.10, not above 10 %.
    expect(summarizeCell(fakeCell([90, 100, 110])).warnings).toEqual([]);
    // 80 100 120: sd = 20, cv = 0.20.
    const s = summarizeCell(fakeCell([80, 100, 120], { host: { cpu_governor: "powersave", data_disk_rotational: true } }));
    expect(s.noisy.map((m) => m.metric)).toEqual(["duration_seconds", "throughput_mbps"]);
    expect(s.noisy[1].cv).toBeCloseTo(0.2, 10);
    expect(s.warnings).toHaveLength(1);
    const w = s.warnings[0];
    expect(w).toContain("512MB/100M");
    expect(w).toContain("throughput 20.0 %");
    for (const cause of ["page cache", "first-iteration", "rotational disk", 'governor "powersave"', "noisy neighbours", "leftover temp files"]) {
      expect(w).toContain(cause);
    }
    // A higher threshold keeps quiet.
    expect(summarizeCell(fakeCell([80, 100, 120]), { cvThreshold: 0.25 }).warnings).toEqual([]);
  });

  test("fewer than 3 runs are not judged for scatter", () => {
    const s = summarizeCell(fakeCell([50, 150]));
    expect(s.throughput_mbps.cv!).toBeGreaterThan(0.5);
    expect(noisyMetrics(s)).toEqual([]);
    expect(cvWarning("x", [])).toBeNull();
  });

  test("short uploads with few memory samples name the sampling as a cause", () => {
    expect(likelyCauses("peak_memory_bytes", undefined, [3, 40]).at(-1)).toContain("as few as 3");
    expect(likelyCauses("throughput_mbps", undefined, [3]).join(" ")).not.toContain("memory samples");
  });

  test("cells are grouped by RAM (largest first) and size in bytes (smallest first)", () => {
    const results = [
      fakeResult({ ram: 256, size: "1G" }),
      fakeResult({ ram: 1024, size: "1G" }),
      fakeResult({ ram: 256, size: "100M" }),
      fakeResult({ ram: 256, size: "1024M" }), // the same file as 1G
    ];
    expect(groupByCell(results).map((g) => `${g[0].ram_mb} ${g[0].file_size} x${g.length}`)).toEqual(["1024 1G x1", "256 100M x1", "256 1G x2"]);
    expect(summarizeCells(results)).toHaveLength(3);
    expect(() => summarizeCell([fakeResult({ ram: 256 }), fakeResult({ ram: 512 })])).toThrow(/different cells/);
  });
});

describe("a cell's one spelling", () => {
  test("RAM and size, and the concurrency above 1; read back as written", () => {
    expect(cellName({ ram_mb: 256, file_size: "1G" })).toBe("256MB/1G");
    expect(cellName({ ram_mb: 256, file_size: "1G", concurrency: 1 })).toBe("256MB/1G");
    expect(cellName({ ram_mb: 256, file_size: "1G", concurrency: 3 })).toBe("256MB/1G/x3");
    for (const text of ["256MB/1G", "2048MB/100M/x3", "64MB/512K"]) expect(cellName(parseCellName(text))).toBe(text);
    expect(parseCellName("256MB/1G/x3")).toEqual({ ram_mb: 256, file_size: "1G", concurrency: 3 });
  });

  test("anything else is refused with the form to use", () => {
    for (const bad of ["256 1G", "256MB/1G/3", "256MB/1G/x0", "0MB/1G", "256MB/"]) {
      expect(() => parseCellName(bad)).toThrow(/write RAM, size and \(above 1\) concurrency as 256MB\/1G or 256MB\/1G\/x3/);
    }
  });

  test("results of the same RAM and size at two concurrencies are two cells", () => {
    const one = fakeResult({ ram: 256, size: "8M" });
    const three = fakeResult({ ram: 256, size: "8M", concurrency: 3 });
    expect(groupByCell([one, three, one]).map((g) => [g[0].concurrency, g.length])).toEqual([[1, 2], [3, 1]]);
  });
});
