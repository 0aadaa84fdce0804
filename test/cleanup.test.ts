// lib/core/cleanup.ts + lib/core/main.ts: the cleanups run once each, newest first,
// however the script ends; and all of its output reaches a pipe before it
// exits. Exercised through real child processes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { BUN } from "../lib/core/paths.ts";

const CHILD = resolve(import.meta.dir, "fixtures", "cleanup-child.ts");
const ALL = ["third", "second", "first"];

let work: string;
let n = 0;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "cleanup-test-"));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Child {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  log: string;
  /** Resolves once stdout contains `text`. */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
  stdout(): string;
}

function start(mode: string, arg?: string): Child {
  const log = join(work, `log-${++n}`);
  const proc = Bun.spawn([BUN, CHILD, log, mode, ...(arg ? [arg] : [])], {
    env: { ...process.env, NO_COLOR: "1" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let out = "";
  const reader = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stdout) out += dec.decode(chunk);
  })();
  return {
    proc,
    log,
    stdout: () => out,
    async waitFor(text, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!out.includes(text)) {
        if (Date.now() > deadline) throw new Error(`child never printed "${text}" (stdout: ${out})`);
        if (proc.exitCode !== null || proc.signalCode !== null) {
          await reader;
          if (out.includes(text)) return;
          throw new Error(`child exited (${proc.exitCode ?? proc.signalCode}) before printing "${text}"`);
        }
        await sleep(10);
      }
    },
  };
}

async function finish(c: Child, timeoutMs = 10_000) {
  const code = await Promise.race([c.proc.exited, sleep(timeoutMs).then(() => "timeout" as const)]);
  if (code === "timeout") c.proc.kill("SIGKILL");
  const stderr = await new Response(c.proc.stderr).text();
  const ran = existsSync(c.log) ? readFileSync(c.log, "utf8").split("\n").filter(Boolean) : [];
  return { code, stderr, ran };
}

describe("cleanups run once each, newest first", () => {
  test("on a normal exit (exit 0)", async () => {
    const c = start("exit");
    const r = await finish(c);
    expect(r.code).toBe(0);
    expect(c.stdout()).toBe("ready\n");
    expect(r.ran).toEqual(ALL);
    expect(r.stderr).not.toContain("ERROR");
  });

  test("on a thrown error (one ERROR line, exit 1)", async () => {
    const c = start("throw");
    const r = await finish(c);
    expect(r.code).toBe(1);
    expect(r.ran).toEqual(ALL);
    const errors = r.stderr.split("\n").filter((l) => l.includes("ERROR:"));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain("boom");
  });

  test("on a UsageError (exit 2)", async () => {
    const c = start("usage");
    const r = await finish(c);
    expect(r.code).toBe(2);
    expect(r.ran).toEqual(ALL);
    expect(r.stderr).toContain("ERROR: bad flag value: use --x 1");
  });

  for (const code of [1, 3, 7]) {
    test(`on die(message, ${code}) (exit ${code})`, async () => {
      const c = start("die", String(code));
      const r = await finish(c);
      expect(r.code).toBe(code);
      expect(r.ran).toEqual(ALL);
      expect(r.stderr).toContain("ERROR: custom failure");
      expect(r.stderr).not.toContain("unexpected failure");
    });
  }

  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    test(`on ${signal} (exit ${code})`, async () => {
      const c = start("wait");
      await c.waitFor("ready");
      // Nothing has run before the signal.
      expect(existsSync(c.log)).toBe(false);
      c.proc.kill(signal);
      const r = await finish(c);
      expect(r.code).toBe(code);
      expect(r.ran).toEqual(ALL);
      expect(r.stderr).toContain(`Caught ${signal}, cleaning up`);
      expect(r.stderr).not.toContain("ERROR");
    });
  }

  test("a failing cleanup is reported and the others still run", async () => {
    const c = start("bad-cleanup");
    const r = await finish(c);
    expect(r.code).toBe(0);
    expect(r.ran).toEqual(["bad", ...ALL]);
    expect(r.stderr).toContain('WARNING: cleanup "bad" failed: cleanup went wrong');
  });
});

