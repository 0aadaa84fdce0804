// The requests phase and the download's compared metrics, against real
// PicoShare v1.5.4 and a build of it whose list query reads every stored
// byte (LIST_READS_BYTES_PATCH): a real test's fields; a live comparison of
// the two with a 16M file stored (4 runs a side) calling the build slower on
// list_page_seconds in compare's JSON and Markdown, the gate, the report and
// the exports, the download's metrics beside it; and a negative K refused.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { LIST_READS_BYTES_PATCH, patchedCopy } from "../lib/bench/patches.ts";
import { MiB } from "../lib/core/sizes.ts";
import { countersCsv } from "../lib/store/csv.ts";
import { moduleSource, resolvePicoShare } from "../lib/upload/picoshare.ts";
import { readResult, type TestResult } from "../lib/upload/result.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { runScript } from "./helpers/run.ts";

setDefaultTimeout(300_000);

let root: string;
let files: string;
let v154: string;
let slowList: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "requests-spec-"));
  files = join(root, "files");
  mkdirSync(files);
  await writeTestFile(testFilePath("16M", files), 16 * MiB);
  v154 = (await resolvePicoShare()).path;
  slowList = patchedCopy(await moduleSource(), join(root, "slow-list"), [LIST_READS_BYTES_PATCH]);
}, 600_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

const work = () => mkdtempSync(join(root, "work-"));

function resultIn(dir: string): TestResult {
  const name = readdirSync(dir).find((f) => /^result-.*\.json$/.test(f))!;
  return readResult(JSON.parse(readFileSync(join(dir, name), "utf8")));
}

