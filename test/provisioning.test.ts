// lib/upload/picoshare.ts: resolving (building and caching) the PicoShare binary,
// then starting it for real and talking to it.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { DEFAULT_VERSION, cachedBinaryPath, resolvePicoShare, type PicoShareBinary } from "../lib/upload/picoshare.ts";
import { UsageError } from "../lib/core/errors.ts";
import { $ } from "../lib/core/shell.ts";

const BUILD_TIMEOUT = 600_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let work: string;
let binary: PicoShareBinary | undefined;
const started: Subprocess[] = [];
const savedBin = process.env.PICOSHARE_BIN;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "provisioning-test-"));
});
afterEach(() => {
  if (savedBin === undefined) delete process.env.PICOSHARE_BIN;
  else process.env.PICOSHARE_BIN = savedBin;
});
afterAll(async () => {
  // Only the processes this file started, by pid.
  for (const p of started) {
    if (p.exitCode === null && p.signalCode === null) {
      process.kill(p.pid, "SIGKILL");
      await p.exited;
    }
  }
  rmSync(work, { recursive: true, force: true });
});

function sha256sum(path: string): string {
  const r = $({ nothrow: true }).sync`sha256sum ${path}`;
  expect(r.exitCode).toBe(0);
  return r.stdout.split(/\s+/)[0];
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") return rej(new Error("no port"));
      srv.close(() => res(addr.port));
    });
  });
}

async function getBinary(): Promise<PicoShareBinary> {
  delete process.env.PICOSHARE_BIN;
  binary ??= await resolvePicoShare();
  return binary;
}

describe("resolvePicoShare: build / cache", () => {
  test("resolves (building on first use) the default version into the cache", async () => {
    const version = process.env.PICOSHARE_VERSION || DEFAULT_VERSION;
    const bin = await getBinary();
    expect(["cache", "built"]).toContain(bin.source);
    expect(bin.path).toBe(cachedBinaryPath(version));
    expect(bin.path).toContain(join(".cache", "picoshare", version));
    expect(statSync(bin.path).isFile()).toBe(true);
    expect(statSync(bin.path).mode & 0o111).not.toBe(0);
    expect(bin.version).toBe(version);
    expect(bin.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(bin.sha256).toBe(sha256sum(bin.path));
    // No build leftovers beside the cached binary.
    expect(readdirSync(join(bin.path, "..")).filter((n) => n.startsWith(".build-"))).toEqual([]);

    // A second resolve uses the cache as it is.
    const mtime = statSync(bin.path).mtimeMs;
    const again = await resolvePicoShare();
    expect(again.source).toBe("cache");
    expect(again.path).toBe(bin.path);
    expect(again.sha256).toBe(bin.sha256);
    expect(statSync(bin.path).mtimeMs).toBe(mtime);
  }, BUILD_TIMEOUT);
});

describe("resolvePicoShare: a given binary", () => {
  async function usageError(p: Promise<unknown>): Promise<UsageError> {
    try {
      await p;
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).exitCode).toBe(2);
      return err as UsageError;
    }
    throw new Error("expected a UsageError");
  }

  test("--picoshare pointing at a missing file", async () => {
    const missing = join(work, "no-such-picoshare");
    const err = await usageError(resolvePicoShare(missing));
    expect(err.message).toContain(missing);
    expect(err.message).toContain("--picoshare");
    expect(err.message).toContain("does not exist");
    expect(err.message).toContain("give the path of a built picoshare");
  });

  test("PICOSHARE_BIN pointing at a missing file", async () => {
    const missing = join(work, "no-such-picoshare-env");
    process.env.PICOSHARE_BIN = missing;
    const err = await usageError(resolvePicoShare());
    expect(err.message).toContain(missing);
    expect(err.message).toContain("PICOSHARE_BIN");
    expect(err.message).toContain("give the path of a built picoshare");
  });

  test("a directory is not a binary", async () => {
    const err = await usageError(resolvePicoShare(work));
    expect(err.message).toContain("is not a file: give the path of the picoshare binary itself");
  });

  for (const how of ["--picoshare", "PICOSHARE_BIN"] as const) {
    test(`${how} pointing at a non-executable file`, async () => {
      const file = join(work, `not-executable-${how.replace(/\W/g, "")}`);
      writeFileSync(file, "#!/bin/sh\nexit 0\n", { mode: 0o644 });
      chmodSync(file, 0o644);
      let p: Promise<unknown>;
      if (how === "--picoshare") p = resolvePicoShare(file);
      else {
        process.env.PICOSHARE_BIN = file;
        p = resolvePicoShare();
      }
      const err = await usageError(p);
      expect(err.message).toContain(file);
      expect(err.message).toContain(how);
      expect(err.message).toContain("is not executable");
      expect(err.message).toContain("chmod +x");
    });
  }

  test("PICOSHARE_BIN: version read from the binary, sha256 as sha256sum", async () => {
    const cached = await getBinary();
    const copy = join(work, "picoshare-copy");
    copyFileSync(cached.path, copy);
    chmodSync(copy, 0o755);
    process.env.PICOSHARE_BIN = copy;
    const bin = await resolvePicoShare();
    expect(bin.source).toBe("env");
    expect(bin.path).toBe(copy);
    expect(bin.version).toBe(cached.version);
    expect(bin.version).toMatch(/^v\d+\.\d+\.\d+/);
    expect(bin.sha256).toBe(sha256sum(copy));
  }, BUILD_TIMEOUT);

  test("--picoshare wins over PICOSHARE_BIN; a non-Go binary has version unknown", async () => {
    const script = join(work, "fake-picoshare");
    writeFileSync(script, "#!/bin/sh\necho fake\n", { mode: 0o755 });
    chmodSync(script, 0o755);
    process.env.PICOSHARE_BIN = join(work, "missing-env-bin");
    const bin = await resolvePicoShare(script);
    expect(bin.source).toBe("flag");
    expect(bin.path).toBe(script);
    expect(bin.version).toBe("unknown");
    expect(bin.sha256).toBe(sha256sum(script));
    expect(bin.sha256).not.toBe((await getBinary()).sha256);
  }, BUILD_TIMEOUT);
});

