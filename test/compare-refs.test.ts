// Refs of one checkout compared live, each build labelled by its ref and
// commit in every output; a live comparison killed with SIGKILL mid-test and
// resumed: every test once, the same comparison. A real PicoShare v1.5.4
// source tree (from Go's module cache) committed to a git repository made
// here, with a branch per patch.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolvePicoShare, resolvePicoShareChoice } from "../lib/upload/picoshare.ts";
import { CHUNK_SIZE_PATCH, CPU_WORK_PATCH } from "../lib/bench/patches.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import { ROOT, scriptArgv } from "../lib/core/paths.ts";
import { runScript, waitFor, type Ran } from "./helpers/run.ts";
import { alive, cgroupPids, testCgroups } from "./helpers/cgroups.ts";
import { query } from "./helpers/matrix.ts";
import { makeCheckout, type Checkout } from "../lib/bench/checkout.ts";

setDefaultTimeout(300_000);

let root: string;
let files: string;
let repo: string;
let v154: string;
const commit: Record<string, string> = {};

let git: Checkout["git"];

beforeAll(async () => {
  v154 = (await resolvePicoShare()).path;
  root = mkdtempSync(join(tmpdir(), "compare-refs-spec-"));
  files = join(root, "files");
  mkdirSync(files);
  await writeTestFile(testFilePath("8M", files), 8 * MiB);
  // A maintainer's checkout: v1.5.4 as "base", a branch per change.
  ({ repo, git } = await makeCheckout(root, "base", [["branch1", CHUNK_SIZE_PATCH], ["branch2", CPU_WORK_PATCH]]));
  // Another commit with branch1's tree: the same build.
  await git("checkout", "-q", "-b", "branch1-again", "branch1");
  await git("commit", "-q", "--allow-empty", "-m", "nothing changed");
  // The user's working tree, left on base with an edit of their own.
  await git("checkout", "-q", "base");
  writeFileSync(join(repo, "NOTES.local"), "the user's own file\n");
  for (const ref of ["base", "branch1", "branch2", "branch1-again"]) commit[ref] = (await git("rev-parse", ref)).slice(0, 12);
}, 600_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

const live = (results: string, warmup: number, iterations: number, ...extra: string[]) => [
  "--memory-limits", "256", "--file-sizes", "8M", "--warmup", String(warmup), "--iterations", String(iterations), "--test-files", files,
  "--results-dir", results, ...extra,
];

describe("refs of one checkout", () => {
  test("two refs with the same tree are one build, each labelled by its ref and commit", async () => {
    const [one, again] = [await resolvePicoShareChoice({ source: repo, ref: "branch1" }, "b", true), await resolvePicoShareChoice({ source: repo, ref: "branch1-again" }, "b", true)];
    expect(again.path).toBe(one.path);
    expect(again.sha256).toBe(one.sha256);
    expect([one.version, again.version]).toEqual([`branch1 (${commit.branch1})`, `branch1-again (${commit["branch1-again"]})`]);
    // A folder is named by its path, with the commit and whether it differs from it.
    expect((await resolvePicoShareChoice({ source: repo }, "b", true)).version).toBe(`${repo} (${commit.base} dirty)`);
    // A binary by its path when the user named it; as run-test's parent passes it, by what it is.
    expect((await resolvePicoShareChoice({ path: v154 }, "b", true)).version).toBe(`${v154} (v1.5.4)`);
    expect((await resolvePicoShareChoice({ path: v154 }, "picoshare")).version).toBe("v1.5.4");
  });

  test("--a-source with --a-ref and two --b-ref: B1 and B2, labelled by ref and commit in JSON, text and Markdown, live and stored", async () => {
    const results = join(root, "refs");
    const status = await git("status", "--porcelain");
    const ran = await runScript("compare", [
      "--a-source", repo, "--a-ref", "base", "--b-ref", "branch1", "--b-ref", "branch2", ...live(results, 0, 2, "--json"),
    ]);
    expect(ran.code).toBe(0);
    // The working tree as the user left it.
    expect(await git("status", "--porcelain")).toBe(status);
    expect(await git("rev-parse", "--abbrev-ref", "HEAD")).toBe("base");
    const labels = { A: `base (${commit.base})`, B1: `branch1 (${commit.branch1})`, B2: `branch2 (${commit.branch2})` };
    // The log names each build before the tests.
    for (const [side, name] of Object.entries(labels)) expect(ran.stderr).toContain(`${side}: ${name} (`);
    const c = JSON.parse(ran.stdout);
    expect(c.comparisons.map((x: { a: { picoshare_version: string } }) => x.a.picoshare_version)).toEqual([labels.A, labels.A]);
    expect(c.builds.map((b: { label: string; picoshare_version: string }) => [b.label, b.picoshare_version])).toEqual([["B1", labels.B1], ["B2", labels.B2]]);
    expect(c.comparisons.map((x: { cells: { a: { runs: number }; b: { runs: number } }[] }) => [x.cells[0].a.runs, x.cells[0].b.runs])).toEqual([[2, 2], [2, 2]]);
    // Each test's own record, written by the run-test the comparison started, carries its build's label too.
    const folder = join(results, readdirSync(results).find((n) => n.startsWith("compare-"))!);
    for (const [side, name] of Object.entries(labels)) {
      const files = readdirSync(join(folder, side.toLowerCase())).filter((n) => /^result-.*\.json$/.test(n));
      expect(files).toHaveLength(2);
      for (const f of files) expect(JSON.parse(readFileSync(join(folder, side.toLowerCase(), f), "utf8")).picoshare_version).toBe(name);
    }

    // Read back later from the results log: the same labels, in text and Markdown.
    const runs = query<{ id: number; picoshare_version: string }>(join(results, "results.db"), "SELECT id, picoshare_version FROM runs ORDER BY id");
    expect(runs.map((r) => r.picoshare_version)).toEqual([labels.A, labels.B1, labels.B2]);
    const stored = ["--run-a", String(runs[0].id), "--run-b", `${runs[1].id},${runs[2].id}`, "--db", join(results, "results.db")];
    const text = await runScript("compare", stored);
    const markdown = await runScript("compare", [...stored, "--markdown"]);
    expect([text.code, markdown.code]).toEqual([0, 0]);
    for (const out of [text.stdout, markdown.stdout]) {
      expect(out).toContain(`PicoShare ${labels.A}`);
      expect(out).toContain(`B1 ${labels.B1}`);
      expect(out).toContain(`B2 ${labels.B2}`);
      expect(out).not.toContain("(source)");
    }
    // And in the report of the three runs.
    const html = join(root, "refs-report.html");
    const report = await runScript("report", [...runs.map((r) => String(r.id)), "--db", join(results, "results.db"), "--out", html]);
    expect(report.code).toBe(0);
    for (const name of Object.values(labels)) expect(readFileSync(html, "utf8")).toContain(name);
  });

  test("bad input: one line, exit 2, nothing written", async () => {
    const refused = async (args: string[], message: RegExp, results = mkdtempSync(join(root, "refused-"))) => {
      const ran = await runScript("compare", args.includes("--resume") ? args : [...args, "--results-dir", results]);
      expect(ran.code).toBe(2);
      expect(ran.stdout).toBe("");
      expect(ran.stderr.trim().split("\n").filter((l) => l.includes("ERROR"))).toHaveLength(1);
      expect(ran.stderr).toMatch(message);
      expect(readdirSync(results)).toEqual([]);
    };
    const args = ["--memory-limits", "256", "--file-sizes", "8M", "--test-files", files];
    await refused(["--a", v154, "--b-ref", "branch1", ...args], /ERROR: --b-ref needs --b-source DIR \(or --a-source DIR\)/);
    await refused(["--a-source", repo, "--a-ref", "base", "--b-ref", "no-such-branch", ...args], /ERROR: --b-ref no-such-branch: not a commit of the git tree/);
    await refused(["--a-source", repo, "--b-source", repo, "--b-source", files, "--b-ref", "branch1", ...args], /ERROR: --b-ref goes with a single --b-source/);
    const empty = mkdtempSync(join(root, "not-a-comparison-"));
    await refused(["--resume", empty], /ERROR: --resume .*: no compare\.json there; give the folder of a live comparison/, empty);
    await refused(["--resume", empty, "--iterations", "5", "--db", join(empty, "results.db")], /ERROR: --resume continues .* with the builds and options stored in its compare\.json: drop --iterations, --db/, empty);
  });
});

/** Every process under `pid` (itself included), by /proc. */
function tree(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {}
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const [p, pp] of parent) if (pp === out[i]) out.push(p);
  return out;
}

