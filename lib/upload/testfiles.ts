// Test files: incompressible pseudo-random bytes from a fixed seed, so every
// machine makes byte-identical files. The bytes are an AES-256-CTR keystream
// (fast with AES-NI, far faster than the disk), keyed by a fixed seed and the
// file's size, so 1024M.bin and 1G.bin are the same file.
import { createCipheriv, createHash } from "node:crypto";
import {
  closeSync, existsSync, fsyncSync, openSync, readSync, readdirSync, renameSync,
  rmSync, statSync, writeSync,
} from "node:fs";
import { join } from "node:path";
import { partialPath } from "../core/files.ts";
import { processRuns } from "../core/proc.ts";
import { MiB, type Size } from "../core/sizes.ts";
import { TEST_FILES_DIR, command } from "../core/paths.ts";
import { UsageError } from "../core/errors.ts";

export const DEFAULT_SIZES = ["100M", "500M", "1G", "2G", "5G"];
export const SEED = "picoshare-perf-test/v1";
// Small enough that the garbage collector keeps up with the chunks it frees
// (the whole script peaks at about 90 MiB for any size), large enough for full disk speed.
const CHUNK = 2 * MiB;

export function testFilePath(label: string, dir = TEST_FILES_DIR): string {
  return join(dir, `${label}.bin`);
}

/** The file's bytes, chunk by chunk; memory stays at one chunk whatever the size. */
export function* contentChunks(bytes: number, chunk = CHUNK): Generator<Buffer> {
  const key = createHash("sha256").update(SEED).digest();
  const iv = createHash("sha256").update(`${SEED}/${bytes}`).digest().subarray(0, 16);
  const cipher = createCipheriv("aes-256-ctr", key, iv);
  const zeros = Buffer.alloc(chunk);
  for (let done = 0; done < bytes; done += chunk) {
    const n = Math.min(chunk, bytes - done);
    yield cipher.update(n === chunk ? zeros : zeros.subarray(0, n));
  }
}

/**
 * Writes the file under a temporary name, fsyncs it, and renames it into
 * place: an interrupted run never leaves a file that looks finished.
 * Yields to the event loop after each chunk so that a SIGINT / SIGTERM
 * handler can run, and stops (throwing) once `signal` is aborted.
 */
export async function writeTestFile(
  path: string,
  bytes: number,
  onProgress?: (done: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  const tmp = partialPath(path);
  const fd = openSync(tmp, "w", 0o644);
  try {
    let done = 0;
    for (const chunk of contentChunks(bytes)) {
      let off = 0;
      while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
      done += chunk.length;
      onProgress?.(done);
      await new Promise((r) => setImmediate(r));
      signal?.throwIfAborted();
    }
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** True when `path` holds exactly the expected bytes (compared chunk by chunk). */
export function hasExpectedContent(path: string, bytes: number, onProgress?: (done: number) => void): boolean {
  if (!existsSync(path) || statSync(path).size !== bytes) return false;
  const fd = openSync(path, "r");
  const buf = Buffer.allocUnsafe(CHUNK);
  try {
    let done = 0;
    for (const want of contentChunks(bytes)) {
      let got = 0;
      while (got < want.length) {
        const n = readSync(fd, buf, got, want.length - got, done + got);
        if (n === 0) return false;
        got += n;
      }
      if (!buf.subarray(0, got).equals(want)) return false;
      done += got;
      onProgress?.(done);
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

/** SHA-256 of the content for `bytes`, from the generator (no file needed). */
export function expectedSha256(bytes: number): string {
  const h = createHash("sha256");
  for (const chunk of contentChunks(bytes)) h.update(chunk);
  return h.digest("hex");
}

/** Removes temporary files left by generator runs that died mid-file. */
export function removeStalePartials(dir: string): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    const m = /^\..+\.partial-(\d+)$/.exec(name);
    if (m && !processRuns(Number(m[1]))) {
      rmSync(join(dir, name), { force: true });
      removed.push(name);
    }
  }
  return removed;
}

/**
 * The test file for `size`, checked to exist with the right size (exit 2
 * otherwise, saying how to make it). Content is checked by the generator,
 * and by --verify on a download.
 */
export function requireTestFile(size: Size, dir = TEST_FILES_DIR): string {
  const path = testFilePath(size.label, dir);
  const make = command("generate-test-files", `--sizes ${size.label}${dir === TEST_FILES_DIR ? "" : ` --dir ${dir}`}`);
  if (!existsSync(path)) throw new UsageError(`test file ${path} is missing: make it with \`${make}\``);
  const actual = statSync(path).size;
  if (actual !== size.bytes) {
    throw new UsageError(
      `test file ${path} has ${actual} bytes, expected ${size.bytes} for ${size.label}: remake it with \`${make} --force\``,
    );
  }
  return path;
}
