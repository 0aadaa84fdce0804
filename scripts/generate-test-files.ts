#!/usr/bin/env bun
// Makes the test files: incompressible, identical on every machine, written
// under a temporary name and renamed only when complete.
import { parseCli, list } from "../lib/core/cli.ts";
import { runMain } from "../lib/core/main.ts";
import { log, success } from "../lib/core/log.ts";
import { interruptSignal, onCleanup } from "../lib/core/cleanup.ts";
import { ensureWritableDir, fileSha256, partialPath, requireFreeSpace } from "../lib/core/files.ts";
import { byteProgress } from "../lib/core/progress.ts";
import { formatBytes, parseSize, toMiB } from "../lib/core/sizes.ts";
import { TEST_FILES_DIR } from "../lib/core/paths.ts";
import {
  DEFAULT_SIZES, hasExpectedContent, removeStalePartials, testFilePath, writeTestFile,
} from "../lib/upload/testfiles.ts";
import { rmSync, existsSync } from "node:fs";
import { resolve } from "node:path";

const USAGE = `Usage: bun scripts/generate-test-files.ts [OPTIONS]

Makes the binary test files that uploads send: pseudo-random, incompressible
bytes from a fixed seed, so every machine gets byte-identical files.
A file that already has the right size and content is kept; a wrong-sized,
corrupt or partial one is made again.

Options:
  --sizes LIST   Comma-separated sizes, binary units (default: ${DEFAULT_SIZES.join(",")},
                 about 8.6 GiB in all). Accepted form: 512K, 100M, 1G, 5G.
  --dir DIR      Where to write the files (default: ./test-files)
  --force        Make every file again, even one that is already correct
  --checksums    Print "SHA-256  FILE" for each file on stdout (sha256sum format)
  --help         Show this text

Examples:
  bun scripts/generate-test-files.ts
  bun scripts/generate-test-files.ts --sizes 100M,1G
  bun scripts/generate-test-files.ts --sizes 512K --dir /tmp/files --checksums
`;

await runMain(async () => {
  const { values } = parseCli(
    {
      sizes: { type: "string" },
      dir: { type: "string" },
      force: { type: "boolean" },
      checksums: { type: "boolean" },
    },
    USAGE,
  );
  const sizes = list("--sizes", values.sizes ?? DEFAULT_SIZES.join(","), (s) => parseSize(s, "--sizes item"), "100M,1G");
  const dir = resolve(values.dir ?? TEST_FILES_DIR);
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