const PASSED = /\] (A|B) (warm-up \d\/1|\d\/3): passed/g;
const passedIn = (stderr: string) => [...stderr.matchAll(PASSED)].map((m) => `${m[1]} ${m[2]}`);
const EVERY_TEST = ["A 1/3", "A 2/3", "A 3/3", "A warm-up 1/1", "B 1/3", "B 2/3", "B 3/3", "B warm-up 1/1"];

/**
 * A live comparison of base and branch1 (1 warm-up, 3 measured a side) in
 * its own process group, like a shell job, caught mid-way: the fourth test
 * (B 1/3) under way, its PicoShare up, three tests recorded.
 */
async function caughtMidTest(name: string) {
  const results = join(root, name);
  const work = join(root, `${name}-work`);
  mkdirSync(work);
  const args = ["--a-source", repo, "--a-ref", "base", "--b-ref", "branch1", ...live(results, 1, 3, "--json", "--work-dir", work)];
  const [bun, ...argv] = scriptArgv("compare", args);
  const child = spawn(bun, argv, { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const done = new Promise<Ran>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stdout: "", stderr })));
  const passed = () => passedIn(stderr);
  const dir = await waitFor("the comparison's folder", () => existsSync(results) && readdirSync(results).find((n) => n.startsWith("compare-")), 120_000).then((n) => join(results, n));
  const runTest = await waitFor("the fourth test's run-test", () => {
    if (passed().length !== 3) return null;
    try {
      return JSON.parse(readFileSync(join(dir, "compare.lock"), "utf8")).child_pid as number | null;
    } catch {
      return null;
    }
  }, 120_000);
  const cgroup = await waitFor("its cgroup", () => testCgroups(runTest)[0]);
  await waitFor("PicoShare in it", () => cgroupPids(cgroup).length > 0);
  expect(passed()).toEqual(["A warm-up 1/1", "B warm-up 1/1", "A 1/3"]);
  return { results, work, dir, pid: child.pid!, done, passed, runTest, cgroup };
}

