// The HTML report, made from real runs (run-test, a live comparison and a
// RAM-floor search with small files) and from runs written to the results log
// as the harness writes them (a second floor search, memory timelines),
// opened in headless Chromium: every chart rendered, no console error,
// nothing fetched; a screenshot is saved.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { ResultsDb } from "../lib/store/results-db.ts";
import { hostFacts } from "../lib/upload/host.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import { RAM_FLOOR_KIND, type Floor, type FloorProbe, type FloorSearchSettings } from "../lib/floor/search.ts";
import { TIMELINE_PHASES, timelineCsv, type TimelinePhase, type TimelineSample } from "../lib/upload/timeline.ts";
import { TIMELINE_MAX_POINTS, thinTimeline } from "../lib/output/report/timeline-chart.ts";
import { runScript } from "./helpers/run.ts";
import { HOST, fakeResult, mergedRun } from "./helpers/results.ts";
import { cellName } from "../lib/stats/cells.ts";
import { CONTROL_KIND, controlRecord, controlWatch, type ControlRecord } from "../lib/matrix/sentinel.ts";
import { CAPTIONS } from "../lib/output/report/charts.ts";
import { CONTROL_STATES } from "../lib/output/report/control-chart.ts";
import { TREND_STATES } from "../lib/output/report/trend-chart.ts";

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
/** Two RAM-floor runs: a real search, and one of a build from source written as find-ram-floor writes it. */
let floorReal: number;
let floorFixture: number;
let realFloor: Floor;
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

  // A real floor search of 8M (about 10 s), and beside it a second build's, stored as find-ram-floor stores one.
  const floor = await runScript("find-ram-floor", [
    "--file-size", "8M", "--min", "8", "--max", "128", "--resolution", "8", "--repeat", "1", "--json", ...common,
  ]);
  if (floor.code !== 0) console.error(floor.stderr);
  expect(floor.code).toBe(0);
  realFloor = JSON.parse(floor.stdout).floors[0];
  const store = ResultsDb.open(dbPath);
  floorReal = store.listRuns().find((r) => r.kind === RAM_FLOOR_KIND)!.id;
  const settings: FloorSearchSettings = { file_sizes: ["1M", "8M"], min_mb: 8, max_mb: 128, resolution_mb: 4, repeat: 1, thrash_factor: 5, max_minutes: 1 };
  floorFixture = store.startRun({
    kind: RAM_FLOOR_KIND, startedAt: "2026-01-29T13:00:00+00:00", backend: "local", resultsDir: results,
    picoshareVersion: SOURCE_BUILD.picoshare_version, picoshareSha256: SOURCE_BUILD.picoshare_sha256, options: settings, host: hostFacts(work),
  });
  for (const [size, lowest, highest, failure, finished] of [["1M", 20, 16, "oom_killed", true], ["8M", 40, 36, "thrashing", false]] as const) {
    // --max, --min, the bracket's ends, and (finished) the upper end's re-run.
    const probes: FloorProbe[] = [128, 8, highest, lowest, ...(finished ? [lowest] : [])].map((mb, i) => {
      const passed = mb >= lowest;
      const r = { ...fakeResult({ ram: mb, size, runId: floorFixture, reason: passed ? "success" : "oom_killed" }), ...SOURCE_BUILD };
      store.addResult(r, null);
      return { ram_mb: mb, passed, outcome: passed ? "success" : failure, upload_seconds: r.duration_seconds, wall_seconds: 1, repeat: i === 4, result_file: null };
    });
    store.addFloor(floorFixture, {
      file_size: size, lowest_passing_mb: lowest, highest_failing_mb: highest, failure, finished, probes,
      reference_upload_seconds: 0.1, thrash_limit_seconds: 5, seconds: finished ? 42 : 61,
    });
  }
  store.setRunStatus(floorFixture, "complete", "2026-01-29T13:01:00+00:00");
  store.close();

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}, 600_000);

/** The floor fixture's build: from a source tree, at a commit. */
const SOURCE_BUILD = {
  picoshare_version: "(source) 0123456789ab", picoshare_sha256: "cd".repeat(32),
  picoshare_source: "/src/picoshare", picoshare_commit: "0123456789abcdef0123456789abcdef01234567", picoshare_dirty: false,
};

afterAll(async () => {
  await browser?.close();
  rmSync(root, { recursive: true, force: true });
});

interface Chart {
  name: string;
  caption: string;
  width: number;
  height: number;
  marks: number;
  lines: number;
  symbols: number;
  rects: number;
  rules: number;
  /** The legends' entries, in order. */
  legend: string[];
  /** Every text in the SVG. */
  texts: string[];
  /** The y axis's ticks: value and where it is drawn (page pixels). */
  yTicks: { value: number; y: number }[];
  /** Where each rule mark is drawn: its vertical middle (page pixels). */
  ruleYs: number[];
  /** Per line path: its points and its top (page pixels). */
  paths: { points: number; top: number }[];
  /** Each point mark's description as Vega writes it (its encoded fields and values). */
  points: string[];
}

interface Opened {
  errors: string[];
  requests: string[];
  charts: Chart[];
  tables: { caption: string; rows: string[][] }[];
  notes: string[];
  text: string;
}

