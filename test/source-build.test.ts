// Builds from source: a real PicoShare v1.5.4 source tree (from Go's module
// cache), patched, committed to a git repository made here, built with Go
// by run-test and compare; the cache, what the result records, the refusals,
// and a compare of the chunk-size build against v1.5.4.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { moduleSource, resolvePicoShare } from "../lib/upload/picoshare.ts";
import { CHUNK_SIZE_PATCH, KNOWN_PATCHES, STUDY_PATCHES, patchedCopy } from "../lib/bench/patches.ts";
import { COMPARED_METRICS } from "../lib/stats/metrics.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { $ } from "../lib/core/shell.ts";
import { MiB } from "../lib/core/sizes.ts";
import { runScript } from "./helpers/run.ts";
import { makeCheckout, type Checkout } from "../lib/bench/checkout.ts";

setDefaultTimeout(300_000);

let root: string;
let files: string;
let repo: string;
let cache: string;
let goVersion: string;
let v154: string;

let git: Checkout["git"];

beforeAll(async () => {
  v154 = (await resolvePicoShare()).path;
  root = mkdtempSync(join(tmpdir(), "source-build-spec-"));
  files = join(root, "files");
  mkdirSync(files);
  await writeTestFile(testFilePath("4M", files), 4 * MiB);
  await writeTestFile(testFilePath("16M", files), 16 * MiB);
  // A maintainer's checkout: v1.5.4 with the chunk-size change committed on a branch.
  ({ repo, git } = await makeCheckout(root, "main", [["chunk", CHUNK_SIZE_PATCH]]));
  // A cache of this test's own: the first build must be a build.
  cache = join(root, "cache");
  goVersion = (await $`go env GOVERSION`.nothrow()).stdout.trim();
}, 600_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

function runTest(results: string, ...extra: string[]) {
  return runScript(
    "run-test",
    ["--ram", "256", "--file-size", "4M", "--test-files", files, "--results-dir", results, "--work-dir", mkdtempSync(join(root, "work-")), ...extra],
    { PERF_CACHE_DIR: cache, PICOSHARE_BIN: v154 },
  );
}

function resultOf(results: string) {
  const name = readdirSync(results).find((f) => /^result-.*\.json$/.test(f))!;
  return JSON.parse(readFileSync(join(results, name), "utf8"));
}

describe("run-test --picoshare-source", () => {
  test("a modified checkout is built once and cached; the result records commit, dirty and the Go version", async () => {
    const head = await git("rev-parse", "HEAD");
    writeFileSync(join(repo, "NOTES.local"), "an untracked file: part of the tree as built\n");
    const first = await runTest(join(root, "r1"), "--picoshare-source", repo);
    expect(first.code).toBe(0);
    expect(first.stderr).toContain(`Building PicoShare from ${repo} (${goVersion}`);
    const r1 = resultOf(join(root, "r1"));
    expect(r1).toMatchObject({
      success: true, picoshare_source: repo, picoshare_commit: head, picoshare_dirty: true, picoshare_go_version: goVersion,
      picoshare_version: `${repo} (${head.slice(0, 12)} dirty)`,
    });
    // The harness's own version and the Go runtime variables PicoShare ran with.
    expect(r1.harness_commit).toMatch(/^[0-9a-f]{40}$/);
    expect(typeof r1.harness_dirty).toBe("boolean");
    expect(r1.go_runtime_env).toEqual({ GOGC: null, GOMEMLIMIT: null, GODEBUG: null, GOMAXPROCS: null });

    const second = await runTest(join(root, "r2"), "--picoshare-source", repo);
    expect(second.code).toBe(0);
    expect(second.stderr).not.toContain("Building PicoShare");
    expect(resultOf(join(root, "r2")).picoshare_sha256).toBe(r1.picoshare_sha256);
    expect(readdirSync(join(cache, "picoshare")).filter((d) => d.startsWith("source-"))).toHaveLength(1);

    // A changed file is another build.
    writeFileSync(join(repo, "NOTES.local"), "changed\n");
    const third = await runTest(join(root, "r3"), "--picoshare-source", repo);
    expect(third.stderr).toContain("Building PicoShare");
    rmSync(join(repo, "NOTES.local"));
  });

  test("--picoshare-ref builds a clean export of the ref: not dirty, the working tree untouched", async () => {
    const file = join(repo, CHUNK_SIZE_PATCH.file);
    writeFileSync(file, `${readFileSync(file, "utf8")}\n// a local edit\n`);
    const before = await git("status", "--porcelain");
    const main = await git("rev-parse", "main");
    const ran = await runTest(join(root, "r4"), "--picoshare-source", repo, "--picoshare-ref", "main");
    expect(ran.code).toBe(0);
    expect(resultOf(join(root, "r4"))).toMatchObject({ picoshare_commit: main, picoshare_dirty: false, picoshare_source: `${repo}@main` });
    expect(await git("status", "--porcelain")).toBe(before);
    expect(readFileSync(file, "utf8")).toContain("// a local edit");
    await git("checkout", "-q", "--", CHUNK_SIZE_PATCH.file);
  });

  test("GOGC, GOMEMLIMIT and GODEBUG of the harness reach PicoShare and the result", async () => {
    const results = join(root, "r5");
    const ran = await runScript(
      "run-test",
      ["--ram", "256", "--file-size", "4M", "--test-files", files, "--results-dir", results, "--work-dir", mkdtempSync(join(root, "work-"))],
      { PICOSHARE_BIN: v154, GOGC: "50", GOMEMLIMIT: "100MiB" },
    );
    expect(ran.code).toBe(0);
    expect(resultOf(results).go_runtime_env).toEqual({ GOGC: "50", GOMEMLIMIT: "100MiB", GODEBUG: null, GOMAXPROCS: null });
  });

  test("refusals: one line, exit 2, nothing written", async () => {
    const refused = async (args: string[], message: RegExp) => {
      const results = mkdtempSync(join(root, "refused-"));
      const ran = await runTest(results, ...args);
      expect(ran.code).toBe(2);
      expect(ran.stdout).toBe("");
      expect(ran.stderr.trim().split("\n").filter((l) => l.includes("ERROR"))).toHaveLength(1);
      expect(ran.stderr).toMatch(message);
      expect(readdirSync(results)).toEqual([]);
    };
    const broken = join(root, "broken");
    patchedCopy(await moduleSource(), broken, [{ ...CHUNK_SIZE_PATCH, to: "defaultChunkSize = uint64(32768 * 128" }]);
    await refused(["--picoshare-source", broken], /ERROR: could not build PicoShare from --picoshare-source .*broken: .*sqlite\.go:\d+:\d+: syntax error/);
    await refused(["--picoshare-source", join(root, "files")], /is not a PicoShare source tree \(no go\.mod and cmd\/picoshare\)/);
    await refused(["--picoshare-source", repo, "--picoshare-ref", "no-such-branch"], /--picoshare-ref no-such-branch: not a commit of the git tree/);
    await refused(["--picoshare-ref", "main"], /--picoshare-ref needs --picoshare-source DIR/);
    await refused(["--picoshare-source", repo, "--picoshare", "/bin/true"], /give one of --picoshare, --picoshare-source, not several/);
    // Nothing half-built left in the cache.
    expect(readdirSync(join(cache, "picoshare")).filter((d) => d.startsWith("."))).toEqual([]);
  });
});

test("the known and the study's patches apply to v1.5.4's source, each expects compared metrics, and each patched tree builds", async () => {
  const keys = new Set(COMPARED_METRICS.map((m) => m.key));
  const patches = [...new Map([...KNOWN_PATCHES, ...STUDY_PATCHES].map((p) => [p.name, p])).values()];
  expect(STUDY_PATCHES.map((p) => p.name)).toEqual(["chunk-4m", "pool-settings", "downloads-index", "list-reads-bytes", "download-batch"]);
  for (const p of patches) {
    expect(p.expect.length).toBeGreaterThan(0);
    for (const e of p.expect) expect(keys.has(e.key) ? e.key : `${p.name}: no compared metric ${e.key}`).toBe(e.key);
    const dir = patchedCopy(await moduleSource(), join(root, `patched-${p.name}`), [p]);
    const built = await $({ cwd: dir, nothrow: true })`go build -o ${join(dir, "picoshare-built")} ./cmd/picoshare`;
    expect(built.exitCode === 0 ? "built" : `${p.name}: ${built.stderr}`).toBe("built");
  }
});

test("compare: the 4 MiB chunk build against v1.5.4 uses more memory (PicoShare peak RSS), says what else it saw, and the gate on it exits 3", async () => {
  const results = join(root, "compare");
  const ran = await runScript(
    "compare",
    [
      "--a", v154, "--b-source", repo, "--b-ref", "chunk", "--memory-limits", "256", "--file-sizes", "16M",
      "--iterations", "5", "--warmup", "0", "--test-files", files, "--results-dir", results, "--json",
      "--fail-on", "picoshare_peak_rss>+10%,oom>0",
    ],
    { PERF_CACHE_DIR: cache },
  );
  // The gate: B got worse on its threshold (exit 3, not the harness's 1), named first.
  expect(ran.code).toBe(3);
  expect(ran.stderr).toMatch(/ERROR: BREACH picoshare_peak_rss>\+10% in 256MB\/16M: PicoShare peak RSS ratio \d\.\d{3} \(\+\d+\.\d %\), Holm p /);
  const c = JSON.parse(ran.stdout);
  expect(c.gate.thresholds).toEqual(["picoshare_peak_rss>+10%", "oom>0"]);
  expect(c.gate.breaches).toHaveLength(1);
  expect(c.gate.breaches[0]).toMatchObject({ threshold: "picoshare_peak_rss>+10%", cell: "256MB/16M" });
  expect(c.b.picoshare_version).toBe(`chunk (${(await git("rev-parse", "chunk")).slice(0, 12)})`);
  const [cell] = c.cells;
  const rss = cell.metrics.find((m: { key: string }) => m.key === "picoshare_peak_rss");
  expect(rss).toMatchObject({ family: "primary", verdict: "higher", label: "more memory", better: false });
  expect(rss.ratio).toBeGreaterThan(1.2);
  expect(rss.p_adjusted).toBeLessThan(0.05);
  // Every metric is there with its MDE or a reason; the changed ones first.
  expect(cell.metrics.map((m: { key: string }) => m.key).sort()).toEqual(COMPARED_METRICS.map((m) => m.key).sort());
  const changed = cell.metrics.map((m: { verdict: string }) => m.verdict === "higher" || m.verdict === "lower");
  expect(changed.indexOf(false) === -1 || changed.slice(changed.indexOf(false)).every((x: boolean) => !x)).toBe(true);
}, 600_000);

test("compare: three builds in one live comparison, interleaved in a Williams design, each stored and compared with A", async () => {
  const results = join(root, "compare-3");
  const ran = await runScript(
    "compare",
    [
      "--a", v154, "--b", v154, "--b-source", repo, "--b-ref", "chunk", "--memory-limits", "256", "--file-sizes", "16M",
      "--iterations", "3", "--warmup", "0", "--test-files", files, "--results-dir", results, "--json",
    ],
    { PERF_CACHE_DIR: cache },
  );
  expect(ran.code).toBe(0);
  const c = JSON.parse(ran.stdout);
  expect(c.format).toBe("picoshare-perf-comparison-n");
  expect(c.builds.map((b: { label: string; picoshare_version: string }) => [b.label, b.picoshare_version])).toEqual([
    ["B1", `${v154} (v1.5.4)`], ["B2", `chunk (${(await git("rev-parse", "chunk")).slice(0, 12)})`],
  ]);
  expect(c.comparisons.map((x: { cells: { a: { runs: number }; b: { runs: number } }[] }) => [x.cells[0].a.runs, x.cells[0].b.runs])).toEqual([[3, 3], [3, 3]]);
  // Rounds of a Williams design (each followed by its reverse): A B1 B2, B2 B1 A, B1 B2 A.
  const order = [...ran.stderr.matchAll(/\[1\/1 256MB\/16M\] (A|B1|B2) (\d)\/3:/g)].map((m) => m[1]);
  expect(order).toEqual(["A", "B1", "B2", "B2", "B1", "A", "B1", "B2", "A"]);
  // Each side is a run of the log: A paired with B1, each B naming A.
  const db = new Database(join(results, "results.db"), { readonly: true });
  const runs = db.query("SELECT id, kind, label, paired_run_id p FROM runs ORDER BY id").all() as { id: number; kind: string; label: string; p: number }[];
  db.close();
  expect(runs.map((r) => [r.kind, r.label])).toEqual([["compare-a", "A"], ["compare-b", "B1"], ["compare-b", "B2"]]);
  expect(runs.slice(1).every((r) => r.p === runs[0].id)).toBe(true);
}, 600_000);

test("bench-detection: A/A and a known patch in one invocation, every metric in one table; a bad patch name is refused", async () => {
  const bad = await runScript("bench-detection", ["--patches", "no-such-patch"]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/ERROR: --patches: no known patch "no-such-patch" \(known: chunk-4m, cpu-work, upload-work-1pct, list-reads-bytes\)/);
  const results = join(root, "bench");
  const ran = await runScript("bench-detection", [
    "--file-size", "16M", "--runs", "5", "--warmup", "0", "--patches", "chunk-4m", "--test-files", files, "--results-dir", results,
  ]);
  expect(ran.code).toBe(0);
  const out = ran.stdout;
  expect(out).toMatch(/^Metric +Family +CV \(A\/A: A \/ B\) +MDE at n = 5 +A\/A +chunk-4m$/m);
  for (const name of ["throughput", "PicoShare peak RSS", "CPU seconds", "disk bytes written", "minor faults"]) {
    expect(out).toMatch(new RegExp(`^${name} +(primary|secondary) `, "m"));
  }
  expect(out).toMatch(/^A\/A \(reference\): (no primary metric flagged|FLAGGED .+)$/m);
  expect(out).toMatch(/^chunk-4m: PicoShare peak RSS higher expected: found \(B\/A \d\.\d{3}/m);
  expect(out).toMatch(/^MDE of CPU seconds at n = 5: /m);
  // Both comparisons are in the results log, as compare stores them.
  expect(readdirSync(results).filter((d) => d.startsWith("compare-"))).toHaveLength(2);
}, 600_000);

test("bench-study: the base against itself and a branch of one checkout in one comparison, each build answered on its patch's metric; a bad patch name is refused", async () => {
  const bad = await runScript("bench-study", ["--patches", "cpu-work"]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('ERROR: --patches: no study patch "cpu-work" (known: chunk-4m, pool-settings, downloads-index, list-reads-bytes, download-batch)');
  const results = join(root, "study");
  const ran = await runScript("bench-study", [
    "--file-sizes", "16M", "--iterations", "4", "--warmup", "0", "--patches", "list-reads-bytes", "--requests", "3", "--test-files", files, "--results-dir", results,
  ]);
  expect(ran.code).toBe(0);
  // The command it ran: refs of one checkout, the base twice.
  expect(ran.stderr).toMatch(/The study: bun scripts\/compare\.ts --a-source \S+\/picoshare --a-ref base --b-ref base --b-ref list-reads-bytes --memory-limits 256 --file-sizes 16M --iterations 4 --warmup 0 /);
  expect(ran.stdout).toMatch(/^B2 list-reads-bytes +list_page_seconds higher +slower \d+\.\d{3} \(1\/1 cells\) +yes$/m);
  // 4 a side cannot reach the primary family's corrected alpha: A/A calls nothing there.
  expect(ran.stdout).toMatch(/^A\/A \(B1, base against itself\): no primary metric or instruction count called/m);
  expect(ran.stdout).toMatch(/^Builds with a targeted change called: 1 of 1$/m);
  expect(ran.stdout).toMatch(/^Wall time: \d+\.\d min \(aim: under 30: met\)$/m);
  // compare's own answers, and its JSON, beside the runs; the temporary checkout is gone.
  const text = readFileSync(join(results, "study-compare.txt"), "utf8");
  // B2's line names the list page among its changes (after any secondary pointer declared before it, e.g. syscalls).
  expect(text).toMatch(/B2 list-reads-bytes \([0-9a-f]{12}\): [^\n]*list page slower in 1 of 1 cell/);
  expect(JSON.parse(readFileSync(join(results, "study-compare.json"), "utf8")).answers.map((a: { build: string }) => a.build)).toEqual(["B1", "B2"]);
  const checkout = /--a-source (\S+)\/picoshare /.exec(ran.stderr)![1];
  expect(existsSync(checkout)).toBe(false);
}, 600_000);