describe("a live comparison killed with SIGKILL mid-test, then --resume", () => {
  test("the comparison's run-test left running finishes; its result is counted, not run again", async () => {
    const c = await caughtMidTest("orphan");
    // The run-test held still while the comparison's process group is killed: its own group lives on.
    process.kill(c.runTest, "SIGSTOP");
    process.kill(-c.pid, "SIGKILL");
    expect((await c.done).signal).toBe("SIGKILL");
    const early = await runScript("compare", ["--resume", c.dir]);
    expect(early.code).toBe(2);
    expect(early.stderr).toContain(`a run-test for ${c.dir} (pid ${c.runTest}), started by a comparison that is gone, is still running`);
    process.kill(c.runTest, "SIGCONT");
    await waitFor("the run-test to end", () => !alive(c.runTest), 120_000);
    const again = await runScript("compare", ["--resume", c.dir, "--json"]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain(`Resuming ${c.dir}: 4 of 8 tests recorded, 4 to run`);
    // B 1/3 ran once, in the first session's run-test; every other test once.
    expect([...c.passed(), ...passedIn(again.stderr)].sort()).toEqual(EVERY_TEST.filter((t) => t !== "B 1/3"));
    const db = join(c.results, "results.db");
    for (const r of query<{ id: number }>(db, "SELECT id FROM runs ORDER BY id")) {
      expect(query(db, "SELECT iteration FROM results WHERE run_id = ? ORDER BY iteration", r.id).map((x: any) => x.iteration)).toEqual([2, 3, 4]);
    }
    expect(JSON.parse(again.stdout).cells[0].b.runs).toBe(3);
  });

  test("the whole tree killed, as a reboot would: every test once (the killed one run again), the runs complete, the same comparison", async () => {
    const { results, work, dir, pid, done, passed, runTest, cgroup } = await caughtMidTest("resume");
    const everything = [...tree(pid), ...tree(runTest), ...cgroupPids(cgroup)];
    for (const p of everything) try { process.kill(p, "SIGKILL"); } catch {}
    const killed = await done;
    expect(killed.signal).toBe("SIGKILL");
    const first = passed();
    await waitFor("the killed test's processes to go", () => cgroupPids(cgroup).length === 0);
    expect(readdirSync(work).some((n) => n.startsWith(`picoshare-perf-${runTest}-`))).toBe(true);

    const again = await runScript("compare", ["--resume", dir, "--json"]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain(`Resuming ${dir}: 3 of 8 tests recorded, 5 to run`);
    expect(again.stderr).toContain(`B: branch1 (${commit.branch1}) (`);
    const second = passedIn(again.stderr);
    // Every test once: none of the first session's again, the killed one (the fourth in the order) again.
    expect([...first, ...second].sort()).toEqual(EVERY_TEST);
    expect(second.filter((t) => first.includes(t))).toEqual([]);

    // The results log: each side's three measured tests once each, both runs complete.
    const db = join(results, "results.db");
    const runs = query<{ id: number; status: string }>(db, "SELECT id, status FROM runs ORDER BY id");
    expect(runs.map((r) => r.status)).toEqual(["complete", "complete"]);
    for (const r of runs) {
      expect(query(db, "SELECT iteration FROM results WHERE run_id = ? ORDER BY iteration", r.id).map((x: any) => x.iteration)).toEqual([2, 3, 4]);
      expect(query(db, "SELECT COUNT(*) AS n FROM harness_errors WHERE run_id = ?", r.id)).toEqual([{ n: 0 }]);
    }
    for (const side of ["a", "b"]) expect(readdirSync(join(dir, side)).filter((n) => /^result-.*\.json$/.test(n))).toHaveLength(3);
    // What the killed test left (its cgroup, its folder) was removed by the resumed tests.
    expect(testCgroups(runTest)).toEqual([]);
    expect(readdirSync(work)).toEqual([]);

    // The same comparison as the stored runs give, labelled as the live one was.
    const c = JSON.parse(again.stdout);
    expect([c.a.picoshare_version, c.b.picoshare_version]).toEqual([`base (${commit.base})`, `branch1 (${commit.branch1})`]);
    expect([c.cells[0].a.runs, c.cells[0].b.runs]).toEqual([3, 3]);
    const stored = JSON.parse((await runScript("compare", ["--run-a", String(runs[0].id), "--run-b", String(runs[1].id), "--db", db, "--json"])).stdout);
    const cells = (x: any) => x.cells.map((cell: any) => cell.metrics.map((m: any) => [m.key, m.median_a, m.median_b, m.ratio, m.p_value, m.verdict]));
    expect(cells(c)).toEqual(cells(stored));
    expect(c.cells).toEqual(stored.cells);

    // Nothing left to resume: a second --resume runs nothing and says the same.
    const third = await runScript("compare", ["--resume", dir, "--json"]);
    expect(third.code).toBe(0);
    expect(third.stderr).toContain("8 of 8 tests recorded, 0 to run");
    expect(cells(JSON.parse(third.stdout))).toEqual(cells(stored));
  });
});