/** Where a chart's y axis puts `value` (page pixels), from the axis's own ticks (a linear axis). */
function yOf(c: Chart, value: number): number {
  const [a, b] = [c.yTicks[0], c.yTicks.at(-1)!];
  expect(b.value).not.toBe(a.value);
  return a.y + ((value - a.value) * (b.y - a.y)) / (b.value - a.value);
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
  const charts: Chart[] = await page.$$eval("figure.chart", (figures) =>
    figures.map((f) => {
      const svg = f.querySelector("svg");
      const box = svg?.getBoundingClientRect();
      const all = (sel: string) => [...(svg?.querySelectorAll(sel) ?? [])];
      const count = (sel: string) => all(sel).length;
      const middle = (e: { getBoundingClientRect(): { top: number; height: number } }) => {
        const b = e.getBoundingClientRect();
        return b.top + b.height / 2;
      };
      const yAxis = 'g.role-axis[aria-label^="Y-axis"]';
      const tickValues = all(`${yAxis} g.role-axis-label text`).map((t) => Number((t.textContent ?? "").replace(/,/g, "")));
      return {
        name: (f.getAttribute("data-chart") ?? "") as string,
        caption: (f.querySelector("figcaption")?.textContent ?? "") as string,
        width: (box?.width ?? 0) as number,
        height: (box?.height ?? 0) as number,
        marks: count("g.role-mark > *") as number,
        lines: count("g.mark-line.role-mark path") as number,
        symbols: count("g.mark-symbol.role-mark path") as number,
        rects: count("g.mark-rect.role-mark path") as number,
        rules: count("g.mark-rule.role-mark line") as number,
        legend: all("g.role-legend-label text").map((t) => t.textContent ?? "") as string[],
        texts: all("text").map((t) => t.textContent ?? "") as string[],
        yTicks: all(`${yAxis} g.role-axis-tick line`).map((l, i) => ({ value: tickValues[i], y: middle(l) })) as { value: number; y: number }[],
        ruleYs: all("g.mark-rule.role-mark line").map(middle) as number[],
        paths: all("g.mark-line.role-mark path").map((p) => ({
          points: ((p.getAttribute("d") ?? "").match(/[ML]/g) ?? []).length,
          top: p.getBoundingClientRect().top,
        })) as { points: number; top: number }[],
        points: all("g.mark-symbol.role-mark path").map((p) => p.getAttribute("aria-label") ?? "") as string[],
      };
    }),
  );
  const tables = await page.$$eval("table", (ts) =>
    ts.map((t) => ({
      caption: (t.querySelector("caption")?.textContent ?? "") as string,
      rows: [...t.querySelectorAll("tr")].map((tr) => [...tr.children].map((c) => c.textContent ?? "")) as string[][],
    })),
  );
  const notes = await page.$$eval("p.note", (ps) => ps.map((p) => (p.textContent ?? "") as string));
  const text = await page.innerText("body");
  await page.close();
  return { errors, requests, charts, tables, notes, text };
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
    // Each side's memory timelines (where run-test recorded them) follow its own charts; the trends come last.
    const timelines = page.charts.filter((c) => c.name.startsWith("timeline-"));
    expect(page.charts.filter((c) => !timelines.includes(c)).map((c) => c.name)).toEqual([
      // B/A of the upload's throughput and peak memory, then of the download's and the requests' metrics.
      "ratio", "ratio-served",
      `throughput-${compareA}`, `memory-${compareA}`, `outcomes-${compareA}`,
      `throughput-${compareB}`, `memory-${compareB}`, `outcomes-${compareB}`,
      // The cells that passed in two or more stored runs (the lone run, A and B); the 4 MB ones never did.
      "trend-256MB-1M-throughput", "trend-256MB-8M-throughput",
    ]);
    for (const name of ["trend-256MB-1M-throughput", "trend-256MB-8M-throughput"]) {
      const t = page.charts.find((c) => c.name === name)!;
      // A point per run and a ring round each side of this comparison.
      expect(t.symbols).toBe(3 + 2);
    }
    for (const t of timelines) {
      const ram = Number(/^timeline-\d+-(\d+)MB-/.exec(t.name)![1]);
      expect(t.texts).toContain(`limit ${ram} MiB`);
      expect(t.rules).toBe(1);
      expect(t.rects).toBeGreaterThanOrEqual(1);
      expect(t.lines).toBeGreaterThanOrEqual(1);
    }
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
    const timelines = page.charts.filter((c) => c.name.startsWith(`timeline-${lone}-`));
    const trends = page.charts.filter((c) => c.name.startsWith("trend-"));
    expect(page.charts.filter((c) => !timelines.includes(c) && !trends.includes(c)).map((c) => c.name)).toEqual([
      `throughput-${lone}`, `memory-${lone}`, `outcomes-${lone}`,
    ]);
    // run-test's own timelines of the passed uploads, drawn: the phases it went through shaded, its samples as a line, the limit.
    expect(page.notes).not.toContain("Memory over time: no test of this run recorded a timeline.");
    for (const size of ["1M", "8M"]) {
      const t = timelines.find((c) => c.name === `timeline-${lone}-256MB-${size}`)!;
      expect(t).toBeDefined();
      expect(t.caption).toStartWith("Of 1 successful run(s), the one with the median upload duration: iteration 1, ");
      expect(t.legend[0]).toBe("upload");
      expect(t.legend).toContain("working set");
      expect(t.rects).toBe(t.legend.filter((l) => (TIMELINE_PHASES as readonly string[]).includes(l)).length);
      expect(t.lines).toBeGreaterThanOrEqual(1);
      expect(t.paths[0].points).toBeGreaterThanOrEqual(1);
      expect(t.texts).toContain("limit 256 MiB");
      expect(t.rules).toBe(1);
    }
    // The 4 MB cell died at start-up, before any upload: a chart if it got as far as sampling, else the line saying why not.
    expect(timelines.length === 3 || page.notes.includes(`${cellName({ ram_mb: 4, file_size: "8M" })}: no memory timeline: no timeline recorded.`)).toBe(true);
    // The comparison's runs measured the 256 MB cells too: a trend each, this run ringed.
    expect(trends.map((c) => c.name)).toEqual(["trend-256MB-1M-throughput", "trend-256MB-8M-throughput"]);
    expect(trends.every((c) => c.symbols === 3 + 1)).toBe(true);
    expect(page.charts.every((c) => c.marks > 0)).toBe(true);
    expect(page.charts[2].rects).toBe(3);
    expect(page.text).not.toContain("Comparison:");
    expect(page.text).toContain("Per cell (statistics over the successful runs)");
    expect(page.text).toContain("0/1 pass");
    // Measured on one host: no host column, no shards, no control series.
    expect(page.tables.find((t) => t.caption.startsWith("Per cell"))!.rows[0]).not.toContain("Host");
    expect(page.text).not.toContain("Shards");
    expect(page.text).not.toContain("drift sentinel");
    console.log(`report screenshots in ${shots}`);
  });
});

