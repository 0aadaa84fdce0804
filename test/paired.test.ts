// The paired analysis of a live comparison's rounds: the signed-rank test's
// exact p-values, its critical values, the paired verdict where pairing
// takes out a drift both sides shared, and which comparisons get it.
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  criticalW, logRatios, minAttainablePairedP, pairByRound, pairedMde, pairsNeeded, roundsForMde, wilcoxonSignedRank,
} from "../lib/stats/paired.ts";
import { RUNS_CANDIDATES, runsForMde } from "../lib/stats/power.ts";
import { THROUGHPUT, compareFamily } from "../lib/stats/verdict.ts";
import { buildComparison, type SideInput } from "../lib/stats/comparison.ts";
import { runFingerprint } from "../lib/stats/fingerprint.ts";
import { evaluateGate, parseThresholds } from "../lib/stats/gate.ts";
import type { TestResult } from "../lib/upload/result.ts";
import { ResultsDb } from "../lib/store/results-db.ts";
import { resolvePicoShareVersion } from "../lib/upload/picoshare.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import { HOST, fakeResult } from "./helpers/results.ts";
import { runScript } from "./helpers/run.ts";

/** Every one of the 2^n sign assignments of |d|'s midranks, counted: the exact two-sided p-value, by brute force. */
function bruteForceP(d: number[]): number {
  const nz = d.filter((v) => v !== 0);
  const abs = nz.map(Math.abs);
  const rank = abs.map((v) => abs.filter((w) => w < v).length + (abs.filter((w) => w === v).length + 1) / 2);
  const total = rank.reduce((s, r) => s + r, 0);
  const w = nz.reduce((s, v, i) => (v > 0 ? s + rank[i] : s), 0);
  let extreme = 0;
  for (let mask = 0; mask < 2 ** nz.length; mask++) {
    const s = rank.reduce((acc, r, i) => ((mask >> i) & 1 ? acc + r : acc), 0);
    if (Math.abs(s - total / 2) >= Math.abs(w - total / 2) - 1e-9) extreme++;
  }
  return extreme / 2 ** nz.length;
}

describe("the Wilcoxon signed-rank test", () => {
  test("R's paired example (Hollander & Wolfe, depression scores): V = 40, p = 0.03906", () => {
    // wilcox.test(x, y, paired = TRUE) in R: V = 40, p-value = 0.03906. By hand: the differences
    // 0.952 -0.147 1.022 0.430 0.620 0.590 0.490 -0.080 0.010 rank |d| 8 3 9 4 7 6 5 2 1; the negative
    // ones hold ranks 3 and 2, so W- = 5 and W+ = 45 - 5 = 40. Subsets of 1..9 summing to at most 5:
    // {}, {1}, {2}, {3}, {1,2}, {4}, {1,3}, {5}, {1,4}, {2,3}: 10 of 512, both tails: 20 / 512 = 0.0390625.
    const x = [1.83, 0.5, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.3];
    const y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29];
    const r = wilcoxonSignedRank(x.map((v, i) => v - y[i]));
    expect(r).toMatchObject({ n: 9, method: "exact" });
    expect(r.wPlus).toBeCloseTo(40, 10);
    expect(r.wMinus).toBeCloseTo(5, 10);
    expect(r.p).toBeCloseTo(20 / 512, 12);
  });

  test("small n: all of one sign gives 2 / 2^n; one small negative among 6 gives 4 / 64 (R: V = 20, p = 0.0625)", () => {
    // wilcox.test(1:5): V = 15, p-value = 0.0625 (= 2 / 32).
    expect(wilcoxonSignedRank([1, 2, 3, 4, 5]).p).toBeCloseTo(2 / 32, 12);
    expect(wilcoxonSignedRank([-1, -2, -3, -4, -5, -6]).p).toBeCloseTo(2 / 64, 12);
    // wilcox.test(c(-1, 2:6)): V = 20; W- <= 1 in 2 of 64 assignments ({} and {1}), both tails 4 / 64.
    const r = wilcoxonSignedRank([-1, 2, 3, 4, 5, 6]);
    expect(r.wPlus).toBe(20);
    expect(r.p).toBeCloseTo(4 / 64, 12);
    // Zeros are dropped (Wilcoxon's rule): 0, 1, 2, 3 is the test of 1, 2, 3: 2 / 8.
    expect(wilcoxonSignedRank([0, 1, 2, 3])).toMatchObject({ n: 3, p: 0.25 });
    expect(wilcoxonSignedRank([0, 0]).p).toBe(1);
  });

  test("ties: the exact p-value over the midranks equals every sign assignment counted", () => {
    for (const d of [[1, 1, 2, -2, 3, 3, 3, -1], [0.5, -0.5, 0.5, 0.5, 1, 2, -2, 2, 4], [2, 2, 2, 2, -2, 2]]) {
      expect(wilcoxonSignedRank(d).p).toBeCloseTo(bruteForceP(d), 12);
    }
  });

  test("above 50 differences the normal approximation with continuity correction (R: V = 1620, p = 2.146e-07)", () => {
    // wilcox.test(c(-(1:20), 21:60), exact = FALSE): W+ = 21 + ... + 60 = 1620, mean 60 x 61 / 4 = 915,
    // sd = sqrt(60 x 61 x 121 / 24) = 135.84, z = (705 - 0.5) / 135.84 = 5.186: p = 2.146e-7.
    const r = wilcoxonSignedRank([...Array.from({ length: 20 }, (_, i) => -(i + 1)), ...Array.from({ length: 40 }, (_, i) => i + 21)]);
    expect(r).toMatchObject({ n: 60, wPlus: 1620, method: "normal" });
    expect(r.p).toBeCloseTo(2.1457e-7, 10);
    expect(wilcoxonSignedRank(Array.from({ length: 50 }, (_, i) => i + 1)).method).toBe("exact");
  });

  test("critical values and the pairs a family needs, by hand", () => {
    // n = 8: W- <= 3 in 5 of 256 assignments ({}, {1}, {2}, {3}, {1,2}): two-sided 10 / 256 = 0.039 < 0.05;
    // W- <= 4 adds {4}, {1,3}: 14 / 256 = 0.055. So W+ >= 36 - 3 = 33 at 0.05.
    expect(criticalW(8, 0.05)).toBe(33);
    // At 0.05 / 4 (Holm's first step over the 4 primary metrics) only all 8 of one sign: 2 / 256 = 0.0078.
    expect(criticalW(8, 0.0125)).toBe(36);
    expect(criticalW(7, 0.0125)).toBeNull(); // 2 / 128 = 0.0156
    expect(pairsNeeded(0.0125)).toBe(8);
    expect(pairsNeeded(0.05)).toBe(6); // 2 / 32 = 0.0625, 2 / 64 = 0.031
    expect(minAttainablePairedP(8)).toBeCloseTo(2 / 256, 12);
  });
});

