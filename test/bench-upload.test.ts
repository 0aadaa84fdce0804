// scripts/bench-upload.ts run by a Bun that is not on PATH (as
// ./node_modules/.bin/bun): its harness client, a second Bun under
// /usr/bin/time, is the Bun that runs the script. A real round against a real
// PicoShare in a real cgroup, with a 1 MiB file.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import { runScript } from "./helpers/run.ts";

setDefaultTimeout(120_000);

let root: string;
let picoshare: string;

beforeAll(async () => {
  picoshare = (await resolvePicoShare()).path;
  root = mkdtempSync(join(tmpdir(), "bench-upload-spec-"));
  await writeTestFile(testFilePath("1M", root), MiB);
}, 600_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

test("with no bun on PATH, the harness round runs this Bun: both clients measured, exit 0", async () => {
  const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
  expect(Bun.which("bun", { PATH })).toBeNull();
  const r = await runScript("bench-upload", ["--file-size", "1M", "--rounds", "1", "--ram", "256", "--test-files", root, "--picoshare", picoshare], { PATH });
  if (r.code !== 0) console.error(r.stderr);
  expect(r.stderr).not.toContain("cannot run bun");
  expect(r.code).toBe(0);
  expect(r.stderr).toMatch(/round 1 harness: \d+\.\d{3} s, peak RSS [\d.]+ MiB/);
  // The harness's row: a time, a rate and the child Bun's peak RSS (tens of MiB, where curl's is a few).
  const harness = r.stdout.split("\n").find((l) => l.startsWith("harness "));
  expect(harness).toMatch(/^harness +\d+\.\d{3} +[\d.]+ +[\d.]+ MiB$/);
  expect(Number(/([\d.]+) MiB$/.exec(harness!)![1])).toBeGreaterThan(20);
  expect(r.stdout).toMatch(/^ratio harness\/curl: \d+\.\d{3} \(target: at most 1\.05\)$/m);
});
