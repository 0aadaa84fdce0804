// Writing files so that nothing half-written ever looks finished: write to a
// temporary name beside the target, then rename (atomic on one file system).
import { existsSync, renameSync, readFileSync, writeFileSync, rmSync, statfsSync, mkdirSync, accessSync, constants, cpSync, chmodSync, statSync, readdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { tmpdir } from "node:os";
import { createHash } from "node:crypto";
import { UsageError } from "./errors.ts";
import { formatBytes } from "./sizes.ts";

/** The temporary name used while `path` is being written. */
// statfs(2) magic numbers of the file systems whose files live in memory.
const MEMORY_FS: Record<number, string> = { 0x01021994: "tmpfs", 0x858458f6: "ramfs" };

/** The memory-backed file system `path` is on ("tmpfs", "ramfs"), or null (a disk, or unknown). */
export function memoryBackedFs(path: string): string | null {
  try {
    return MEMORY_FS[statfsSync(path).type] ?? null;
  } catch {
    return null;
  }
}

/**
 * Where PicoShare's data and temp files go by default: the system temp
 * folder, unless it is in memory (tmpfs by default on Debian 13, Fedora and
 * Arch), where the uploaded file would be charged to PicoShare's memory
 * limit; then /var/tmp, which is on disk there.
 */
export function defaultWorkDir(): string {
  const t = tmpdir();
  return memoryBackedFs(t) && existsSync("/var/tmp") && !memoryBackedFs("/var/tmp") ? "/var/tmp" : t;
}

/** A file's text, or "" when it cannot be read (gone, or never there). */
export function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** Makes `parent/stem` (or `stem-2`, `stem-3`... when taken: mkdir decides, so two processes never share one). */
export function makeFreeDir(parent: string, stem: string): string {
  for (let n = 1; ; n++) {
    const dir = join(parent, n === 1 ? stem : `${stem}-${n}`);
    try {
      mkdirSync(dir);
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
}

export function partialPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.partial-${process.pid}`);
}

export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = partialPath(path);
  try {
    writeFileSync(tmp, data, { mode });
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Bytes free for an unprivileged writer on the file system holding `path`. */
export function freeBytes(path: string): number {
  const s = statfsSync(path);
  return Number(s.bavail) * Number(s.bsize);
}

/** Refuses (exit 2) when `needed` bytes would not fit where `path` lives. */
export function requireFreeSpace(path: string, needed: number, what: string, fix: string): void {
  const free = freeBytes(path);
  if (free < needed) {
    throw new UsageError(
      `not enough disk space in ${path} for ${what}: needs ${formatBytes(needed)}, ` +
        `${formatBytes(free)} free; ${fix}`,
    );
  }
}

/** Makes `dir` (and parents) and checks that it can be written; exit 2 otherwise. */
export function ensureWritableDir(dir: string, flag: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new UsageError(
      `${flag} ${dir} cannot be written (${(err as NodeJS.ErrnoException).code ?? err}): choose a writable folder`,
    );
  }
}

/** SHA-256 of a file on disk, streamed. */
export async function fileSha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of Bun.file(path).stream()) h.update(chunk);
  return h.digest("hex");
}

/** A writable copy of the tree `src` at `dest` (the Go module cache's files are read-only). */
export function writableCopy(src: string, dest: string): void {
  cpSync(src, dest, { recursive: true });
  const walk = (p: string) => {
    const st = statSync(p);
    chmodSync(p, st.mode | 0o200);
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
  };
  walk(dest);
}
