// --count-instructions against a real PicoShare under a real valgrind: each
// measured test's twin counts the upload's and the download's instructions,
// the same from one test to the next, and nothing else of the twin reaches
// the result; without valgrind the flag refuses.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { ROOT } from "../lib/core/paths.ts";
import { dumpInstructions } from "../lib/upload/instructions.ts";
import { runScript } from "./helpers/run.ts";
import { cellArgs } from "../lib/matrix/cell.ts";
import { MiB, parseSize } from "../lib/core/sizes.ts";
import type { MatrixOptions } from "../lib/matrix/state.ts";

setDefaultTimeout(300_000);

let root: string;
let files: string;
let picoshare: string;

beforeAll(async () => {
  picoshare = (await resolvePicoShare()).path;
  root = mkdtempSync(join(tmpdir(), "instructions-spec-"));
  files = join(root, "files");
  mkdirSync(files);
  await writeTestFile(testFilePath("8M", files), 8 * MiB);
  // The count is steady from 32M up (docs/run-test.md); 8M's runs ranged up to 3 % on a busy host.
  await writeTestFile(testFilePath("32M", files), 32 * MiB);
}, 600_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

function dirs() {
  const base = mkdtempSync(join(root, "case-"));
  const work = join(base, "work");
  mkdirSync(work);
  return { results: join(base, "results"), work };
}

test("each measured test's twin counts the upload, the download and the requests, on one P; the same test again counts the same upload and download (within 1 %); the timings are the measured test's", async () => {
  const d = dirs();
  const r = await runScript("run-test", [
    "--ram", "256", "--file-size", "32M", "--iterations", "3", "--count-instructions",
    "--test-files", files, "--results-dir", d.results, "--work-dir", d.work, "--picoshare", picoshare,
  ]);
  expect(r.stderr).toContain("instrumented twin");
  expect(r.code).toBe(0);
  const results = r.stdout.trim().split("\n").map((p) => JSON.parse(readFileSync(resolve(ROOT, p), "utf8")));
  expect(results).toHaveLength(3);
  for (const res of results) {
    expect(res.success).toBe(true);
    expect(res.instructions_source).toBe("valgrind");
    // The upload of 32 MiB with its processing is hundreds of millions of instructions; the download too.
    expect(res.upload_instructions).toBeGreaterThan(50_000_000);
    expect(res.download_instructions).toBeGreaterThan(50_000_000);
    const s = res.instructions_settings;
    expect(s.tool).toBe("callgrind");
    expect(s.exit_reason).toBe("success");
    expect(s.memory_limit_mib).toBeGreaterThan(256);
    // As the twin's PicoShare got it, from its /proc/PID/environ.
    expect(s.go_runtime_env.GOMAXPROCS).toBe("1");
    expect(s.go_runtime_env.GODEBUG).toContain("asyncpreemptoff=1");
    // The measured test ran without valgrind, under its own limit: its upload took a fraction of the twin's time.
    expect(res.backend_settings.memory_limit_bytes).toBe(256 * MiB);
    expect(res.duration_seconds * 3).toBeLessThan(s.seconds);
    // Each phase's dump is kept beside the result, and holds the count recorded.
    for (const phase of ["upload", "download"] as const) {
      const dump = resolve(ROOT, s.dumps[phase]);
      expect(existsSync(dump)).toBe(true);
      expect(dumpInstructions(readFileSync(dump, "utf8"))).toBe(res[`${phase}_instructions`]);
    }
    // The requests phase: the test made K = 20 of each kind (the default); the twin counted 5 of each, a dump per kind, the field per request.
    expect(res.requests_per_kind).toBe(20);
    expect(s.requests_per_kind).toBe(5);
    for (const kind of ["list_page", "info_page", "download_first_byte"] as const) {
      expect(res[`${kind}_instructions`]).toBeGreaterThan(100_000);
      expect(res[`${kind}_instructions`]).toBe(Math.round(dumpInstructions(readFileSync(resolve(ROOT, s.dumps[kind]), "utf8"))! / 5));
    }
  }
  // With each kind's first request left uncounted, a page costs the same in every twin: two of three info pages within 2 %.
  const info = results.map((x) => x.info_page_instructions as number).sort((x, y) => x - y);
  expect(Math.min(info[1] - info[0], info[2] - info[1]) / info[1]).toBeLessThan(0.02);
  // The same test again counts the same work: for each phase, two of the three within 1 % of each other, none 5 % away.
  for (const phase of ["upload", "download"] as const) {
    const n = results.map((x) => x[`${phase}_instructions`] as number).sort((x, y) => x - y);
    expect(Math.min(n[1] - n[0], n[2] - n[1]) / n[1]).toBeLessThan(0.01);
    expect((n[2] - n[0]) / n[1]).toBeLessThan(0.05);
  }
});

test("without valgrind on PATH: exit 2, one line naming the package, nothing written", async () => {
  const d = dirs();
  const r = await runScript(
    "run-test",
    ["--ram", "256", "--file-size", "8M", "--count-instructions", "--test-files", files, "--results-dir", d.results, "--work-dir", d.work, "--picoshare", picoshare],
    { PATH: "/nonexistent" },
  );
  expect(r.code).toBe(2);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain("--count-instructions needs valgrind: install the Debian package valgrind (apt-get install valgrind)");
  expect(existsSync(d.results)).toBe(false);
});

test("a callgrind dump's count is its totals line", () => {
  expect(dumpInstructions("version: 1\nevents: Ir\nsummary: 0\n\nfn=(1) main\n3 10\ntotals: 154668\n")).toBe(154668);
  expect(dumpInstructions("events: Ir\nsummary: 90\n")).toBe(90);
  expect(dumpInstructions("events: Ir\n")).toBeNull();
});

test("--instruction-twins N: the matrix gives --count-instructions to the first N measured tests of a cell only; without --count-instructions it is refused", async () => {
  const o = { picoshare: { path: "/p" }, work_dir: "/w", warmup: 1, count_instructions: true, instruction_twins: 2 } as unknown as MatrixOptions;
  const counted = [1, 2, 3, 4].map((iteration) =>
    cellArgs({ index: iteration, ram: 256, size: parseSize("8M"), concurrency: 1, iteration, warmup: iteration === 1 }, { dir: "/d", db: "/d/r.db", options: o }),
  );
  // The warm-up's run-test skips its twin itself; the measured 1 and 2 get one, the 3rd none; no child is told N.
  expect(counted.map((a) => a.includes("--count-instructions"))).toEqual([true, true, true, false]);
  expect(counted.some((a) => a.includes("--instruction-twins"))).toBe(false);
  const d = dirs();
  const r = await runScript("run-test", ["--ram", "256", "--file-size", "8M", "--instruction-twins", "2", "--test-files", files, "--results-dir", d.results, "--work-dir", d.work]);
  expect(r.code).toBe(2);
  expect(r.stderr.trim().split("\n")).toEqual([expect.stringContaining("--instruction-twins without --count-instructions")]);
  expect(existsSync(d.results)).toBe(false);
});

test("--instruction-sizes LIST: twins in the cells of those sizes only, no child told the list; without --count-instructions, or naming a size not tested, refused", async () => {
  const o = { picoshare: { path: "/p" }, work_dir: "/w", warmup: 0, count_instructions: true, instruction_twins: null, instruction_sizes: ["8M"] } as unknown as MatrixOptions;
  const args = ["8M", "32M"].map((size) =>
    cellArgs({ index: 1, ram: 256, size: parseSize(size), concurrency: 1, iteration: 1, warmup: false }, { dir: "/d", db: "/d/r.db", options: o }),
  );
  expect(args.map((a) => a.includes("--count-instructions"))).toEqual([true, false]);
  expect(args.some((a) => a.includes("--instruction-sizes"))).toBe(false);
  // run-test itself: a list without its one size is refused, as is a matrix's or a comparison's naming a size they do not test.
  const d = dirs();
  const r = await runScript("run-test", [
    "--ram", "256", "--file-size", "8M", "--count-instructions", "--instruction-sizes", "32M", "--requests", "1",
    "--test-files", files, "--results-dir", d.results, "--work-dir", d.work, "--picoshare", picoshare,
  ]);
  expect(r.code).toBe(2);
  expect(r.stderr.trim().split("\n")).toEqual([expect.stringContaining("--instruction-sizes 32M: not a file size tested here (8M)")]);
  expect(existsSync(d.results)).toBe(false);
  for (const [script, extra, message] of [
    ["run-test-matrix", ["--memory-limits", "256", "--file-sizes", "8M", "--instruction-sizes", "8M"], "--instruction-sizes without --count-instructions"],
    ["run-test-matrix", ["--memory-limits", "256", "--file-sizes", "8M,32M", "--count-instructions", "--instruction-sizes", "8M,1G"], "--instruction-sizes 1G: not a file size tested here (8M,32M)"],
    ["compare", ["--a", picoshare, "--b", picoshare, "--memory-limits", "256", "--file-sizes", "8M", "--count-instructions", "--instruction-sizes", "16M"], "--instruction-sizes 16M: not a file size tested here (8M)"],
  ] as const) {
    const e = dirs();
    const ran = await runScript(script, [...extra, "--test-files", files, "--results-dir", e.results, "--work-dir", e.work]);
    expect(ran.code).toBe(2);
    expect(ran.stderr.trim().split("\n")[0]).toContain(message);
    expect(existsSync(e.results)).toBe(false);
  }
});
