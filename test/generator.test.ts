// scripts/generate-test-files.ts, run for real on small sizes in temp dirs.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync,
  truncateSync, writeSync, closeSync, writeFileSync,
} from "node:fs";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { expectedSha256 } from "../lib/upload/testfiles.ts";
import { KiB, MiB } from "../lib/core/sizes.ts";
import { BUN } from "../lib/core/paths.ts";
import { $ } from "../lib/core/shell.ts";

const ROOT = resolve(import.meta.dir, "..");
const GENERATOR = join(ROOT, "scripts", "generate-test-files.ts");
const ENV = { ...process.env, NO_COLOR: "1" };

let work: string;
beforeAll(() => {
  // tmpdir() is on the real disk here (not a tmpfs), which the big-file tests need.
  work = mkdtempSync(join(tmpdir(), "generator-test-"));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function newDir(name: string): string {
  return mkdtempSync(join(work, `${name}-`));
}

function gen(args: string[]) {
  const p = $({ cwd: work, env: ENV, nothrow: true }).sync`${BUN} ${GENERATOR} ${args}`;
  return { code: p.exitCode, stdout: p.stdout, stderr: p.stderr };
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function partials(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.includes(".partial-"));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a generator run on a big size; resolves once its partial file exists and has grown. */
async function startBigWrite(dir: string, label: string) {
  const proc = Bun.spawn([BUN, GENERATOR, "--sizes", label, "--dir", dir], {
    cwd: work,
    env: ENV,
    stdout: "pipe",
    stderr: "pipe",
  });
  const partial = join(dir, `.${label}.bin.partial-${proc.pid}`);
  const deadline = Date.now() + 20_000;
  let first = -1;
  while (Date.now() < deadline) {
    if (existsSync(partial)) {
      const size = statSync(partial).size;
      if (first < 0 && size > 0) first = size;
      else if (first > 0 && size > first) break;
    }
    if (proc.exitCode !== null) throw new Error(`generator ended early (${proc.exitCode})`);
    await sleep(20);
  }
  if (!existsSync(partial) || statSync(partial).size <= first) {
    proc.kill("SIGKILL");
    throw new Error(`no growing ${partial} within 20 s`);
  }
  return { proc, partial };
}

describe("content", () => {
  test("exact byte counts, across chunk boundaries too", () => {
    const dir = newDir("sizes");
    const sizes: [string, number][] = [["1K", KiB], ["512K", 512 * KiB], ["1M", MiB], ["9M", 9 * MiB]];
    const r = gen(["--sizes", sizes.map(([l]) => l).join(","), "--dir", dir]);
    expect(r.code).toBe(0);
    for (const [label, bytes] of sizes) {
      expect(statSync(join(dir, `${label}.bin`)).size).toBe(bytes);
    }
    expect(readdirSync(dir).sort()).toEqual(sizes.map(([l]) => `${l}.bin`).sort());
  });

  test("the same bytes on two runs in two dirs, and as lib/upload/testfiles.ts expects", () => {
    const a = newDir("same-a");
    const b = newDir("same-b");
    expect(gen(["--sizes", "512K,9M", "--dir", a]).code).toBe(0);
    expect(gen(["--sizes", "9M,512K", "--dir", b]).code).toBe(0);
    for (const [label, bytes] of [["512K", 512 * KiB], ["9M", 9 * MiB]] as const) {
      const ha = sha256(join(a, `${label}.bin`));
      const hb = sha256(join(b, `${label}.bin`));
      expect(ha).toMatch(/^[0-9a-f]{64}$/);
      expect(ha).toBe(hb);
      expect(ha).toBe(expectedSha256(bytes));
    }
    // Different sizes are different streams, not prefixes of one another.
    const small = readFileSync(join(a, "512K.bin"));
    const big = readFileSync(join(a, "9M.bin"));
    expect(small.equals(big.subarray(0, small.length))).toBe(false);
  });

  test("two labels for the same bytes make the same file (1024K = 1M)", () => {
    const dir = newDir("alias");
    expect(gen(["--sizes", "1024K,1M", "--dir", dir]).code).toBe(0);
    expect(sha256(join(dir, "1024K.bin"))).toBe(sha256(join(dir, "1M.bin")));
  });

  test("incompressible: gzip -6 keeps at least 99% of the size", () => {
    const dir = newDir("gzip");
    expect(gen(["--sizes", "9M", "--dir", dir]).code).toBe(0);
    const data = readFileSync(join(dir, "9M.bin"));
    const gz = gzipSync(data, { level: 6 });
    expect(gz.length).toBeGreaterThanOrEqual(0.99 * data.length);
    // Not a file of zeros or of one repeated block.
    expect(data.subarray(0, MiB).equals(data.subarray(MiB, 2 * MiB))).toBe(false);
  });
});

describe("keeping and remaking", () => {
  test("a second run keeps a correct file (mtime unchanged, log says kept)", async () => {
    const dir = newDir("idem");
    expect(gen(["--sizes", "1M", "--dir", dir]).code).toBe(0);
    const path = join(dir, "1M.bin");
    const before = statSync(path);
    await sleep(20);
    const r = gen(["--sizes", "1M", "--dir", dir]);
    expect(r.code).toBe(0);
    const after = statSync(path);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(after.ino).toBe(before.ino);
    expect(r.stderr).toContain("1M.bin: kept");
    expect(r.stderr).not.toContain("Writing");
  });

  test("a wrong-sized file is made again", () => {
    const dir = newDir("wrongsize");
    const path = join(dir, "1M.bin");
    writeFileSync(path, Buffer.alloc(1000, 7));
    const r = gen(["--sizes", "1M", "--dir", dir]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("1M.bin: wrong size or content, making it again");
    expect(statSync(path).size).toBe(MiB);
    expect(sha256(path)).toBe(expectedSha256(MiB));
  });

  test("a truncated file (right prefix, short) is made again", () => {
    const dir = newDir("truncated");
    expect(gen(["--sizes", "1M", "--dir", dir]).code).toBe(0);
    const path = join(dir, "1M.bin");
    truncateSync(path, MiB - 1);
    const r = gen(["--sizes", "1M", "--dir", dir]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("making it again");
    expect(sha256(path)).toBe(expectedSha256(MiB));
  });

  test("a same-size file with one corrupted byte is made again", () => {
    const dir = newDir("corrupt");
    expect(gen(["--sizes", "9M", "--dir", dir]).code).toBe(0);
    const path = join(dir, "9M.bin");
    // Flip one byte in the second chunk (past the first 8 MiB).
    const at = 8 * MiB + 12345;
    const fd = openSync(path, "r+");
    const b = Buffer.alloc(1);
    b[0] = readFileSync(path)[at] ^ 0xff;
    writeSync(fd, b, 0, 1, at);
    closeSync(fd);
    expect(statSync(path).size).toBe(9 * MiB);
    expect(sha256(path)).not.toBe(expectedSha256(9 * MiB));
    const r = gen(["--sizes", "9M", "--dir", dir]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("9M.bin: wrong size or content, making it again");
    expect(sha256(path)).toBe(expectedSha256(9 * MiB));
  });

  test("--force makes a correct file again", () => {
    const dir = newDir("force");
    expect(gen(["--sizes", "1M", "--dir", dir]).code).toBe(0);
    const path = join(dir, "1M.bin");
    const before = statSync(path);
    const r = gen(["--sizes", "1M", "--dir", dir, "--force"]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain("kept");
    expect(r.stderr).toContain("Writing 1 file(s)");
    // Renamed into place: a new inode.
    expect(statSync(path).ino).not.toBe(before.ino);
    expect(sha256(path)).toBe(expectedSha256(MiB));
  });

  test("--checksums prints sha256sum format that sha256sum agrees with", () => {
    const dir = newDir("checksums");
    const r = gen(["--sizes", "512K,1M", "--dir", dir, "--checksums"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    const paths = [join(dir, "512K.bin"), join(dir, "1M.bin")];
    lines.forEach((line, i) => {
      expect(line).toMatch(/^[0-9a-f]{64} {2}\S.*$/);
      expect(line.slice(66)).toBe(paths[i]);
    });
    const ref = $({ nothrow: true }).sync`sha256sum ${paths}`;
    expect(ref.exitCode).toBe(0);
    expect(r.stdout).toBe(ref.stdout);
    // And `sha256sum -c` accepts the output as it is.
    const check = $({ input: r.stdout, nothrow: true }).sync`sha256sum -c -`;
    expect(check.exitCode).toBe(0);
    // Kept files are listed too.
    const again = gen(["--sizes", "512K,1M", "--dir", dir, "--checksums"]);
    expect(again.stdout).toBe(r.stdout);
  });
});

describe("interruptions", () => {
  test("SIGKILL mid-write leaves nothing finished-looking; the next run removes the partial", async () => {
    const dir = newDir("killed");
    const { proc, partial } = await startBigWrite(dir, "2G");
    try {
      proc.kill("SIGKILL");
      await proc.exited;
      expect(proc.signalCode).toBe("SIGKILL");
      expect(existsSync(partial)).toBe(true);
      expect(existsSync(join(dir, "2G.bin"))).toBe(false);
      expect(readdirSync(dir).filter((n) => n.endsWith(".bin"))).toEqual([]);

      const r = gen(["--sizes", "1M", "--dir", dir]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(`Removed .2G.bin.partial-${proc.pid}, left by an interrupted run`);
      expect(readdirSync(dir)).toEqual(["1M.bin"]);
      expect(sha256(join(dir, "1M.bin"))).toBe(expectedSha256(MiB));
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test("a partial of a live generator is not removed by another run", async () => {
    const dir = newDir("live");
    const { proc, partial } = await startBigWrite(dir, "2G");
    try {
      const r = gen(["--sizes", "512K", "--dir", dir]);
      expect(r.code).toBe(0);
      expect(r.stderr).not.toContain("Removed");
      expect(existsSync(partial)).toBe(true);
    } finally {
      proc.kill("SIGKILL");
      await proc.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    test(`${signal} mid-write removes the partial and exits ${code}`, async () => {
      const dir = newDir(signal);
      const { proc, partial } = await startBigWrite(dir, "2G");
      try {
        proc.kill(signal);
        const exit = await Promise.race([proc.exited, sleep(10_000).then(() => "timeout")]);
        expect(exit).toBe(code);
        const stderr = await new Response(proc.stderr).text();
        expect(stderr).toContain(`Caught ${signal}, cleaning up`);
        expect(stderr).not.toContain("ERROR:");
        expect(existsSync(partial)).toBe(false);
        expect(readdirSync(dir)).toEqual([]);
      } finally {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
        rmSync(dir, { recursive: true, force: true });
      }
    }, 60_000);
  }
});

describe("disk space", () => {
  test("refuses (exit 2) when the files would not fit, writing nothing", () => {
    const mnt = newDir("tmpfs");
    const mount = $({ nothrow: true }).sync`mount -t tmpfs -o size=8m tmpfs ${mnt}`;
    expect(mount.exitCode).toBe(0);
    try {
      const r = gen(["--sizes", "16M", "--dir", mnt]);
      expect(r.code).toBe(2);
      const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
      const errors = lines.filter((l) => l.includes("ERROR:"));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain("not enough disk space");
      expect(errors[0]).toContain("needs 16.0 MiB");
      expect(errors[0]).toMatch(/[0-9.]+ (MiB|KiB) free/);
      expect(r.stdout).toBe("");
      expect(readdirSync(mnt)).toEqual([]);
      expect(partials(mnt)).toEqual([]);
      // A size that fits is still made there.
      const ok = gen(["--sizes", "1M", "--dir", mnt]);
      expect(ok.code).toBe(0);
      expect(readdirSync(mnt)).toEqual(["1M.bin"]);
    } finally {
      const um = $({ nothrow: true }).sync`umount ${mnt}`;
      expect(um.exitCode).toBe(0);
    }
  }, 30_000);

  test("the space check counts every file to be written, not each alone", () => {
    const mnt = newDir("tmpfs-sum");
    expect($({ nothrow: true }).sync`mount -t tmpfs -o size=8m tmpfs ${mnt}`.exitCode).toBe(0);
    try {
      const r = gen(["--sizes", "5M,6M", "--dir", mnt]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("needs 11.0 MiB");
      expect(readdirSync(mnt)).toEqual([]);
    } finally {
      expect($({ nothrow: true }).sync`umount ${mnt}`.exitCode).toBe(0);
    }
  }, 30_000);
});