describe("the report of RAM-floor runs", () => {
  test("floor against file size, a line per build with its brackets, and per size the builds side by side", async () => {
    const out = await report([String(floorReal), String(floorFixture)]);
    const page = await open(out, "ram-floor.png");
    expect(page.errors).toEqual([]);
    expect(page.requests).toEqual([]);
    // The probes are no matrix: no per-cell charts, statistics or comparison for these runs.
    expect(page.charts.map((c) => c.name)).toEqual(["ram-floor"]);
    expect(page.text).not.toContain("Per cell (statistics");
    expect(page.text).not.toContain("Comparison:");

    const db = ResultsDb.open(dbPath);
    const realRun = db.run(floorReal)!;
    const floors = [...db.floors(floorReal), ...db.floors(floorFixture)];
    db.close();
    expect(floors.map((f) => [f.run_id, f.file_size])).toEqual([[floorReal, "8M"], [floorFixture, "1M"], [floorFixture, "8M"]]);
    const realBuild = `${realRun.picoshare_version}, sha256 ${realRun.picoshare_sha256!.slice(0, 12)}`;
    const sourceBuild = `/src/picoshare@0123456789ab, sha256 ${"cd".repeat(6)}`;

    const [chart] = page.charts;
    expect(chart.lines).toBe(2);
    expect(chart.legend).toEqual([realBuild, sourceBuild]);
    // A point per floor found, a bracket (rule) per floor with both ends.
    expect(chart.symbols).toBe(floors.filter((f) => f.lowest_passing_mb !== null).length);
    expect(chart.rules).toBe(floors.filter((f) => f.lowest_passing_mb !== null && f.highest_failing_mb !== null).length);
    expect(chart.rules).toBeGreaterThanOrEqual(2);

    const table = (size: string) => page.tables.find((t) => t.caption === `RAM floor of ${size}`)!.rows;
    expect(table("8M")).toEqual([
      ["8M", realBuild, sourceBuild],
      ["Bracket [highest failing, lowest passing] (MiB)", `[${realFloor.highest_failing_mb}, ${realFloor.lowest_passing_mb}]`, "[36, 40]"],
      ["How the highest failing limit failed", realFloor.failure!, "thrashing"],
      ["Probes", String(realFloor.probes.length), "4"],
      ["Time", `${realFloor.seconds.toFixed(1)}s`, "1m 01s"],
      ["Search", "finished", "UNFINISHED (time limit)"],
    ]);
    expect(table("1M").slice(0, 2)).toEqual([
      ["1M", realBuild, sourceBuild],
      ["Bracket [highest failing, lowest passing] (MiB)", "not searched", "[16, 20]"],
    ]);
    // Each run's own section: its probes in the order run.
    const probes = page.tables.find((t) => t.caption.startsWith("8M: the probes"))!.rows;
    expect(probes.slice(1).map((r) => Number(r[0]))).toEqual(realFloor.probes.map((p) => p.ram_mb));
    expect(page.text).toContain(`Run ${floorFixture}: RAM floor`);
  });
});

/** A timeline of `seconds` at 50 ms a sample: working set rising to `peakMiB` in each phase given; anon and file only where `split`. */
function timeline(phases: TimelinePhase[], seconds: number, peakMiB: number, split: boolean): TimelineSample[] {
  const n = Math.round(seconds / 0.05);
  return Array.from({ length: n }, (_, i) => {
    const phase = phases[Math.min(phases.length - 1, Math.floor((i / n) * phases.length))];
    const ws = Math.round((10 + (peakMiB - 10) * Math.sin((i / (n - 1)) * Math.PI)) * MiB);
    return { t: i * 0.05, phase, working_set_bytes: ws, anon_bytes: split ? Math.round(ws * 0.3) : null, file_bytes: split ? Math.round(ws * 0.6) : null };
  });
}

