// The callgrind dump parser: self instructions per function, on a small dump
// written by hand (name compression, inlined files, calls= lines whose
// inclusive cost is not the caller's) and on the dumps of a real
// instrumented twin, checked against callgrind_annotate and the totals line.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { $ } from "../lib/core/shell.ts";
import { parseCallgrindDump, readCallgrindDump, selfByFunction } from "../lib/upload/callgrind-dump.ts";
import { realTwin } from "./helpers/twin.ts";

setDefaultTimeout(120_000);

// Events Ir and Dr (Ir is the one read); positions are line numbers.
//  main.main: 5 + 3 (its Dr left out) + 7 (code of lib.go inlined into it,
//             after fi=) + 2 (back in main.go after fe=) = 17: 10 in main.go, 7 in lib.go.
//             The 100 after its calls= is lib.work's inclusive cost: not main's.
//  lib.work:  60 + 30 = 90 (fl=(2) and fn=(2) by their ids alone); the 10
//             after its calls= to memcpy is memcpy's.
//  lib.helper: 4 (a new name in the same file).
//  memcpy:    10, in another object and file, named first by cob=/cfi=/cfn= and then by ids.
//  Total 17 + 90 + 4 + 10 = 121, the totals line.
const HANDWRITTEN = `# callgrind format
version: 1
creator: by hand
positions: line
events: Ir Dr

ob=(1) /bin/app
fl=(1) main.go
fn=(1) main.main
10 5 1
+1 3
cfl=(2) lib.go
cfn=(2) lib.work
calls=2 20
11 100 7
fi=(2)
21 7 0
fe=(1)
12 2

fl=(2)
fn=(2)
20 60 3
* 30
cob=(2) /lib/libc.so
cfi=(3) memcpy.S
cfn=(3) memcpy
calls=4 1
-3 10
fn=(4) lib.helper
40 4

ob=(2)
fl=(3)
fn=(3)
1 10

totals: 121 4
`;

test("a handwritten dump: self instructions per function, calls= costs left to the callee, compressed names resolved", () => {
  const d = parseCallgrindDump(HANDWRITTEN);
  expect(d.totals).toBe(121);
  expect(Object.fromEntries(selfByFunction(d))).toEqual({ "main.main": 17, "lib.work": 90, "lib.helper": 4, memcpy: 10 });
  expect(d.entries.map((e) => [e.file, e.fn, e.object, e.ir])).toEqual([
    ["main.go", "main.main", "/bin/app", 10],
    ["lib.go", "main.main", "/bin/app", 7],
    ["lib.go", "lib.work", "/bin/app", 90],
    ["lib.go", "lib.helper", "/bin/app", 4],
    ["memcpy.S", "memcpy", "/lib/libc.so", 10],
  ]);
  expect(d.entries.reduce((s, e) => s + e.ir, 0)).toBe(d.totals!);
});

let root: string;
let twin: Awaited<ReturnType<typeof realTwin>>;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "callgrind-dump-"));
  twin = await realTwin(root);
}, 300_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** callgrind_annotate's file:function lines (every one: threshold 100 %), as text -> Ir. */
async function annotated(path: string): Promise<Map<string, number>> {
  // From / so that it strips no folder from the file names.
  const out = await $({ cwd: "/" })`callgrind_annotate --threshold=100 --auto=no --show-percs=no ${path}`;
  const rows = out.stdout.split("\n").map((l) => /^\s*([\d,]+)\s+(.+)$/.exec(l)).filter((m) => m !== null);
  return new Map(rows.map((m) => [m![2], Number(m![1].replace(/,/g, ""))]));
}

for (const phase of ["upload", "download"] as const) {
  test(`a real twin's ${phase} dump: the functions' self counts sum to its totals line and to the recorded count, each as callgrind_annotate gives it`, async () => {
    const path = twin.dumps[phase];
    const d = readCallgrindDump(path);
    const sum = d.entries.reduce((s, e) => s + e.ir, 0);
    expect(d.totals).toBe(twin.result[`${phase}_instructions`]!);
    expect(sum).toBe(d.totals!);
    expect([...selfByFunction(d).values()].reduce((s, v) => s + v, 0)).toBe(sum);
    // callgrind_annotate lists file:function, with " [object]" after the names of functions' own blocks.
    const theirs = await annotated(path);
    expect(theirs.get("PROGRAM TOTALS")).toBe(d.totals!);
    const ours = new Map<string, number>();
    for (const e of d.entries) ours.set(`${e.file}:${e.fn}`, (ours.get(`${e.file}:${e.fn}`) ?? 0) + e.ir);
    const shown = [...ours].filter(([, ir]) => ir > 0);
    expect(shown.length).toBeGreaterThan(500);
    const mismatched = shown.filter(([name, ir]) => (theirs.get(name) ?? [...theirs].find(([t]) => t.startsWith(`${name} [`))?.[1]) !== ir);
    expect(mismatched).toEqual([]);
    expect(theirs.size).toBe(shown.length + 1);
  });
}
