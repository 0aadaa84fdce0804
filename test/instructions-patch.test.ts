// The instruction counts as a family of their own in a comparison's every
// rendering and in the gate; then the known patch that adds user-space
// instructions per uploaded MiB (lib/bench/patches.ts), built from v1.5.4's
// module source, in one live comparison with --count-instructions against
// v1.5.4, beside v1.5.4 against itself: the patch is called "more
// instructions" on the upload and the gate on it exits 3; the same binary is
// called nothing.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { moduleSource, resolvePicoShare } from "../lib/upload/picoshare.ts";
import { patchedCopy, uploadWorkPatch } from "../lib/bench/patches.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import { runScript } from "./helpers/run.ts";
import { fakeCell, HOST } from "./helpers/results.ts";
import { buildComparison, type SideInput } from "../lib/stats/comparison.ts";
import { runFingerprint } from "../lib/stats/fingerprint.ts";
import { parseThresholds } from "../lib/stats/gate.ts";
import { comparisonText } from "../lib/output/exporters/compare-table.ts";
import { comparisonMarkdown } from "../lib/output/exporters/compare-markdown.ts";
import { nwayText } from "../lib/output/exporters/compare-nway.ts";
import type { TestResult } from "../lib/upload/result.ts";

setDefaultTimeout(300_000);

// 32 MiB: the twin's time is mostly valgrind's start (about 10 s at 16M and 32M alike), and at 32M
// the upload's count varies least (an 8M count now and then has a garbage-collection cycle more, +6 %).
const SIZE = "32M";
// The patch at 4 %: the 1 % one (bench-detection's) is found at 8 a side, but a 32M upload's count
// falls in one of two modes about 1.1 % apart from run to run (docs/benchmarks.md), so at 4 a side
// 1 % is called only when the modes fall kindly; 4 % is beyond both.
const PATCH = uploadWorkPatch(4);
let root: string;
let files: string;
let v154: string;
let patched: string;