// Eight rounds of a host that slows down from 140 to 60 MiB/s over the run:
// each round's B is 4 % above its A (give or take 0.5 %), but the drift
// spreads both sides far more than that.
const DRIFT = [140, 128, 117, 106, 95, 84, 72, 60];
const WOBBLE = [0.003, -0.004, 0.001, 0.005, -0.002, 0.0, -0.005, 0.002];
const A_DRIFT = DRIFT.map((d, i) => d * (1 + WOBBLE[(i + 3) % 8]));
const B_DRIFT = DRIFT.map((d, i) => d * 1.04 * (1 + WOBBLE[i]));

describe("the paired verdict", () => {
  test("a shared drift: unpaired it is no difference, paired by round B is faster", () => {
    const [unpaired] = compareFamily([{ a: A_DRIFT, b: B_DRIFT, spec: THROUGHPUT }], null);
    expect(unpaired).toMatchObject({ analysis: "unpaired", pairs: null, verdict: "same", mde_by_analysis: null });
    const pairs = pairByRound(
      A_DRIFT.map((v, i) => ({ iteration: i + 2, v })), B_DRIFT.map((v, i) => ({ iteration: i + 2, v })), (r) => r.v,
    )!;
    expect(pairs.rounds).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    const [paired] = compareFamily([{ a: A_DRIFT, b: B_DRIFT, spec: THROUGHPUT, pairs }], null);
    expect(paired).toMatchObject({ analysis: "paired", pairs: 8, verdict: "higher", label: "faster", better: true, test: "exact" });
    // Every round's B above its A: p = 2 / 256.
    expect(paired.p_value).toBeCloseTo(2 / 256, 12);
    expect(paired.ratio!).toBeGreaterThan(1.03);
    expect(paired.ratio!).toBeLessThan(1.05);
    expect(paired.ci95![0]).toBeGreaterThan(1);
    expect(paired.reason).toContain("Wilcoxon signed-rank over 8 rounds");
    // The MDE of each analysis at the same alpha: pairing sees a few per cent, the sides alone not even 20 %.
    const { paired: mdeP, unpaired: mdeU } = paired.mde_by_analysis!;
    expect(paired.mde).toBe(mdeP);
    expect(mdeP!).toBeLessThan(0.05);
    expect(mdeU!).toBeGreaterThan(0.2);
  });

  test("the paired MDE grows with the log-ratios' spread and shrinks with more pairs", () => {
    const tight = [0.01, -0.01, 0.02, 0.0, -0.02, 0.01, 0.015, -0.005];
    const loose = tight.map((x) => x * 5);
    const mt = pairedMde(tight, 0.05)!.mde!;
    const ml = pairedMde(loose, 0.05)!.mde!;
    expect(mt).toBeLessThan(ml);
    expect(pairedMde(loose, 0.05, { pairs: 16 })!.mde!).toBeLessThan(ml);
    expect(pairedMde(tight, 0.0125, { pairs: 7 })).toBeNull();
    // The rounds a target needs (the gate's NOTE): the first candidate whose projected MDE reaches it.
    const n = roundsForMde(loose, 0.0125, 0.05)!;
    expect(pairedMde(loose, 0.0125, { pairs: n })!.mde!).toBeLessThanOrEqual(0.05);
    const before = RUNS_CANDIDATES[RUNS_CANDIDATES.indexOf(n) - 1];
    expect(pairedMde(loose, 0.0125, { pairs: before })?.mde ?? Infinity).toBeGreaterThan(0.05);
    expect(logRatios({ a: [1, 0], b: [1, 1] })).toBeNull();
  });

  test("rounds a side lost are left out; a side with two results of one round is not paired", () => {
    const rs = (vals: (number | null)[]) => vals.map((v, i) => ({ iteration: i + 1, v }));
    const p = pairByRound(rs([1, 2, 3, 4]), rs([5, null, 7, 8]).filter((r) => r.iteration !== 4), (r) => r.v)!;
    expect(p).toEqual({ a: [1, 3], b: [5, 7], rounds: [1, 3] });
    expect(pairByRound([{ iteration: 1, v: 1 }, { iteration: 1, v: 2 }], rs([1, 2]), (r) => r.v)).toBeNull();
  });
});

