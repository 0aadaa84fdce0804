#!/usr/bin/env bun
// Benchmarks the test-file generator against the disk: the same size written
// by `dd if=/dev/zero ... conv=fsync` (the disk's own pace) and by
// writeTestFile (which fsyncs too), in one invocation.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FLAG } from "../lib/core/flags.ts";
import { flagsOf, parseFlags, usageText, valueFlag, withDefault, type Flag } from "../lib/core/flag-kit.ts";
import { $ } from "../lib/core/shell.ts";
import { runMain } from "../lib/core/main.ts";
import { log } from "../lib/core/log.ts";
import { interruptSignal, onCleanup } from "../lib/core/cleanup.ts";
import { Fatal } from "../lib/core/errors.ts";
import { ensureWritableDir, partialPath, requireFreeSpace } from "../lib/core/files.ts";
import { MiB, formatBytes, parseSize, toMiB } from "../lib/core/sizes.ts";
import { writeTestFile } from "../lib/upload/testfiles.ts";

const SIZE = withDefault(valueFlag("size", {
  value: "SIZE", help: "Size of each file, binary units; accepted form: 512K, 100M, 1G, 5G",
}, (t) => parseSize(t!, "--size"), (s) => s.label), "1G");
const GROUPS: Array<[string, Flag<any>[]]> = [["Options:", [SIZE, FLAG.dir]]];

const USAGE = usageText(
  `Usage: bun scripts/bench-generator.ts [OPTIONS]

Measures how fast the test-file generator writes compared with the disk
itself. Writes the same size three times, one file at a time, each removed
before the next: dd from /dev/zero (bs=16M, conv=fsync), the generator
(writeTestFile, fsynced), dd again. Prints both throughputs in MiB/s (dd as
the mean of its two runs), the ratio generator/dd, and the generator's peak
RSS. Needs free space for one file at a time in DIR.
`,
  GROUPS,
  `Examples:
  bun scripts/bench-generator.ts
  bun scripts/bench-generator.ts --size 2G
  bun scripts/bench-generator.ts --size 512M --dir /var/tmp
`,
);

const DD_BLOCK = 16 * MiB;

/** Peak RSS so far in bytes: VmHWM where /proc has it, else the process's maxRSS. */
function peakRss(): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {}
  return process.resourceUsage().maxRSS * 1024;
}

/** Resets the peak-RSS mark (Linux); false where that is not possible. */
function resetPeakRss(): boolean {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

function mibPerSec(bytes: number, ms: number): number {
  return toMiB(bytes) / (ms / 1000);
}

await runMain(async () => {
  const opt = parseFlags(flagsOf(GROUPS), USAGE);
  const size = opt(SIZE);
  const parent = opt(FLAG.dir);
  ensureWritableDir(parent, "--dir");
  // One file at a time; a little headroom for the file system's own use.
  requireFreeSpace(parent, size.bytes + 64 * MiB, `one ${size.label} file`, "free some space or choose another --dir");

  const dir = mkdtempSync(join(parent, ".bench-generator-"));
  onCleanup(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  log(`Benchmarking ${formatBytes(size.bytes)} writes in ${dir}: dd, generator, dd`);

  const count = size.bytes % DD_BLOCK === 0 ? [`count=${size.bytes / DD_BLOCK}`] : [`count=${size.bytes}`, "iflag=count_bytes"];
  async function ddRun(n: number): Promise<number> {
    const out = join(dir, `dd-${n}.bin`);
    await $({ signal: interruptSignal, nothrow: true })`sync`;
    const t0 = performance.now();
    const res = await $({ signal: interruptSignal, nothrow: true })`dd if=/dev/zero ${`of=${out}`} bs=16M ${count} conv=fsync`;
    const ms = performance.now() - t0;
    if (res.exitCode !== 0) throw new Fatal(`dd failed (exit ${res.exitCode ?? res.signal}): ${res.stderr.trim().split("\n").pop()}`);
    rmSync(out, { force: true });
    const rate = mibPerSec(size.bytes, ms);
    log(`dd run ${n}: ${(ms / 1000).toFixed(2)} s, ${rate.toFixed(1)} MiB/s (dd says: ${res.stderr.trim().split("\n").pop()})`);
    return rate;
  }

  async function generatorRun(): Promise<{ rate: number; peak: number; before: number; reset: boolean }> {
    const out = join(dir, `${size.label}.bin`);
    await $({ signal: interruptSignal, nothrow: true })`sync`;
    const reset = resetPeakRss();
    const before = peakRss();
    const t0 = performance.now();
    await writeTestFile(out, size.bytes, undefined, interruptSignal);
    const ms = performance.now() - t0;
    const peak = peakRss();
    rmSync(out, { force: true });
    rmSync(partialPath(out), { force: true });
    const rate = mibPerSec(size.bytes, ms);
    log(`generator: ${(ms / 1000).toFixed(2)} s, ${rate.toFixed(1)} MiB/s, peak RSS ${formatBytes(peak)}`);
    return { rate, peak, before, reset };
  }

  const dd1 = await ddRun(1);
  const gen = await generatorRun();
  const dd2 = await ddRun(2);
  const ddMean = (dd1 + dd2) / 2;
  const ratio = gen.rate / ddMean;

  const rows: [string, string][] = [
    ["size", `${size.label} (${size.bytes} bytes)`],
    ["dd MiB/s", `${ddMean.toFixed(1)} (runs: ${dd1.toFixed(1)}, ${dd2.toFixed(1)})`],
    ["generator MiB/s", gen.rate.toFixed(1)],
    ["ratio generator/dd", ratio.toFixed(2)],
    [
      "generator peak RSS",
      `${formatBytes(gen.peak)} (${(gen.peak / MiB).toFixed(1)} MiB; ${gen.reset ? "peak reset before the run, " : ""}${formatBytes(gen.before)} at its start)`,
    ],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}, USAGE);