describe("the memory timelines", () => {
  test("one chart per cell of the representative test, phases and limit drawn; a line for a cell without one", async () => {
    // Results as run-test writes them: the timeline named relative to the writer's folder, the file beside the result JSON.
    const dir = join(root, "timelines");
    mkdirSync(dir);
    const db = ResultsDb.open(dbPath);
    const run = db.startRun({
      kind: "matrix", startedAt: "2026-01-29T14:00:00+00:00", backend: "local", resultsDir: dir,
      picoshareVersion: "v1.5.4", picoshareSha256: null, options: {}, host: hostFacts(work),
    });
    const add = (ram: number, iteration: number, f: Parameters<typeof fakeResult>[0], samples: TimelineSample[] | null, named?: string) => {
      const name = `timeline-${ram}MB-8M-${iteration}.csv`;
      if (samples) writeFileSync(join(dir, name), timelineCsv(samples));
      const r = { ...fakeResult({ ram, size: "8M", runId: run, ...f }), iteration, timeline_file: named === undefined ? `./results/${name}` : named || null };
      db.addResult(r, join(dir, `result-${ram}MB-8M-${iteration}.json`));
    };
    // 256 MB: durations 3, 1 and 2 s; the median is iteration 3's, its 1,500 samples thinned for drawing.
    const all3 = [...TIMELINE_PHASES];
    add(256, 1, { throughput: 8 / 3 }, timeline(all3, 30, 100, true));
    add(256, 2, { throughput: 8 }, timeline(all3, 10, 120, true));
    add(256, 3, { throughput: 4 }, timeline(all3, 75, 200, true));
    // 128 MB: both OOM-killed during the upload (a VM: no anon / file); the last one stands for the cell.
    add(128, 1, { reason: "oom_killed" }, timeline(["upload"], 2, 60, false));
    add(128, 2, { reason: "oom_killed" }, timeline(["upload"], 3, 125, false));
    // 512 MB: the median run's file is gone: the nearest one whose timeline can be read stands in.
    add(512, 1, { throughput: 8 }, timeline(all3, 10, 90, true));
    add(512, 2, { throughput: 4 }, null, "./results/gone-512MB.csv");
    add(512, 3, { throughput: 8 / 3 }, timeline(all3, 30, 80, true));
    // 64 MB: its file is gone; 32 MB: none recorded.
    add(64, 1, {}, null, "./gone/timeline-64MB-8M-1.csv");
    add(32, 1, {}, null, "");
    db.setRunStatus(run, "complete", "2026-01-29T14:01:00+00:00");
    db.close();

    const page = await open(await report([String(run)]), "timelines.png");
    expect(page.errors).toEqual([]);
    expect(page.requests).toEqual([]);
    const timelines = page.charts.filter((c) => c.name.startsWith("timeline-"));
    expect(timelines.map((c) => c.name)).toEqual([`timeline-${run}-512MB-8M`, `timeline-${run}-256MB-8M`, `timeline-${run}-128MB-8M`]);
    const [near, big, oom] = timelines;

    expect(near.caption).toStartWith(
      "Of 3 successful run(s), the one nearest the median upload duration whose timeline could be read: iteration 1, 1.00 s " +
        "(the median one's: timeline file missing (./results/gone-512MB.csv)).",
    );
    expect(Math.abs(near.paths[0].top - yOf(near, 90))).toBeLessThan(2);

    expect(big.caption).toStartWith("Of 3 successful run(s), the one with the median upload duration: iteration 3, 2.00 s.");
    expect(big.legend).toEqual(["upload", "processing", "download", "working set", "anon", "file"]);
    expect(big.rects).toBe(3); // a band per phase
    expect(big.lines).toBe(3);
    expect(big.texts).toContain("limit 256 MiB");
    expect(big.rules).toBe(1);
    expect(Math.abs(big.ruleYs[0] - yOf(big, 256))).toBeLessThan(1.5);
    // Thinned to about 600 points a line, the peak (200 MiB, iteration 3's) kept.
    const ws = big.paths[0];
    expect(ws.points).toBeLessThanOrEqual(TIMELINE_MAX_POINTS + TIMELINE_PHASES.length);
    expect(ws.points).toBeGreaterThan(TIMELINE_MAX_POINTS / 2);
    expect(Math.abs(ws.top - yOf(big, 200))).toBeLessThan(2);

    expect(oom.caption).toStartWith("No run passed; of 2 failed, the last one: iteration 2, oom_killed.");
    expect(oom.legend).toEqual(["upload", "working set"]);
    expect(oom.rects).toBe(1);
    expect(oom.lines).toBe(1);
    expect(oom.texts).toContain("limit 128 MiB");
    expect(Math.abs(oom.ruleYs[0] - yOf(oom, 128))).toBeLessThan(1.5);
    expect(Math.abs(oom.paths[0].top - yOf(oom, 125))).toBeLessThan(2);

    const cell = (ram: number) => cellName({ ram_mb: ram, file_size: "8M" });
    expect(page.notes).toContain(`${cell(64)}: no memory timeline: timeline file missing (./gone/timeline-64MB-8M-1.csv).`);
    expect(page.notes).toContain(`${cell(32)}: no memory timeline: no timeline recorded.`);
  });

  test("thinning keeps each phase's peak", () => {
    const samples = timeline([...TIMELINE_PHASES], 300, 50, true);
    // A spike in each phase, away from where the smooth curve peaks.
    for (const [i, mib] of [[100, 300], [3200, 280], [5900, 260]] as const) samples[i].working_set_bytes = mib * MiB;
    const thin = thinTimeline(samples);
    expect(thin.length).toBeLessThanOrEqual(TIMELINE_MAX_POINTS + TIMELINE_PHASES.length);
    for (const phase of TIMELINE_PHASES) {
      const peak = (xs: TimelineSample[]) => Math.max(...xs.filter((s) => s.phase === phase).map((s) => s.working_set_bytes));
      expect(peak(thin)).toBe(peak(samples));
    }
    expect(thinTimeline(samples.slice(0, 100))).toHaveLength(100);
  });
});