describe("which comparisons are paired", () => {
  const results = (vals: number[], rounds: boolean): TestResult[] =>
    vals.map((v, i) => ({ ...fakeResult({ throughput: v, size: "32M", ram: 256 }), cpu_seconds: v / 100, iteration: rounds ? i + 2 : 1 }));
  const side = (label: string, rs: TestResult[], live: string | null): SideInput => ({
    label, run_id: null, picoshare_version: "v1.5.4", picoshare_sha256: "ab".repeat(32),
    fingerprint: runFingerprint(HOST, "local", rs), results: rs, harness_errors: [], live_compare: live,
  });
  const metric = (c: ReturnType<typeof buildComparison>, key: string) => c.cells[0].metrics.find((m) => m.key === key)!;

  test("one live comparison's sides: throughput and CPU seconds paired, the rest unpaired; the method line says so", () => {
    const c = buildComparison(side("A", results(A_DRIFT, true), "/r/compare-1"), side("B", results(B_DRIFT, true), "/r/compare-1"));
    expect(metric(c, "throughput")).toMatchObject({ analysis: "paired", pairs: 8, verdict: "higher" });
    expect(metric(c, "cpu_seconds")).toMatchObject({ analysis: "paired", pairs: 8 });
    expect(metric(c, "picoshare_peak_rss")).toMatchObject({ analysis: "unpaired", pairs: null });
    expect(c.method.wall_clock).toEqual(["throughput", "cpu_seconds"]);
    expect(c.method.paired).toContain("paired by round: Wilcoxon signed-rank");
    expect(c.method.paired).toContain("at least 8 complete rounds (primary), else unpaired as the rest; paired here in every cell");
  });

  test("stored runs without rounds, or not one live comparison's, keep the unpaired test", () => {
    // Records from before rounds were recorded: every result iteration 1.
    const old = buildComparison(side("A", results(A_DRIFT, false), "/r/compare-1"), side("B", results(B_DRIFT, false), "/r/compare-1"));
    expect(metric(old, "throughput")).toMatchObject({ analysis: "unpaired", pairs: null, verdict: "same" });
    // Two matrix runs (or two comparisons): their iterations are not rounds run together.
    for (const [la, lb] of [[null, null], ["/r/compare-1", "/r/compare-2"]]) {
      const c = buildComparison(side("A", results(A_DRIFT, true), la), side("B", results(B_DRIFT, true), lb));
      expect(metric(c, "throughput")).toMatchObject({ analysis: "unpaired", pairs: null, verdict: "same" });
      expect(c.method.paired).toContain("unpaired like the rest");
    }
  });

  test("the gate: a paired verdict's blind spot is projected from the rounds' log-ratios, not from the drifting sides", () => {
    // The drift of the rounds above, with ten times their wobble (up to 5 % a run).
    const a = side("A", results(DRIFT.map((d, i) => d * (1 + 10 * WOBBLE[(i + 3) % 8])), true), "/r/compare-1");
    const b = side("B", results(DRIFT.map((d, i) => d * 1.04 * (1 + 10 * WOBBLE[i])), true), "/r/compare-1");
    const c = buildComparison(a, b);
    const m = metric(c, "throughput");
    // A 1 % threshold is below what 8 rounds of this spread can see ...
    expect(m.analysis).toBe("paired");
    expect(m.mde!).toBeGreaterThan(0.01);
    const [blind] = evaluateGate(c, parseThresholds("throughput<-1%"), { a, b }).blind;
    // ... but more rounds of the same log-ratios would: the sides' own spread (drift of 140 to 60 MiB/s) never would.
    expect(blind.runs_needed).not.toBeNull();
    expect(blind.runs_needed!).toBeGreaterThan(8);
    expect(blind.message).toContain(`need about ${blind.runs_needed} per side`);
    // The unpaired projection from the sides' spread, at as many runs, could not.
    const tp = (side: SideInput) => side.results.map((r) => r.throughput_mbps);
    expect(runsForMde(tp(a), tp(b), m.median_a!, m.median_b!, m.mde_alpha, 0.01, { candidates: [blind.runs_needed!] })).toBeNull();
  });

  test("too few rounds for the family's alpha: unpaired, with the paired MDE still given", () => {
    const c = buildComparison(side("A", results(A_DRIFT.slice(0, 6), true), "/r/c"), side("B", results(B_DRIFT.slice(0, 6), true), "/r/c"));
    const m = metric(c, "throughput");
    // 6 rounds reach 2 / 64 at best, not 0.05 / 4: the signed-rank test could not call anything.
    expect(m).toMatchObject({ analysis: "unpaired", pairs: 6 });
    expect(m.mde_by_analysis).toEqual({ paired: null, unpaired: m.mde });
    expect(c.method.paired).toContain("paired here in no cell");
  });
});

