// The HTML report, made from real runs (run-test and a live comparison with
// small files), opened in headless Chromium: every chart rendered, no console
// error, nothing fetched; a screenshot is saved.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { ResultsDb } from "../lib/store/results-db.ts";
import { hostFacts } from "../lib/upload/host.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import { runScript } from "./helpers/run.ts";

setDefaultTimeout(120_000);

const CHROMIUM = "/usr/bin/chromium";

let root: string;
let files: string;
let work: string;
let results: string;
let dbPath: string;
let picoshare: string;
let lone: number;
let compareA: number;
let compareB: number;
let browser: Browser;
/** Screenshots go here: $REPORT_SCREENSHOT_DIR when set (kept), else the test's temp folder. */
let shots: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  picoshare = (await resolvePicoShare()).path;
  root = mkdtempSync(join(tmpdir(), "report-spec-"));
  files = join(root, "files");
  work = join(root, "work");
  results = join(root, "results");
  for (const d of [files, work, results]) mkdirSync(d, { recursive: true });
  shots = process.env.REPORT_SCREENSHOT_DIR ?? join(root, "shots");
  mkdirSync(shots, { recursive: true });
  dbPath = join(results, "results.db");
  await writeTestFile(testFilePath("1M", files), MiB);
  await writeTestFile(testFilePath("8M", files), 8 * MiB);

  // A run made as the matrix makes one: a runs row, then run-test per cell with PERF_RUN_ID.
  const db = ResultsDb.open(dbPath);
  lone = db.startRun({
    kind: "matrix", startedAt: "2026-01-29T12:00:00+00:00", backend: "local", resultsDir: results,
    picoshareVersion: "v1.5.4", picoshareSha256: null, options: {}, host: hostFacts(work),
  });
  db.close();
  const common = ["--test-files", files, "--work-dir", work, "--results-dir", results, "--db", dbPath, "--picoshare", picoshare];
  for (const [ram, size] of [["256", "1M"], ["256", "8M"], ["4", "8M"]]) {
    const ran = await runScript("run-test", ["--ram", ram, "--file-size", size, ...common], { PERF_RUN_ID: String(lone) });
    expect(ran.code === 0 || ram === "4").toBe(true); // 4 MiB: OOM-killed at start-up, exit 1 with a result
  }
  const status = ResultsDb.open(dbPath);
  status.setRunStatus(lone, "complete", "2026-01-29T12:01:00+00:00");
  status.close();

  // A live comparison: two RAM limits (one OOM) x two sizes, two runs a side.
  const cmp = await runScript("compare", [
    "--a", picoshare, "--b", picoshare, "--memory-limits", "256,4", "--file-sizes", "1M,8M",
    "--iterations", "2", "--warmup", "0", "--test-files", files, "--work-dir", work, "--results-dir", results, "--db", dbPath, "--json",
  ]);
  if (cmp.code !== 0) console.error(cmp.stderr);
  expect(cmp.code).toBe(0);
  const c = JSON.parse(cmp.stdout);
  compareA = c.a.run_id;
  compareB = c.b.run_id;

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}, 600_000);

afterAll(async () => {
  await browser?.close();
  rmSync(root, { recursive: true, force: true });
});

interface Opened {
  errors: string[];
  requests: string[];
  charts: { name: string; width: number; height: number; marks: number; lines: number; symbols: number; rects: number; rules: number }[];
  text: string;
}

/** Opens the report in Chromium with every network request refused (and recorded), screenshots it, and reads its charts. */
async function open(path: string, shot: string): Promise<Opened> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("file://") && url.endsWith(".html")) return route.continue();
    requests.push(url);
    return route.abort();
  });
  await page.goto(`file://${path}`);
  await page.screenshot({ path: join(shots, shot), fullPage: true });
  // (The callback runs in the page; its element types come from Playwright's declarations.)
  const charts = await page.$$eval("figure.chart", (figures) =>
    figures.map((f) => {
      const svg = f.querySelector("svg");
      const box = svg?.getBoundingClientRect();
      const count = (sel: string) => svg?.querySelectorAll(sel).length ?? 0;
      return {
        name: (f.getAttribute("data-chart") ?? "") as string,
        width: (box?.width ?? 0) as number,
        height: (box?.height ?? 0) as number,
        marks: count("g.role-mark > *") as number,
        lines: count("g.mark-line.role-mark path") as number,
        symbols: count("g.mark-symbol.role-mark path") as number,
        rects: count("g.mark-rect.role-mark path") as number,
        rules: count("g.mark-rule.role-mark line") as number,
      };
    }),
  );
  const text = await page.innerText("body");
  await page.close();
  return { errors, requests, charts, text };
}

