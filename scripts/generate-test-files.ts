#!/usr/bin/env bun
// Makes the test files: incompressible, identical on every machine, written
// under a temporary name and renamed only when complete.
import { list } from "../lib/core/cli.ts";
import { FLAG } from "../lib/core/flags.ts";
import { flagsOf, parseFlags, switchFlag, usageText, valueFlag, withDefault, type Flag } from "../lib/core/flag-kit.ts";
import { runMain } from "../lib/core/main.ts";
import { log, success } from "../lib/core/log.ts";
import { interruptSignal, onCleanup } from "../lib/core/cleanup.ts";
import { ensureWritableDir, fileSha256, partialPath, requireFreeSpace } from "../lib/core/files.ts";
import { byteProgress } from "../lib/core/progress.ts";
import { formatBytes, parseSize, toMiB } from "../lib/core/sizes.ts";
import {
  DEFAULT_SIZES, hasExpectedContent, removeStalePartials, testFilePath, writeTestFile,
} from "../lib/upload/testfiles.ts";
import { rmSync, existsSync } from "node:fs";

const OWN = {
  sizes: withDefault(valueFlag("sizes", {
    value: "LIST", help: "Comma-separated sizes, binary units; accepted form: 512K, 100M, 1G, 5G",
  }), DEFAULT_SIZES.join(","), "100M,1G"),
  checksums: switchFlag("checksums", "Print \"SHA-256  FILE\" for each file on stdout (sha256sum format)"),
};
const GROUPS: Array<[string, Flag<any>[]]> = [["Options:", [OWN.sizes, FLAG.dir, FLAG.force, OWN.checksums]]];

const USAGE = usageText(
  `Usage: bun scripts/generate-test-files.ts [OPTIONS]

Makes the binary test files that uploads send: pseudo-random, incompressible
bytes from a fixed seed, so every machine gets byte-identical files.
A file that already has the right size and content is kept; a wrong-sized,
corrupt or partial one is made again. The default sizes make about 8.6 GiB.
`,
  GROUPS,
  `Examples:
  bun scripts/generate-test-files.ts
  bun scripts/generate-test-files.ts --sizes 100M,1G
  bun scripts/generate-test-files.ts --sizes 512K --dir /tmp/files --checksums
`,
);

await runMain(async () => {
  const opt = parseFlags(flagsOf(GROUPS), USAGE);
  const values = opt.values;
  const sizes = list("--sizes", opt(OWN.sizes), (s) => parseSize(s, "--sizes item"), OWN.sizes.example);
  const dir = opt(FLAG.dir);
  ensureWritableDir(dir, "--dir");

  for (const name of removeStalePartials(dir)) log(`Removed ${name}, left by an interrupted run`);

  // Decide first what must be written, so the space check covers all of it.
  const todo = [];
  for (const size of sizes) {
    const path = testFilePath(size.label, dir);
    if (!values.force && existsSync(path)) {
      const bar = byteProgress(`check ${size.label}`, size.bytes);
      const ok = hasExpectedContent(path, size.bytes, (d) => bar.update(d));
      bar.stop();
      if (ok) {
        log(`${size.label}.bin: kept (right size and content)`);
        continue;
      }
      log(`${size.label}.bin: wrong size or content, making it again`);
    }
    todo.push({ size, path });
  }
  const needed = todo.reduce((sum, t) => sum + t.size.bytes, 0);
  requireFreeSpace(dir, needed, `${todo.length} test file(s)`, "free some space or choose another --dir");
  if (todo.length > 0) log(`Writing ${todo.length} file(s), ${formatBytes(needed)}, to ${dir}`);

  for (const { size, path } of todo) {
    const tmp = partialPath(path);
    const forget = onCleanup(`remove ${tmp}`, () => rmSync(tmp, { force: true }));
    const bar = byteProgress(`${size.label}.bin`, size.bytes);
    const started = performance.now();
    await writeTestFile(path, size.bytes, (d) => bar.update(d), interruptSignal);
    bar.stop();
    forget();
    const secs = (performance.now() - started) / 1000;
    success(`${size.label}.bin: ${formatBytes(size.bytes)} in ${secs.toFixed(2)} s (${(toMiB(size.bytes) / secs).toFixed(1)} MiB/s)`);
  }

  if (values.checksums) {
    for (const size of sizes) {
      const path = testFilePath(size.label, dir);
      process.stdout.write(`${await fileSha256(path)}  ${path}\n`);
    }
  }
}, USAGE);