describe("a real live comparison, stored and read again", () => {
  let root: string;
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  test("8 rounds of 8M (the fewest at which the signed-rank test can reach 0.05 / 4): throughput and CPU seconds paired by round, in the JSON and again from the results log", async () => {
    root = mkdtempSync(join(tmpdir(), "paired-spec-"));
    // B is v1.5.4 copied to a second path: an A/A comparison, whatever its verdict (a false alarm needs all 8 rounds one way).
    const a = await resolvePicoShareVersion("v1.5.4");
    const bPath = join(root, "picoshare-b");
    copyFileSync(a.path, bPath);
    const files = join(root, "files");
    const work = join(root, "work");
    const results = join(root, "results");
    mkdirSync(files, { recursive: true });
    mkdirSync(work, { recursive: true });
    await writeTestFile(testFilePath("8M", files), 8 * MiB);
    const ran = await runScript("compare", [
      "--a-version", "v1.5.4", "--b", bPath, "--memory-limits", "256", "--file-sizes", "8M", "--iterations", "8", "--warmup", "0",
      "--test-files", files, "--work-dir", work, "--results-dir", results, "--timeout", "60", "--json",
    ]);
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    const c = JSON.parse(ran.stdout);
    expect(c.method.wall_clock).toEqual(["throughput", "cpu_seconds"]);
    expect(c.method.paired).toContain("of this live comparison: paired by round");
    const [cell] = c.cells;
    for (const key of ["throughput", "cpu_seconds"]) {
      const m = cell.metrics.find((x: { key: string }) => x.key === key);
      expect(m).toMatchObject({ analysis: "paired", pairs: 8, test: "exact", n_a: 8, n_b: 8 });
      expect(m.reason).toContain("Wilcoxon signed-rank over 8 rounds");
      expect(m.mde_by_analysis.unpaired).toBeGreaterThan(0);
      expect(m.ci95[0]).toBeLessThanOrEqual(m.ratio);
      expect(m.ci95[1]).toBeGreaterThanOrEqual(m.ratio);
    }
    expect(cell.metrics.find((x: { key: string }) => x.key === "picoshare_peak_rss")).toMatchObject({ analysis: "unpaired", pairs: null });

    // Each measured test knows the round it ran in: 1..8 on each side, recorded by run-test from its parent.
    const dbPath = join(results, "results.db");
    const db = ResultsDb.open(dbPath);
    const [runB, runA] = db.listRuns(2);
    for (const run of [runA, runB]) expect(db.results(run.id).map((r) => r.iteration).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    db.close();
    // Read again from the log: the same pairs, the same cells.
    const again = await runScript("compare", ["--run-a", String(runA.id), "--run-b", String(runB.id), "--db", dbPath, "--json"]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).cells).toEqual(c.cells);
    const text = await runScript("compare", ["--run-a", String(runA.id), "--run-b", String(runB.id), "--db", dbPath]);
    expect(text.stdout).toContain("Throughput, CPU seconds (wall-clock) of this live comparison: paired by round");
  }, 180_000);
});
