// The verdict on synthetic samples: clearly different, clearly equal, too few.
import { describe, expect, test } from "bun:test";
import {
  DURATION, PEAK_MEMORY, SAME_LABEL, THROUGHPUT, TOO_FEW_LABEL, compareSamples, runsNeeded,
} from "../lib/stats/verdict.ts";

const A = [100, 101, 99, 100.5, 99.5, 100.2];

describe("clearly different", () => {
  test("B 30 % higher throughput: faster, better, p = 2 / C(12,6)", () => {
    const b = A.map((v) => v * 1.3);
    const m = compareSamples(A, b, THROUGHPUT);
    // Every B above every A: the most extreme of the C(12,6) = 924 splits, both tails: p = 2 / 924.
    expect(m.p_value).toBeCloseTo(2 / 924, 12);
    expect(m.test).toBe("exact");
    // median(A) = (100 + 100.2) / 2 = 100.1, median(B) = 1.3 x 100.1: ratio 1.3.
    expect(m.median_a).toBeCloseTo(100.1, 10);
    expect(m.ratio).toBeCloseTo(1.3, 10);
    expect(m.ci95![0]).toBeGreaterThan(1);
    expect(m).toMatchObject({ verdict: "higher", label: "faster", better: true, n_a: 6, n_b: 6 });
  });

  test("B 30 % lower throughput: slower, worse", () => {
    const m = compareSamples(A, A.map((v) => v * 0.7), THROUGHPUT);
    expect(m).toMatchObject({ verdict: "lower", label: "slower", better: false });
    expect(m.ci95![1]).toBeLessThan(1);
  });

  test("memory reads the other way: higher is more memory, and worse", () => {
    expect(compareSamples(A, A.map((v) => v * 1.3), PEAK_MEMORY)).toMatchObject({ label: "more memory", better: false });
    expect(compareSamples(A, A.map((v) => v * 0.8), PEAK_MEMORY)).toMatchObject({ label: "less memory", better: true });
    expect(compareSamples(A, A.map((v) => v * 0.8), DURATION)).toMatchObject({ label: "faster", better: true });
  });

  test("a small but consistent shift with little noise is still found", () => {
    const a = [50.1, 50.3, 49.9, 50.0, 50.2, 50.05, 49.95, 50.15];
    const b = a.map((v) => v + 1); // +2 %
    expect(compareSamples(a, b, THROUGHPUT).verdict).toBe("higher");
  });
});

describe("clearly equal", () => {
  test("two samples from the same values, interleaved: no significant difference", () => {
    // a = 10 12 14 16 18 take ranks 1 3 5 7 9 of the pooled 10..19: rank sum 25, U_a = 25 - 15 = 10,
    // centre 12.5: as central as 5 vs 5 gets bar one step.
    const m = compareSamples([10, 12, 14, 16, 18], [11, 13, 15, 17, 19], THROUGHPUT);
    expect(m.verdict).toBe("same");
    expect(m.label).toBe(SAME_LABEL);
    expect(m.better).toBeNull();
    expect(m.p_value!).toBeGreaterThan(0.5);
    expect(m.ci95![0]).toBeLessThan(1);
    expect(m.ci95![1]).toBeGreaterThan(1);
  });

  test("identical samples: p = 1", () => {
    const m = compareSamples(A, [...A], THROUGHPUT);
    expect(m).toMatchObject({ verdict: "same", p_value: 1, ratio: 1 });
  });

  test("a real difference drowned in noise is not called", () => {
    const a = [60, 140, 90, 120, 75, 110];
    const b = a.map((v) => v * 1.1);
    const m = compareSamples(a, b, THROUGHPUT);
    expect(m.verdict).toBe("same");
    expect(m.reason).toMatch(/not below 0.05/);
  });
});

describe("too few samples", () => {
  test("fewer than 3 measured runs on a side", () => {
    const m = compareSamples([100, 101], [130, 131, 129, 132], THROUGHPUT);
    expect(m).toMatchObject({ verdict: "too_few", label: TOO_FEW_LABEL, p_value: null, better: null });
    expect(m.reason).toContain("2 vs 4 measured runs");
    // The ratio is still shown, with its interval.
    expect(m.ratio).toBeCloseTo(130.5 / 100.5, 10);
  });

  test("3 vs 3, however far apart: the rank test cannot reach 0.05 (best p = 0.1)", () => {
    const m = compareSamples([1, 2, 3], [100, 200, 300], THROUGHPUT);
    expect(m.verdict).toBe("too_few");
    expect(m.reason).toContain("run at least 4 per side");
  });

  test("no successful run on a side (all OOM): too few, no ratio", () => {
    const m = compareSamples([], [100, 101, 102, 103], THROUGHPUT);
    expect(m).toMatchObject({ verdict: "too_few", ratio: null, ci95: null, median_a: null, n_a: 0 });
  });

  test("runs needed per side for a verdict at a given alpha", () => {
    // Smallest n with 2 / C(2n, n) < alpha: C(8,4) = 70 -> 0.029 < 0.05; C(10,5) = 252 -> 0.0079 < 0.01.
    expect(runsNeeded(0.05)).toBe(4);
    expect(runsNeeded(0.01)).toBe(5);
    expect(compareSamples([1, 2, 3, 4], [5, 6, 7, 8], THROUGHPUT, { alpha: 0.01 }).verdict).toBe("too_few");
  });
});

test("the same inputs and seed give the same verdict and interval", () => {
  const a = [10, 11, 9, 10.5, 12];
  const b = [11, 12, 10, 11.5, 13];
  expect(compareSamples(a, b, THROUGHPUT, { seed: 3 })).toEqual(compareSamples(a, b, THROUGHPUT, { seed: 3 }));
});