async function report(args: string[]): Promise<string> {
  const ran = await runScript("report", [...args, "--db", dbPath]);
  if (ran.code !== 0) console.error(ran.stderr);
  expect(ran.code).toBe(0);
  const lines = ran.stdout.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(existsSync(lines[0])).toBe(true);
  return lines[0];
}

describe("the report of a comparison", () => {
  test("one self-contained file: ratio chart and each side's charts rendered, no errors, nothing fetched", async () => {
    const out = join(root, "comparison.html");
    expect(await report([String(compareA), "--out", out])).toBe(out);
    const html = readFileSync(out, "utf8");
    // Self-contained: no script, no external stylesheet, font or image; fetching forbidden by its own policy.
    expect(html).not.toMatch(/<script|<link|<img|<iframe|url\(|@import/i);
    expect(html).not.toMatch(/(src|href)="https?:/i);
    expect(html).toContain(`content="default-src 'none'`);
    expect(readdirSync(root).filter((n) => n.includes(".partial-"))).toEqual([]);

    const page = await open(out, "comparison.png");
    expect(page.errors).toEqual([]);
    expect(page.requests).toEqual([]);
    expect(page.charts.map((c) => c.name)).toEqual([
      "ratio",
      `throughput-${compareA}`, `memory-${compareA}`, `outcomes-${compareA}`,
      `throughput-${compareB}`, `memory-${compareB}`, `outcomes-${compareB}`,
    ]);
    for (const c of page.charts) {
      expect(c.width).toBeGreaterThan(200);
      expect(c.height).toBeGreaterThan(100);
      expect(c.marks).toBeGreaterThan(0);
    }
    const byName = Object.fromEntries(page.charts.map((c) => [c.name.replace(/-\d+$/, ""), c]));
    // Throughput: the 256 MB line through 1M and 8M (the 4 MB cells were OOM-killed: no line).
    expect(byName.throughput.lines).toBe(1);
    expect(byName.throughput.symbols).toBe(2);
    // Peak memory: the 256 MB line, and a rule per RAM limit (256 and 4) besides the interval bars.
    expect(byName.memory.lines).toBe(1);
    expect(byName.memory.rules).toBeGreaterThanOrEqual(2 + 2);
    // The grid: one rect per cell, 2 RAM x 2 sizes.
    expect(byName.outcomes.rects).toBe(4);
    // The ratio: a point per cell with measurements, two metrics.
    expect(byName.ratio.symbols).toBe(4);
    expect(page.text).toContain(`Comparison: run ${compareB} (B) against run ${compareA} (A)`);
    // 4 MiB: PicoShare dies at start-up, nearly always by the OOM killer (run-test
    // now and then records it as process_died instead), so only "0/2 pass" is sure.
    expect(page.text).toContain("0/2 pass");
    expect(page.text).toContain("too few samples");
    expect(page.text).toContain("A and B are the same PicoShare binary");
  });

  test("the same two runs given by id, B first: B is the baseline then", async () => {
    const out = await report([String(compareB), String(compareA)]);
    expect(out).toEndWith(`report-${compareB}-${compareA}.html`);
    expect(readFileSync(out, "utf8")).toContain(`Comparison: run ${compareA} (B) against run ${compareB} (A)`);
  });
});

describe("the report of one run", () => {
  test("three charts, the statistics table, no comparison", async () => {
    const out = await report([String(lone)]);
    const page = await open(out, "run.png");
    expect(page.errors).toEqual([]);
    expect(page.requests).toEqual([]);
    expect(page.charts.map((c) => c.name)).toEqual([`throughput-${lone}`, `memory-${lone}`, `outcomes-${lone}`]);
    expect(page.charts.every((c) => c.marks > 0)).toBe(true);
    expect(page.charts[2].rects).toBe(3);
    expect(page.text).not.toContain("Comparison:");
    expect(page.text).toContain("Per cell (statistics over the successful runs)");
    expect(page.text).toContain("0/1 pass");
    console.log(`report screenshots in ${shots}`);
  });
});

describe("the command line", () => {
  test("bad input: one ERROR line, exit 2, nothing written", async () => {
    for (const [args, message] of [
      [[], /give at least one run id/],
      [["x"], /RUN must be a run id/],
      [["1", "1"], /given twice/],
      [["999", "--db", dbPath], /run 999 is not in/],
      [["1", "--db", join(root, "none.db")], /no results log at/],
      [["1", "--alpha", "2"], /--alpha must be below 0.5/],
    ] as [string[], RegExp][]) {
      const ran = await runScript("report", args);
      expect(ran.code).toBe(2);
      expect(ran.stdout).toBe("");
      expect(ran.stderr).toMatch(message);
    }
  });
});
