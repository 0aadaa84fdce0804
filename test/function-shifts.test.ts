// compare's "where the instructions went": one real instrumented twin's
// result and dumps, copied five times as run A; run B is the same copies with
// one function's cost raised in each upload dump (edited on the copies, the
// totals line and upload_instructions made to match), so B's upload
// instructions are higher and that function is what moved. Each side's
// results and dumps sit in a folder of their own, the dumps' recorded paths
// pointing elsewhere: compare finds them beside the result JSON, as for a
// results folder that moved. Run C has B's results without dumps. Last, a
// live A/A comparison (one run a side) keeps its twins' dumps in its folder.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { ROOT } from "../lib/core/paths.ts";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { parseCallgrindDump, selfByFunction } from "../lib/upload/callgrind-dump.ts";
import type { TestResult } from "../lib/upload/result.ts";
import { ResultsDb } from "../lib/store/results-db.ts";
import { HOST } from "./helpers/results.ts";
import { runScript } from "./helpers/run.ts";
import { realTwin } from "./helpers/twin.ts";

setDefaultTimeout(120_000);

let root: string;
let db: string;
/** The function whose cost B's dumps raise, and by how much on average. */
let raised: string;
let added: number;
const runs: Record<"a" | "b" | "c" | "d", number> = { a: 0, b: 0, c: 0, d: 0 };

/** The dump's text with `extra` more Ir on the first own cost line of `fn`, and its totals line to match. */
function raise(text: string, fn: string, extra: number): string {
  const lines = text.split("\n");
  // Its id, from where it is first named (as a caller, fn=, or as a callee, cfn=), then its first own block.
  const id = lines.map((l) => /^c?fn=\((\d+)\) (.*)$/.exec(l)).find((m) => m !== null && m[2] === fn)![1];
  const def = lines.findIndex((l) => l === `fn=(${id})` || l.startsWith(`fn=(${id}) `));
  let skip = false;
  for (let i = def + 1; i < lines.length; i++) {
    if (lines[i].startsWith("calls=")) skip = true;
    else if (/^[0-9+*-]/.test(lines[i])) {
      if (!skip) {
        const [pos, ir] = lines[i].split(" ");
        lines[i] = `${pos} ${Number(ir) + extra}`;
        break;
      }
      skip = false;
    }
  }
  const edited = lines.join("\n").replace(/^totals: (\d+)$/m, (_, t) => `totals: ${Number(t) + extra}`);
  // The edit landed where meant: that function, and the totals, up by `extra`.
  const [before, after] = [text, edited].map((t) => parseCallgrindDump(t));
  if (selfByFunction(after).get(fn)! - selfByFunction(before).get(fn)! !== extra || after.totals! - before.totals! !== extra) throw new Error(`${fn}'s cost was not raised`);
  return edited;
}