describe("signals while cleaning up", () => {
  test("SIGTERM during the cleanups of a normal exit does not run them twice", async () => {
    const c = start("exit-slow", "1000");
    await c.waitFor("cleaning");
    c.proc.kill("SIGTERM");
    const r = await finish(c);
    // Either the normal end or the signal may decide the code; never a second run.
    expect([0, 143]).toContain(r.code as number);
    expect(r.ran).toEqual(["third", "second:start", "second", "first"]);
  });

  test("a second SIGTERM during signal cleanups is ignored (cleanups finish once, exit 143)", async () => {
    const c = start("wait-slow", "1000");
    await c.waitFor("ready");
    c.proc.kill("SIGTERM");
    await c.waitFor("cleaning");
    c.proc.kill("SIGTERM");
    const r = await finish(c);
    expect(r.code).toBe(143);
    expect(r.ran).toEqual(["third", "second:start", "second", "first"]);
    expect(r.stderr.match(/Caught SIGTERM/g)).toHaveLength(1);
  });

  for (const first of ["SIGTERM", "SIGINT"] as const) {
    test(`a SIGINT while a slow cleanup runs (after ${first}) forces the exit (130)`, async () => {
      const c = start("wait-slow", "20000");
      await c.waitFor("ready");
      c.proc.kill(first);
      await c.waitFor("cleaning");
      const t0 = Date.now();
      c.proc.kill("SIGINT");
      const r = await finish(c, 5_000);
      expect(r.code).toBe(130);
      expect(Date.now() - t0).toBeLessThan(3_000);
      // The slow cleanup never finished and the older one never started.
      expect(r.ran).toEqual(["third", "second:start"]);
      expect(r.stderr).toContain("second interrupt: exiting without finishing cleanup");
    });
  }

  test("without a second signal the slow cleanup is waited for", async () => {
    const c = start("wait-slow", "800");
    await c.waitFor("ready");
    const t0 = Date.now();
    c.proc.kill("SIGINT");
    const r = await finish(c);
    expect(r.code).toBe(130);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(750);
    expect(r.ran).toEqual(["third", "second:start", "second", "first"]);
  });
});

describe("output through a pipe", () => {
  const PRINT = resolve(import.meta.dir, "fixtures", "print-child.ts");
  const BYTES = 1 << 20;

  /** All of a stream, read only after `delayMs`: by then the pipe is full and the rest waits in the child. */
  async function readLate(stream: ReadableStream<Uint8Array>, delayMs: number): Promise<number> {
    await sleep(delayMs);
    let n = 0;
    for await (const chunk of stream) n += chunk.length;
    return n;
  }

  test("1 MiB on stdout and on stderr reaches a slow reader whole before the exit, with the script's code", async () => {
    const proc = Bun.spawn([BUN, PRINT, String(BYTES), "3"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([readLate(proc.stdout, 300), readLate(proc.stderr, 300), proc.exited]);
    expect({ out, err, code }).toEqual({ out: BYTES, err: BYTES, code: 3 });
  });

  test("through `| cat` as a shell pipes it, cat starting once the pipe is full", async () => {
    const sh = Bun.spawn(["sh", "-c", `"$0" "$1" ${BYTES} 0 2>/dev/null | { sleep 0.3; cat; }`, BUN, PRINT], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [out, code] = await Promise.all([new Response(sh.stdout).text(), sh.exited]);
    expect(code).toBe(0);
    expect(out.length).toBe(BYTES);
  });

  test("a reader that goes away early does not keep the script from exiting", async () => {
    const sh = Bun.spawn(["sh", "-c", `"$0" "$1" ${BYTES} 0 2>/dev/null | head -c 10`, BUN, PRINT], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const code = await Promise.race([sh.exited, sleep(10_000).then(() => "timeout" as const)]);
    if (code === "timeout") sh.kill("SIGKILL");
    expect(code).toBe(0);
    expect(await new Response(sh.stdout).text()).toBe("x".repeat(10));
  });
});