beforeAll(async () => {
  v154 = (await resolvePicoShare()).path;
  root = mkdtempSync(join(tmpdir(), "instructions-patch-spec-"));
  files = join(root, "files");
  mkdirSync(files);
  await writeTestFile(testFilePath(SIZE, files), 32 * MiB);
  patched = patchedCopy(await moduleSource(), join(root, "patched"), [PATCH]);
}, 600_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Metric { key: string; family: string; verdict: string; label: string; ratio: number; p_adjusted: number | null; n_a: number; n_b: number }

test("the +4 % patch is called more upload instructions and breaches the gate; v1.5.4 against itself stays within the count's own spread and does not", async () => {
  const ran = await runScript("compare", [
    "--a", v154, "--b", v154, "--b-source", patched, "--memory-limits", "256", "--file-sizes", SIZE, "--iterations", "4", "--warmup", "0",
    // Without the download the upload's count is its family's only member, tested at alpha itself: 4 a side can reach it.
    "--count-instructions", "--no-download", "--test-files", files, "--results-dir", join(root, "results"), "--json",
    "--fail-on", "upload_instructions>+2%",
  ]);
  expect(ran.code).toBe(3);
  expect(ran.stderr).toMatch(/ERROR: BREACH B2 upload_instructions>\+2% in 256MB\/32M: upload instructions ratio 1\.0\d\d \(\+\d\.\d %\), Holm p /);
  const c = JSON.parse(ran.stdout);
  expect(c.gate.breaches.map((b: { build: string }) => b.build)).toEqual(["B2"]);
  const [same, patch] = c.comparisons.map((x: { cells: { metrics: Metric[] }[] }) => {
    const of = (key: string) => x.cells[0].metrics.find((m) => m.key === key)!;
    return { up: of("upload_instructions"), down: of("download_instructions"), fsync: of("upload_fsync_calls") };
  });
  // The patch: about 4 % more (the loop's 7 instructions x 32 MiB / 27 bytes against about 213 M), called with its family's correction.
  expect(patch.up).toMatchObject({ family: "instructions", verdict: "higher", label: "more instructions", n_a: 4, n_b: 4 });
  expect(patch.up.ratio).toBeGreaterThan(1.025);
  expect(patch.up.ratio).toBeLessThan(1.06);
  expect(patch.up.p_adjusted).toBeLessThan(0.05);
  // The same binary: counted in every run, within the count's two modes (1.1 % apart). Not asserted "same": at 4 a side
  // one of 35 orderings of identical builds' runs is a complete separation (p 0.029, below this family's alpha of 0.05).
  expect(same.up).toMatchObject({ family: "instructions", n_a: 4, n_b: 4 });
  expect(Math.abs(same.up.ratio - 1)).toBeLessThan(0.015);
  // No download was made: not counted, not tested.
  expect(same.down).toMatchObject({ family: "instructions", verdict: "too_few", n_a: 0, n_b: 0 });
  // The fsync calls are compared too: counted in every run of every side.
  for (const x of [same, patch]) expect([x.fsync.n_a, x.fsync.n_b]).toEqual([4, 4]);
}, 600_000);

describe("the instruction counts: a family of their own", () => {
  const side = (label: string, results: TestResult[]): SideInput => ({
    label, run_id: null, picoshare_version: "v1.5.4", picoshare_sha256: label.repeat(64).slice(0, 64), fingerprint: runFingerprint(HOST, "local", results), results, harness_errors: [],
  });
  // 5 a side, throughput and the counts fully apart; the counts +1 %.
  const counted = (throughputs: number[], up: number, down: number) =>
    fakeCell(throughputs).map((r, i) => ({ ...r, upload_instructions: up + i * 1000, download_instructions: down + i * 1000, upload_fsync_calls: 6 }));
  const c = buildComparison(side("A", counted([100, 101, 99, 102, 98], 200e6, 100e6)), side("B", counted([130, 131, 129, 132, 128], 202e6, 100e6 + 500)));
  const of = (key: string) => c.cells[0].metrics.find((m) => m.key === key)!;

  test("Holm over the counts apart from the primary metrics: each family at alpha over its own members measured", () => {
    // Two primary metrics measured by this fixture (throughput, PicoShare's RSS); two counts.
    expect(of("throughput")).toMatchObject({ family: "primary", verdict: "higher", mde_alpha: 0.025 });
    expect(of("upload_instructions")).toMatchObject({ family: "instructions", verdict: "higher", label: "more instructions", mde_alpha: 0.025 });
    expect(of("upload_instructions").p_adjusted).toBeCloseTo(2 * of("upload_instructions").p_value!, 10);
    expect(of("download_instructions")).toMatchObject({ family: "instructions", verdict: "same" });
    // The fsync calls stay secondary, tested on their own: the same count on both sides is no difference.
    expect(of("upload_fsync_calls")).toMatchObject({ family: "secondary", verdict: "same", mde_alpha: 0.05 });
    expect(c.method.instructions).toEqual(["upload_instructions", "download_instructions"]);
  });

  test("shown in the two-way table and markdown beside the primary metrics, in the N-way tables even unchanged; the gate takes their keys", () => {
    expect(comparisonText(c)).toMatch(/^Primary metrics and instruction counts: B\/A and verdict \(each family Holm-corrected per cell\)$/m);
    expect(comparisonText(c)).toMatch(/^upload instructions +instructions +5\/5 +200\d{6} +202\d{6} +1\.010 .* +more instructions$/m);
    expect(comparisonMarkdown(c)).toContain("| throughput | PicoShare peak RSS | CPU seconds | disk bytes written | upload instructions | download instructions |");
    const nway = nwayText([c, { ...c, b: { ...c.b, label: "B2" } }]);
    expect(nway).toContain("upload instructions (instructions): ratio B/A per cell");
    expect(nway).toContain("download instructions (instructions): ratio B/A per cell");
    expect(parseThresholds("upload_instructions>+1%,download_instructions>+2%,upload_fsync_calls>+0.5%").map((t) => t.kind === "metric" && t.metric)).toEqual([
      "upload_instructions", "download_instructions", "upload_fsync_calls",
    ]);
  });

  test("without counts: the primary table as it was", () => {
    const plain = buildComparison(side("A", fakeCell([100, 101, 99, 102, 98])), side("B", fakeCell([100, 101, 99, 102, 98])));
    expect(comparisonText(plain)).toMatch(/^Primary metrics: B\/A and verdict \(Holm-corrected per cell\)$/m);
    expect(nwayText([plain])).not.toContain("(instructions)");
  });
});