/** One side: five copies of the real result (and its dumps, edited by `edit`) in `dir`, stored as a run. */
function storeSide(real: TestResult, dumps: Record<string, string>, dir: string, edit: ((text: string, i: number) => string) | null): number {
  mkdirSync(dir);
  const store = ResultsDb.open(db);
  try {
    const run = store.startRun({
      kind: "matrix", startedAt: real.timestamp, backend: "local", resultsDir: dir, picoshareVersion: real.picoshare_version,
      picoshareSha256: real.picoshare_sha256, options: {}, host: HOST,
    });
    for (let i = 1; i <= 5; i++) {
      const named: Record<string, string> = {};
      const r = structuredClone(real) as any;
      for (const phase of ["upload", "download"]) {
        // Recorded where no such file is: found by its name beside the result.
        named[phase] = `./moved/callgrind-${i}-${phase}.out`;
        if (!edit) continue;
        const text = phase === "upload" ? edit(readFileSync(dumps[phase], "utf8"), i) : readFileSync(dumps[phase], "utf8");
        writeFileSync(join(dir, `callgrind-${i}-${phase}.out`), text);
        r[`${phase}_instructions`] = parseCallgrindDump(text).totals;
      }
      if (!edit) r.upload_instructions += added + 1000 * i;
      r.instructions_settings = { ...r.instructions_settings, dumps: named };
      r.run_id = run;
      const file = join(dir, `result-${i}.json`);
      writeFileSync(file, JSON.stringify(r));
      store.addResult(r, file);
    }
    store.setRunStatus(run, "complete", real.timestamp);
    return run;
  } finally {
    store.close();
  }
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "function-shifts-"));
  db = join(root, "results.db");
  const { result: real, dumps } = await realTwin(root);
  // The fifth function by self count: not the top one in A, so B's rise has to lift it to the top of the table.
  const upload = readFileSync(dumps.upload, "utf8");
  const ranked = [...selfByFunction(parseCallgrindDump(upload))].sort((x, y) => y[1] - x[1]);
  raised = ranked[4][0];
  const extra = Math.round(real.upload_instructions! * 0.05);
  added = extra + 3000; // the mean of extra + 1000 * i over i = 1..5
  runs.a = storeSide(real, dumps, join(root, "a"), (text) => text);
  runs.b = storeSide(real, dumps, join(root, "b"), (text, i) => raise(text, raised, extra + 1000 * i));
  runs.c = storeSide(real, dumps, join(root, "c"), null);
  // Run D: B's again, one of its upload dumps then damaged.
  runs.d = storeSide(real, dumps, join(root, "d"), (text, i) => raise(text, raised, extra + 1000 * i));
  writeFileSync(join(root, "d", "callgrind-1-upload.out"), "not a dump\n");
}, 300_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** compare of run A against `b` (a run id, or several as "2,3"). */
async function compare(b: number | string, ...args: string[]) {
  const r = await runScript("compare", ["--run-a", String(runs.a), "--run-b", String(b), "--db", db, ...args]);
  expect(r.code).toBe(0);
  return r.stdout;
}

test("B's raised function comes first in the text, Markdown and JSON, with both counts, the change and its share", async () => {
  const json = JSON.parse(await compare(runs.b, "--json"));
  const up = json.cells[0].metrics.find((m: any) => m.key === "upload_instructions");
  expect(up.verdict).toBe("higher");
  // The download's dumps are the same on both sides: no change, no table for it.
  expect(json.function_shifts).toHaveLength(1);
  const s = json.function_shifts[0];
  expect(s).toMatchObject({ metric: "upload_instructions", verdict: "higher", ram_mb: 256, file_size: "8M", dumps_a: 5, dumps_b: 5, missing: null });
  expect(s.total_b - s.total_a).toBeCloseTo(added, 3);
  expect(s.functions[0]).toMatchObject({ function: raised, change: added, share: 1 });
  expect(s.functions[0].b - s.functions[0].a).toBeCloseTo(added, 3);
  // Nothing else moved: the only function listed.
  expect(s.functions).toHaveLength(1);

  const text = (await compare(runs.b)).split("\n");
  const title = text.findIndex((l) => l.includes("upload instructions higher: where the instructions went"));
  expect(title).toBeGreaterThan(0);
  expect(text[title + 1]).toMatch(/^Function\s+A\s+B\s+Change\s+Share of change$/);
  expect(text[title + 3].startsWith(`${raised} `)).toBe(true);
  expect(text[title + 3]).toContain(`+${added.toLocaleString("en-US")}`);
  expect(text[title + 3]).toMatch(/100\.0 %$/);

  const md = (await compare(runs.b, "--markdown")).split("\n");
  const mdTitle = md.findIndex((l) => l.startsWith("**256MB/8M: upload instructions higher: where the instructions went"));
  expect(mdTitle).toBeGreaterThan(0);
  expect(md[mdTitle + 2]).toBe("| Function | A | B | Change | Share of change |");
  expect(md[mdTitle + 4].startsWith(`| ${raised} |`)).toBe(true);
});