describe("merged runs", () => {
  test("the shards in each run's header; the host of each cell in its statistics and in the comparison", async () => {
    const dir = join(root, "shards");
    mkdirSync(dir);
    // A: 256 MB on node-1, 512 MB on node-2; B: the same split on the other hosts.
    const shard = (index: number, hostname: string, ram: number, t: number) => ({ index, count: 2, hostname, cells: [{ ram, size: "8M", throughputs: [t, t + 1, t - 1] }] });
    const a = await mergedRun(dir, "a", dbPath, [shard(1, "node-1", 256, 40), shard(2, "node-2", 512, 60)]);
    const b = await mergedRun(dir, "b", dbPath, [shard(1, "node-2", 256, 40), shard(2, "node-1", 512, 60)]);
    const page = await open(await report([String(a), String(b)]), "merged.png");
    expect(page.errors).toEqual([]);
    expect(page.requests).toEqual([]);
    expect(page.text).toContain(`1/2 on node-1, 1 cell(s) (run 1 of ${join(dir, "a-1.db")}); 2/2 on node-2, 1 cell(s) (run 1 of ${join(dir, "a-2.db")})`);
    expect(page.text).toContain(`1/2 on node-2, 1 cell(s) (run 1 of ${join(dir, "b-1.db")})`);
    const stats = page.tables.filter((t) => t.caption === "Per cell (statistics over the successful runs)").map((t) => t.rows.map((r) => r.slice(0, 4)));
    expect(stats).toEqual([
      [["Cell", "Host", "Runs", "Passed"], ["512MB/8M", "node-2", "3", "3"], ["256MB/8M", "node-1", "3", "3"]],
      [["Cell", "Host", "Runs", "Passed"], ["512MB/8M", "node-1", "3", "3"], ["256MB/8M", "node-2", "3", "3"]],
    ]);
    const primary = page.tables.find((t) => t.caption.startsWith("Primary metrics"))!.rows.map((r) => r.slice(0, 4));
    expect(primary).toEqual([["RAM (MB)", "File", "Host A", "Host B"], ["512", "8M", "node-2", "node-1"], ["256", "8M", "node-1", "node-2"]]);
    expect(page.tables.some((t) => t.caption === "512MB/8M (A on node-2, B on node-1): every metric, changed first")).toBe(true);
  });
});

/** A matrix run with a control run as run-test-matrix --control-cell 256MB/64M --control-every 2 records them, in `dir`. */
function sentinelRun(dir: string): { run: number; control: number; records: ControlRecord[] } {
  mkdirSync(join(dir, "control"), { recursive: true });
  const db = ResultsDb.open(dbPath);
  const run = db.startRun({
    kind: "matrix", startedAt: "2026-01-29T15:00:00+00:00", backend: "local", resultsDir: dir,
    picoshareVersion: "v1.5.4", picoshareSha256: null, options: {}, host: hostFacts(work),
  });
  const control = db.startRun({
    kind: CONTROL_KIND, startedAt: "2026-01-29T15:00:00+00:00", backend: "local", resultsDir: null, picoshareVersion: "v1.5.4", picoshareSha256: null,
    options: { control: { cell: "256MB/64M", every: 2, stop_on_drift: false }, matrix_run_id: run }, host: {},
  });
  db.labelRun(control, CONTROL_KIND, run);
  // Throughput and CPU seconds per control; the fifth (after test 8) is slower on both.
  const series = [[100, 0.2], [104, 0.21], [98, 0.2], [97, 0.22], [40, 0.45], [101, 0.21]];
  const watch = controlWatch();
  const records: ControlRecord[] = [];
  let tests = 0;
  for (const [i, [throughput, cpu]] of series.entries()) {
    const file = join(dir, "control", `result-256MB-64M-${i + 1}.json`);
    const r = {
      ...fakeResult({ ram: 256, size: "64M", throughput, runId: control }), cpu_seconds: cpu, iteration: i + 1,
      timestamp: `2026-01-29T15:0${i}:00+00:00`, environment_probe: { disk_write_mibps: 500, cpu_seconds: 0.02 },
    };
    writeFileSync(file, JSON.stringify(r));
    db.addResult(r, file);
    const record = controlRecord(tests, `2026-01-29T15:0${i}:30+00:00`, r, file);
    record.drift = watch.add(record, `control ${i + 1} (after test ${tests})`);
    records.push(record);
    // Two tests of the matrix between controls, none after the last.
    for (let k = 0; k < 2 && i < series.length - 1; k++) db.addResult({ ...fakeResult({ ram: 512, size: "8M", runId: run }), iteration: ++tests }, null);
  }
  db.setRunStatus(run, "complete", "2026-01-29T15:10:00+00:00");
  db.close();
  writeFileSync(join(dir, "matrix.json"), JSON.stringify({ version: 2, run_id: run, control_run_id: control, controls: records }));
  return { run, control, records };
}

