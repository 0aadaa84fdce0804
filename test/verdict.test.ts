// The verdict on synthetic samples: clearly different, clearly equal, too few.
import { describe, expect, test } from "bun:test";
import {
  DURATION, PEAK_MEMORY, THROUGHPUT, TOO_FEW_LABEL, compareFamily, compareSamples, fmtPercent, runsNeeded,
} from "../lib/stats/verdict.ts";
import { criticalU, minimumDetectableEffect } from "../lib/stats/power.ts";
import { mannWhitneyU } from "../lib/stats/stats.ts";

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
    // Spread of about 20 % with 5 a side: only a large change could have been found.
    expect(m.mde!).toBeGreaterThan(0.3);
    expect(m.label).toBe(`no difference larger than ${fmtPercent(m.mde!)}`);
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

describe("the smallest detectable change", () => {
  test("critical U of the exact rank test: 5 vs 5 at 0.05 needs U >= 23 (P(U <= 2) = 4/252), at 0.0125 all 25 pairs", () => {
    expect(criticalU(5, 5, 0.05)).toBe(23);
    expect(criticalU(5, 5, 0.0125)).toBe(25);
    // 4 vs 4 at 0.05/4: the best p is 2/70 = 0.029; 3 vs 3 at 0.05: 0.1.
    expect(criticalU(4, 4, 0.0125)).toBeNull();
    expect(criticalU(3, 3, 0.05)).toBeNull();
    // The critical value agrees with the test itself: U = 23 gives p < 0.05, U = 22 does not.
    const a = [1, 2, 3, 4, 5];
    expect(mannWhitneyU(a, [3.5, 6, 7, 8, 9]).p).toBeLessThan(0.05); // U_B = 23
    expect(mannWhitneyU(a, [2.5, 3.5, 7, 8, 9]).p).toBeGreaterThanOrEqual(0.05); // U_B = 21
  });

  test("more spread, a larger MDE; more runs, a smaller one; a change twice the MDE is found", () => {
    const base = [1.0, 1.01, 0.99, 1.005, 0.995, 1.008, 0.992, 1.003];
    const wide = base.map((v) => 1 + (v - 1) * 5);
    const at = (x: number[], n: number) => minimumDetectableEffect(x.slice(0, n), x.slice(0, n), 1, 1, 0.05)!.mde!;
    expect(at(base, 8)).toBeLessThan(at(wide, 8));
    expect(at(base, 8)).toBeLessThan(at(base, 5));
    expect(at(wide, 8) / at(base, 8)).toBeCloseTo(5, 0);
    const mde = at(base, 8);
    expect(compareSamples(base, base.map((v) => v * (1 + 2 * mde)), THROUGHPUT).verdict).toBe("higher");
  });

  test("no spread at all: the measurement's resolution is the floor; too few runs: none", () => {
    const same = [100, 100, 100, 100, 100];
    expect(minimumDetectableEffect(same, same, 100, 100, 0.05, { resolution: 1 })).toEqual({ mde: 0.01, floor: true });
    expect(compareSamples(same, same, THROUGHPUT, { resolution: 1 }).label).toBe("no difference larger than 1.0 %");
    expect(minimumDetectableEffect([1, 2, 3], [1, 2, 3], 2, 2, 0.05)).toBeNull();
    expect(compareSamples([0, 0, 0, 0], [0, 0, 0, 0], THROUGHPUT).label).toBe("no difference (0 in every run)");
  });
});

describe("a family of metrics, corrected together (Holm)", () => {
  const A5 = [100, 101, 99, 100.5, 99.5];
  const far = A5.map((v) => v * 1.3); // p = 2/252 = 0.0079
  const near = [99.7, 100.2, 101.5, 102, 103]; // U_B = 22: p = 0.0556 alone
  test("the k-th smallest p is multiplied by (m - k); a verdict only below alpha after that", () => {
    const out = compareFamily(
      [{ a: A5, b: far, spec: THROUGHPUT, key: "t" }, { a: A5, b: far, spec: PEAK_MEMORY, key: "m" }, { a: A5, b: near, spec: DURATION, key: "d" }],
      "primary",
    );
    const p = 2 / 252;
    expect(out[0].p_adjusted).toBeCloseTo(3 * p, 10);
    expect(out[1].p_adjusted).toBeCloseTo(3 * p, 10); // max(3p, 2p)
    expect(out[2].p_adjusted).toBeCloseTo(Math.max(3 * p, out[2].p_value!), 10);
    expect(out.map((m) => m.verdict)).toEqual(["higher", "higher", "same"]);
    // The MDE of a family member is computed at alpha / m, Holm's strictest step.
    expect(out[0].mde_alpha).toBeCloseTo(0.05 / 3, 10);
    expect(out[0].family).toBe("primary");
  });

  test("4 primary metrics with 4 runs a side: the best p (2/70) is above 0.05/4, so no verdict is reachable", () => {
    const a = [1, 2, 3, 4];
    const b = [10, 20, 30, 40];
    const out = compareFamily([0, 1, 2, 3].map(() => ({ a, b, spec: THROUGHPUT })), "primary");
    for (const m of out) {
      expect(m.verdict).toBe("too_few");
      expect(m.reason).toContain("alpha 0.05 over 4 primary metrics");
      expect(m.reason).toContain("run at least 5 per side");
    }
    // Alone, the same samples are called.
    expect(compareSamples(a, b, THROUGHPUT).verdict).toBe("higher");
  });

  test("a metric not measured on either side is named so and does not count in the family", () => {
    const out = compareFamily([{ a: A5, b: far, spec: THROUGHPUT }, { a: [], b: [], spec: PEAK_MEMORY }], "primary");
    expect(out[1]).toMatchObject({ verdict: "too_few", label: "not measured" });
    expect(out[0].p_adjusted).toBeCloseTo(out[0].p_value!, 10);
  });
});

test("the same inputs and seed give the same verdict and interval", () => {
  const a = [10, 11, 9, 10.5, 12];
  const b = [11, 12, 10, 11.5, 13];
  expect(compareSamples(a, b, THROUGHPUT, { seed: 3 })).toEqual(compareSamples(a, b, THROUGHPUT, { seed: 3 }));
});