test("B without dumps: one line saying so, no table", async () => {
  const text = await compare(runs.c);
  expect(text).toContain("256MB/8M: upload instructions higher, but no per-function counts: no callgrind dump of B found");
  expect(text).not.toContain("where the instructions went");
  const json = JSON.parse(await compare(runs.c, "--json"));
  expect(json.function_shifts).toEqual([expect.objectContaining({ metric: "upload_instructions", dumps_a: 5, dumps_b: 0, functions: [] })]);
});

test("a dump that cannot be read: said once, left out, the others still make the table", async () => {
  const r = await runScript("compare", ["--run-a", String(runs.a), "--run-b", String(runs.d), "--db", db, "--json"]);
  expect(r.code).toBe(0);
  expect(r.stderr).toContain(`callgrind dump ${join(root, "d", "callgrind-1-upload.out")} left out of where the instructions went`);
  const s = JSON.parse(r.stdout).function_shifts[0];
  expect(s).toMatchObject({ runs_b: 5, dumps_b: 4, missing: null });
  expect(s.functions[0].function).toBe(raised);
});

test("the report shows the same table", async () => {
  const out = join(root, "report.html");
  const r = await runScript("report", [String(runs.a), String(runs.b), "--db", db, "--out", out]);
  expect(r.code).toBe(0);
  const html = readFileSync(out, "utf8");
  const at = html.indexOf("upload instructions higher: where the instructions went");
  expect(at).toBeGreaterThan(0);
  expect(html.slice(at)).toContain(`<td>${raised.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")}</td>`);
});

test("several builds: each build's table or line, named by its build, in the N-way text and Markdown; in its comparison in the JSON", async () => {
  const ids = `${runs.b},${runs.c}`;
  const text = await compare(ids);
  const lines = text.split("\n");
  const title = lines.findIndex((l) => l.startsWith("B1 against A, 256MB/8M: upload instructions higher: where the instructions went"));
  expect(title).toBeGreaterThan(0);
  expect(lines[title + 3].startsWith(`${raised} `)).toBe(true);
  expect(text).toContain("B2 against A, 256MB/8M: upload instructions higher, but no per-function counts: no callgrind dump of B found");
  const md = await compare(ids, "--markdown");
  expect(md).toContain("**B1 against A, 256MB/8M: upload instructions higher: where the instructions went");
  expect(md).toContain(`| ${raised} |`);
  const json = JSON.parse(await compare(ids, "--json"));
  expect(json.comparisons.map((c: any) => c.function_shifts[0].functions[0]?.function ?? null)).toEqual([raised, null]);
});

test("a live comparison keeps each twin's dumps in its own folder, beside the results", async () => {
  const picoshare = (await resolvePicoShare()).path;
  const results = join(root, "live");
  const r = await runScript("compare", [
    "--a", picoshare, "--b", picoshare, "--memory-limits", "256", "--file-sizes", "8M", "--iterations", "1", "--warmup", "0", "--count-instructions",
    "--test-files", join(root, "files"), "--work-dir", join(root, "work"), "--results-dir", results, "--json",
  ]);
  expect(r.code).toBe(0);
  const [folder] = readdirSync(results).filter((f) => f.startsWith("compare-"));
  for (const side of ["a", "b"]) {
    const dir = join(results, folder, side);
    const [file] = readdirSync(dir).filter((f) => /^result-.*\.json$/.test(f));
    const dumps = JSON.parse(readFileSync(join(dir, file), "utf8")).instructions_settings.dumps;
    for (const phase of ["upload", "download"]) {
      const path = resolve(ROOT, dumps[phase]);
      expect(dirname(path)).toBe(dir);
      expect(parseCallgrindDump(readFileSync(path, "utf8")).totals).toBeGreaterThan(1_000_000);
    }
  }
  // One run a side gives no verdict: no table, and no line either.
  expect(JSON.parse(r.stdout).function_shifts).toBeUndefined();
});