describe("the drift sentinel", () => {
  test("the control series: each figure against the tests before it, the band, the drifted control marked; from the results log without matrix.json", async () => {
    const dir = join(root, "sentinel");
    const { run, control, records } = sentinelRun(dir);
    // The matrix warned at control 5, of both figures.
    expect(records.map((r) => r.drift !== null)).toEqual([false, false, false, false, true, false]);
    const check = async (shot: string) => {
      const page = await open(await report([String(run)]), shot);
      expect(page.errors).toEqual([]);
      expect(page.requests).toEqual([]);
      const chart = page.charts.find((c) => c.name === `control-${run}`)!;
      expect(chart.legend).toEqual([...CONTROL_STATES]);
      expect(chart.rects).toBe(2); // a band per figure
      expect(chart.symbols).toBe(2 * 6);
      // Control 5 is outside the band in both panels, and only it.
      const drifted = chart.points.filter((p) => p.includes("state: outside the band: drift"));
      expect(drifted).toHaveLength(2);
      expect(drifted[0]).toContain("After test (of the matrix): 8; throughput (MiB/s): 40;");
      expect(drifted[1]).toContain("After test (of the matrix): 8; CPU seconds (s): 0.45;");
      expect(chart.points.filter((p) => p.includes("state: first 3: set the band"))).toHaveLength(6);
      const table = page.tables.find((t) => t.caption === `Control cell 256MB/64M, every 2 test(s) (control run ${control})`)!.rows;
      expect(table.slice(1).map((r) => [r[0], r[1], r[4], r[5], r.at(-1)])).toEqual([
        ["1", "0", "100.00", "0.200", "(sets the band)"], ["2", "2", "104.00", "0.210", "(sets the band)"], ["3", "4", "98.00", "0.200", "(sets the band)"],
        ["4", "6", "97.00", "0.220", "-"], ["5", "8", "40.00", "0.450", "throughput, CPU seconds"], ["6", "10", "101.00", "0.210", "-"],
      ]);
      // The warning the matrix gave, and the bands: 98-104 widened by 25 % of the median (100) on each side.
      expect(page.text).toContain(records[4].drift!);
      expect(page.text).toContain("throughput 73-129 MiB/s (first 3: 98-104)");
      return page;
    };
    const recorded = await check("sentinel.png");
    expect(recorded.notes.some((n) => n.includes("not at hand"))).toBe(false);
    // Without the matrix's folder: the same series from the results log, said so.
    rmSync(join(dir, "matrix.json"));
    const fromLog = await check("sentinel-log.png");
    expect(fromLog.notes.some((n) => n.includes(`${join(dir, "matrix.json")} is not at hand: the controls are read from the results log`))).toBe(true);
    // The control run alone is no side of a comparison with its matrix.
    expect(readFileSync(await report([String(control)]), "utf8")).not.toContain("Comparison:");
  });
});

/** The harness commits of the trend runs: the second run onwards measured with another one. */
const HARNESS = ["a".repeat(40), "b".repeat(40)];

/**
 * A run as the harness stores one, of fake results: per cell, one passed
 * test per throughput, each with the build's version and the harness's commit.
 */
function storedRun(at: string, build: { version: string; harness: string; host?: Partial<typeof HOST> }, cells: { ram: number; size: string; concurrency?: number; throughputs: number[] }[]): number {
  const db = ResultsDb.open(dbPath);
  const host = { ...HOST, ...build.host };
  const run = db.startRun({ kind: "matrix", startedAt: at, backend: "local", resultsDir: null, picoshareVersion: build.version, picoshareSha256: "ab".repeat(32), options: {}, host });
  for (const c of cells) {
    for (const [i, t] of c.throughputs.entries()) {
      const r = fakeResult({ ram: c.ram, size: c.size, throughput: t, runId: run, host, concurrency: c.concurrency, peakMiB: 30 + t / 10 });
      db.addResult({ ...r, iteration: i + 1, picoshare_version: build.version, harness_commit: build.harness, harness_dirty: false }, null);
    }
  }
  db.setRunStatus(run, "complete", at);
  db.close();
  return run;
}