describe("the binary runs", () => {
  test("starts, authenticates with the shared secret, stops on SIGTERM within 5 s", async () => {
    const bin = await getBinary();
    const port = await freePort();
    const secretDir = mkdtempSync(join(work, "secret-"));
    expect(statSync(secretDir).mode & 0o077).toBe(0);
    const secret = `s-${crypto.randomUUID()}`;
    const secretFile = join(secretDir, "secret");
    writeFileSync(secretFile, secret, { mode: 0o600 });
    expect(statSync(secretFile).mode & 0o777).toBe(0o600);
    const dataDir = mkdtempSync(join(work, "data-"));
    const tmp = mkdtempSync(join(work, "tmp-"));
    const cwd = mkdtempSync(join(work, "cwd-"));

    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && !k.startsWith("PS_")) env[k] = v;
    }
    Object.assign(env, { PORT: String(port), PS_SHARED_SECRET_FILE: secretFile, TMPDIR: tmp });
    const proc = Bun.spawn([bin.path, "-db", join(dataDir, "store.db")], {
      cwd,
      env,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    started.push(proc);
    const base = `http://127.0.0.1:${port}`;
    try {
      // Poll until it answers.
      const deadline = Date.now() + 20_000;
      let home: Response | undefined;
      while (Date.now() < deadline) {
        if (proc.exitCode !== null) throw new Error(`picoshare exited early (${proc.exitCode})`);
        try {
          home = await fetch(`${base}/`, { signal: AbortSignal.timeout(1000) });
          break;
        } catch {
          await sleep(100);
        }
      }
      expect(home).toBeDefined();
      expect(home!.status).toBe(200);
      expect(await home!.text()).toContain("<html");
      expect(existsSync(join(dataDir, "store.db"))).toBe(true);

      // The right secret: 200 and a session cookie that opens the file list.
      const auth = await fetch(`${base}/api/auth`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sharedSecretKey: secret }),
      });
      expect(auth.status).toBe(200);
      const cookie = auth.headers.get("set-cookie");
      expect(cookie).not.toBeNull();
      expect(cookie!).toMatch(/^\w+=[^;]+/);
      const session = cookie!.split(";")[0];
      expect((await fetch(`${base}/files`, { headers: { Cookie: session } })).status).toBe(200);
      expect((await fetch(`${base}/files`)).status).not.toBe(200);

      // A wrong secret: no 200, no cookie.
      const wrong = await fetch(`${base}/api/auth`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sharedSecretKey: `${secret}-wrong` }),
      });
      expect(wrong.status).not.toBe(200);
      expect(wrong.headers.get("set-cookie")).toBeNull();

      // Graceful stop.
      const t0 = Date.now();
      process.kill(proc.pid, "SIGTERM");
      const result = await Promise.race([proc.exited, sleep(5_000).then(() => "timeout")]);
      expect(result).not.toBe("timeout");
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(proc.signalCode === null || proc.signalCode === "SIGTERM").toBe(true);
      await expect(fetch(`${base}/`, { signal: AbortSignal.timeout(1000) })).rejects.toThrow();
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) {
        process.kill(proc.pid, "SIGKILL");
        await proc.exited;
      }
      const log = await new Response(proc.stderr).text();
      if (!log.includes("listening on")) console.error(`picoshare log:\n${log}`);
    }
  }, BUILD_TIMEOUT);
});