describe("the requests phase", () => {
  test("a real test records the three medians of K requests, and the download's CPU seconds and peak RSS", async () => {
    const results = join(root, "one");
    const ran = await runScript("run-test", ["--ram", "256", "--file-size", "16M", "--requests", "5", "--test-files", files, "--results-dir", results, "--work-dir", work(), "--picoshare", v154]);
    expect(ran.code).toBe(0);
    expect(ran.stderr).toMatch(/Requests \(median of 5 each\): list page [\d.]+ms, info page [\d.]+ms, download first byte [\d.]+ms/);
    const r = resultIn(results);
    expect(r.requests_per_kind).toBe(5);
    expect(r.requests_error).toBeNull();
    for (const s of [r.list_page_seconds, r.info_page_seconds, r.download_first_byte_seconds]) {
      expect(s).toBeGreaterThan(0);
      expect(s!).toBeLessThan(5);
    }
    expect(r.phases.requests!).toBeGreaterThan(0);
    // The download's CPU seconds are its counters'; its peak RSS is its own (the mark reset before it), the upload's the mark read before that.
    expect(r.download_cpu_seconds).toBe(r.download_counters!.cpu_seconds);
    expect(r.download_cpu_seconds!).toBeGreaterThan(0);
    expect(r.download_peak_rss_bytes!).toBeGreaterThan(1 * MiB);
    expect(r.picoshare_peak_rss_bytes!).toBeGreaterThan(1 * MiB);
    // Stored in the results log as columns.
    const db = new Database(join(results, "results.db"), { readonly: true });
    const row = db.query("SELECT list_page_seconds, download_first_byte_seconds, download_cpu_seconds, download_peak_rss_bytes FROM results").get();
    db.close();
    expect(row).toEqual({
      list_page_seconds: r.list_page_seconds, download_first_byte_seconds: r.download_first_byte_seconds,
      download_cpu_seconds: r.download_cpu_seconds, download_peak_rss_bytes: r.download_peak_rss_bytes,
    });
    // And in matrix-counters.csv's columns, with their values.
    const [header, line] = countersCsv([{ result: r, file: "r.json" }]).trim().split("\n").map((l) => l.split(","));
    for (const name of ["requests_per_kind", "list_page_seconds", "info_page_seconds", "download_first_byte_seconds", "download_cpu_seconds", "download_peak_rss_bytes"] as const) {
      expect(line[header.indexOf(name)]).toBe(String(r[name]));
    }

    const none = join(root, "none");
    const skipped = await runScript("run-test", ["--ram", "256", "--file-size", "16M", "--requests", "0", "--test-files", files, "--results-dir", none, "--work-dir", work(), "--picoshare", v154]);
    expect(skipped.code).toBe(0);
    expect(skipped.stderr).not.toContain("Requests (");
    expect(resultIn(none)).toMatchObject({ requests_per_kind: null, list_page_seconds: null, info_page_seconds: null, download_first_byte_seconds: null, phases: { requests: 0 } });
  });

  test("a build whose list query reads the stored bytes is called slower on list_page_seconds; the download's metrics are compared beside it", async () => {
    const results = join(root, "compared");
    const ran = await runScript("compare", [
      "--a", v154, "--b-source", slowList, "--memory-limits", "256", "--file-sizes", "16M", "--iterations", "4", "--warmup", "0", "--requests", "5",
      "--test-files", files, "--results-dir", results, "--work-dir", work(), "--json",
    ]);
    expect(ran.code).toBe(0);
    const c = JSON.parse(ran.stdout);
    const metric = (key: string) => c.cells[0].metrics.find((m: { key: string }) => m.key === key);
    expect(metric("list_page_seconds")).toMatchObject({ family: "secondary", verdict: "higher", label: "slower", n_a: 4, n_b: 4 });
    expect(metric("list_page_seconds").ratio).toBeGreaterThan(5);
    for (const key of ["info_page_seconds", "download_first_byte_seconds", "download_throughput", "download_cpu_seconds", "download_peak_rss"]) {
      expect(metric(key)).toMatchObject({ family: "secondary", n_a: 4, n_b: 4 });
      expect(metric(key).median_a).toBeGreaterThan(0);
    }
    // K reached each test through compare.
    const folder = readdirSync(results).find((d) => d.startsWith("compare-"))!;
    expect(resultIn(join(results, folder, "b")).requests_per_kind).toBe(5);

    // The stored runs: Markdown, the gate, the report.
    const db = join(results, "results.db");
    const runs = ["--run-a", String(c.a.run_id), "--run-b", String(c.b.run_id), "--db", db];
    const md = await runScript("compare", [...runs, "--markdown", "--fail-on", "list_page_seconds>+50%,download_throughput<-90%"]);
    expect(md.code).toBe(3);
    expect(md.stdout).toMatch(/BREACH list_page_seconds>\+50% in 256MB\/16M: list page ratio/);
    expect(md.stdout).toMatch(/\| list page \(ms\) \| secondary \| 4\/4 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| .* \| slower \|/);
    for (const row of ["download throughput (MiB/s)", "download CPU seconds (s)", "download peak RSS (MiB)", "info page (ms)", "download first byte (ms)"]) {
      expect(md.stdout).toMatch(new RegExp(`\\| ${row.replace(/[()]/g, "\\$&")} \\| secondary \\| 4/4 \\| [\\d.]+ \\| [\\d.]+ \\|`));
    }
    const out = join(root, "report.html");
    const report = await runScript("report", [String(c.a.run_id), String(c.b.run_id), "--db", db, "--out", out, "--no-trend"]);
    expect(report.code).toBe(0);
    const html = readFileSync(out, "utf8");
    const served = html.slice(html.indexOf('data-chart="ratio-served"'));
    expect(served).toContain("download and requests");
    for (const title of ["download throughput", "download CPU seconds", "download peak RSS", "list page", "info page", "download first byte"]) expect(served).toContain(`${title} B/A`);
    expect(html).toContain("download peak RSS (MiB)");
    // The exports: B's figures for a benchmarking tool, the request and download metrics among them.
    const bmf = await runScript("results", ["export", String(c.b.run_id), "--format", "bmf", "--db", db]);
    expect(bmf.code).toBe(0);
    const measures = JSON.parse(bmf.stdout)["256MB/16M"];
    for (const key of ["list_page_seconds", "info_page_seconds", "download_first_byte_seconds", "download_throughput", "download_cpu_seconds", "download_peak_rss"]) {
      expect(measures[key].value).toBeGreaterThan(0);
    }
  });

  test("a negative K: one line, exit 2, nothing written", async () => {
    for (const [script, args] of [
      ["run-test", ["--ram", "256", "--file-size", "16M"]],
      ["compare", ["--a", v154, "--b", v154, "--memory-limits", "256", "--file-sizes", "16M"]],
      ["run-test-matrix", ["--picoshare", v154, "--memory-limits", "256", "--file-sizes", "16M"]],
    ] as const) {
      const results = join(root, `refused-${script}`);
      const ran = await runScript(script, [...args, "--requests=-1", "--test-files", files, "--results-dir", results]);
      expect(ran.code).toBe(2);
      expect(ran.stdout).toBe("");
      const errors = ran.stderr.trim().split("\n").filter((l) => l.includes("ERROR"));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain('--requests must be a whole number of 0 or more, got "-1"');
      expect(existsSync(results)).toBe(false);
    }
  });
});