describe("trends", () => {
  // Three runs of 128MB/16M (and its x3 twin) over three days: another build and harness on the second, another governor on the third.
  let runs: number[] = [];
  beforeAll(() => {
    const cells = (t: number) => [{ ram: 128, size: "16M", throughputs: [t - 1, t, t + 1, t, t + 2] }, { ram: 128, size: "16M", concurrency: 3, throughputs: [t / 3, t / 3, t / 3] }];
    runs = [
      storedRun("2026-11-01T10:00:00+00:00", { version: "v1.5.3", harness: HARNESS[0] }, cells(90)),
      storedRun("2026-11-02T10:00:00+00:00", { version: "v1.5.4", harness: HARNESS[1] }, cells(100)),
      storedRun("2026-11-03T10:00:00+00:00", { version: "v1.5.4", harness: HARNESS[1], host: { cpu_governor: "powersave" } }, cells(80)),
    ];
  });

  test("--trend CELL: the median per run over time, labelled by build, the harness and the environment changes marked once each; the table", async () => {
    const page = await open(await report([String(runs[2]), "--trend", "128MB/16M"]), "trend.png");
    expect(page.errors).toEqual([]);
    expect(page.requests).toEqual([]);
    // Only the cell asked for: not its x3 twin.
    expect(page.charts.filter((c) => c.name.startsWith("trend-")).map((c) => c.name)).toEqual(["trend-128MB-16M-throughput"]);
    const chart = page.charts.find((c) => c.name === "trend-128MB-16M-throughput")!;
    expect(chart.caption).toBe(CAPTIONS.trend);
    expect(chart.legend).toEqual([...TREND_STATES]);
    // A point per run, and a ring round this report's run.
    expect(chart.symbols).toBe(3 + 1);
    const point = (median: number) => chart.points.filter((p) => p.includes(`throughput (MiB/s): ${median};`));
    expect(point(90)).toHaveLength(1);
    expect(point(90)[0]).toContain("Against the run before: as the run before;");
    expect(point(100)[0]).toContain("Against the run before: harness differs;");
    expect(point(80).some((p) => p.includes("Against the run before: environment differs;"))).toBe(true);
    // Each point where it belongs on the y axis; the line through them.
    expect(chart.lines).toBe(1);
    expect(chart.paths[0].points).toBe(3);
    expect(Math.abs(chart.paths[0].top - yOf(chart, 100))).toBeLessThan(2);
    // The build named where it changes: the first run's and the second's, not the third's (the same build).
    expect(chart.texts.filter((t) => t === "v1.5.3" || t === "v1.5.4")).toEqual(["v1.5.3", "v1.5.4"]);
    // The interval's bar per run and a dashed line at each run that differs from the one before.
    expect(chart.rules).toBe(3 + 2);

    const table = page.tables.find((t) => t.caption === "throughput (MiB/s) of 128MB/16M, median per run")!.rows;
    expect(table.slice(1).map((r) => [r[0], r[3], r[5], r[6], r[8]])).toEqual([
      [String(runs[0]), "v1.5.3", "5", "90.00", ""],
      [String(runs[1]), "v1.5.4", "5", "100.00", "*"],
      [`${runs[2]} (this report)`, "v1.5.4", "5", "80.00", "*"],
    ]);
    // The harness's change is said once, as the harness's; the governor as the environment's.
    expect(page.notes).toContain(`* run ${runs[1]}: harness: aaaaaaaaaaaa -> bbbbbbbbbbbb`);
    expect(page.notes).toContain(`* run ${runs[2]}: environment: cpu_governor: performance vs powersave (CPU frequency scaling policy)`);
    expect(page.notes.filter((n) => n.includes("harness_commit"))).toEqual([]);
    // The same trend as `results trend` prints it: one mechanism.
    const cli = await runScript("results", ["trend", "--cell", "128MB/16M", "--metric", "throughput", "--db", dbPath]);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toContain(`* run ${runs[1]}: harness: aaaaaaaaaaaa -> bbbbbbbbbbbb\n`);
  });

  test("by default every cell of the run that two or more runs measured, x3 apart; --trend-metric and --since", async () => {
    const page = await open(await report([String(runs[2]), "--trend-metric", "throughput,picoshare_peak_rss"]), "trend-default.png");
    expect(page.errors).toEqual([]);
    expect(page.charts.filter((c) => c.name.startsWith("trend-")).map((c) => c.name)).toEqual([
      "trend-128MB-16M-throughput", "trend-128MB-16M-picoshare_peak_rss", "trend-128MB-16M-x3-throughput", "trend-128MB-16M-x3-picoshare_peak_rss",
    ]);
    const x3 = page.tables.find((t) => t.caption === "throughput (MiB/s) of 128MB/16M/x3, median per run")!.rows;
    expect(x3.slice(1).map((r) => [r[5], r[6]])).toEqual([["3", "30.00"], ["3", "33.33"], ["3", "26.67"]]);
    // The fake peak RSS is 30 MiB + a tenth of the throughput.
    const rss = page.tables.find((t) => t.caption === "PicoShare peak RSS (MiB) of 128MB/16M, median per run")!.rows;
    expect(rss.slice(1).map((r) => r[6])).toEqual(["39.0", "40.0", "38.0"]);
    expect(page.text).toContain("Trends: throughput, PicoShare peak RSS over the stored runs");

    // From the second day on: two runs, the first of them compared with nothing before it.
    const since = await open(await report([String(runs[2]), "--trend", "128MB/16M", "--since", "2026-11-02"]), "trend-since.png");
    expect(since.errors).toEqual([]);
    const chart = since.charts.find((c) => c.name === "trend-128MB-16M-throughput")!;
    expect(chart.symbols).toBe(2 + 1);
    expect(chart.rules).toBe(2 + 1);
    const rows = since.tables.find((t) => t.caption === "throughput (MiB/s) of 128MB/16M, median per run since 2026-11-02")!.rows;
    expect(rows.slice(1).map((r) => [r[0], r[8]])).toEqual([[String(runs[1]), ""], [`${runs[2]} (this report)`, "*"]]);
    // A cell no run measured, asked for: said so; --no-trend: no section.
    const none = await open(await report([String(runs[2]), "--trend", "128MB/16M/x2"]), "trend-none.png");
    expect(none.notes).toContain("throughput (MiB/s) of 128MB/16M/x2, median per run: no stored run measured this cell.");
    expect(readFileSync(await report([String(runs[2]), "--no-trend"]), "utf8")).not.toContain("Trends:");
  });
});

describe("cells of several concurrency levels", () => {
  test("x1 and x3 of one RAM and size are cells apart: statistics, charts, grid and the comparison", async () => {
    const cells = (t: number) => ["8M", "16M"].flatMap((size) => [
      { ram: 192, size, throughputs: [t, t + 1, t - 1, t, t + 2] },
      { ram: 192, size, concurrency: 3, throughputs: [t / 2, t / 2 + 1, t / 2 - 1, t / 2, t / 2 + 1] },
    ]);
    const a = storedRun("2026-11-05T10:00:00+00:00", { version: "v1.5.4", harness: HARNESS[1] }, cells(60));
    const b = storedRun("2026-11-05T11:00:00+00:00", { version: "v1.5.4", harness: HARNESS[1] }, cells(90));
    const page = await open(await report([String(a), String(b), "--no-trend"]), "concurrency.png");
    expect(page.errors).toEqual([]);
    expect(page.requests).toEqual([]);
    expect(page.text).not.toContain("Trends:");
    const names = ["192MB/8M", "192MB/8M/x3", "192MB/16M", "192MB/16M/x3"];
    const stats = page.tables.filter((t) => t.caption === "Per cell (statistics over the successful runs)");
    expect(stats.map((t) => t.rows.map((r) => r[0]))).toEqual([["Cell", ...names], ["Cell", ...names]]);
    expect(stats[0].rows.slice(1).map((r) => r[6])).toEqual(["60.00", "30.00", "60.00", "30.00"]);
    const chart = (name: string) => page.charts.find((c) => c.name === name)!;
    // A line per RAM limit and level, each through both sizes; the legend names them apart.
    for (const run of [a, b]) {
      expect(chart(`throughput-${run}`).legend).toEqual(["192 MB", "192 MB x3"]);
      expect(chart(`throughput-${run}`).lines).toBe(2);
      expect(chart(`throughput-${run}`).symbols).toBe(4);
      expect(chart(`memory-${run}`).lines).toBe(2);
      // The grid: a rect per cell, x1 and x3 on rows of their own.
      expect(chart(`outcomes-${run}`).rects).toBe(4);
      expect(chart(`outcomes-${run}`).texts).toEqual(expect.arrayContaining(["192 MB", "192 MB x3"]));
    }
    expect(chart(`throughput-${a}`).points.filter((p) => p.includes("cell: 192MB/8M/x3;"))).toHaveLength(1);
    // B / A: a row per cell, spelt as everywhere; a point per cell and metric.
    const ratio = chart("ratio");
    expect(ratio.symbols).toBe(4 * 2);
    for (const n of names) expect(ratio.texts.filter((t) => t === n)).toHaveLength(2);
    expect(ratio.points.filter((p) => p.includes("cell: 192MB/16M/x3;"))).toHaveLength(2);
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
      [["1", "--db", dbPath, "--trend", "256 1G"], /--trend: "256 1G" is not a cell: write RAM, size and \(above 1\) concurrency as 256MB\/1G/],
      [["1", "--db", dbPath, "--trend", "256MB/1G,"], /--trend has an empty item/],
      [["1", "--db", dbPath, "--trend-metric", "speed"], /--trend-metric "speed" is not a metric of compare \(throughput, /],
      [["1", "--db", dbPath, "--since", "yesterday"], /--since "yesterday" is not an ISO 8601 date or time \(e\.g\. --since 2026-11-01/],
      [["1", "--db", dbPath, "--since", "2026-11-31"], /--since "2026-11-31" is not an ISO 8601 date/],
      [["1", "--db", dbPath, "--since", "11/02/2026"], /--since "11\/02\/2026" is not an ISO 8601 date/],
      [["1", "--db", dbPath, "--no-trend", "--since", "2026-11-01"], /--no-trend and --since do not go together/],
    ] as [string[], RegExp][]) {
      const out = join(root, "refused.html");
      const ran = await runScript("report", [...args, "--out", out]);
      expect(ran.code).toBe(2);
      expect(ran.stdout).toBe("");
      expect(ran.stderr.trim().split("\n")[0]).toMatch(message);
      expect(ran.stderr).toContain("ERROR:");
      expect(existsSync(out)).toBe(false);
    }
  });
});
