// go_runtime_env is what PicoShare's process received (its /proc/PID/environ),
// not the harness's own environment: a variable given to PicoShare alone,
// and gone from the harness by the time the result is made, is recorded.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { localBackend } from "../lib/backends/local.ts";
import type { Backend, TestEnvironment } from "../lib/backends/types.ts";
import { parseEnviron, processEnviron } from "../lib/core/proc.ts";
import { MiB, parseSize } from "../lib/core/sizes.ts";
import { start, stopGroup } from "../lib/core/exec.ts";
import { resolvePicoShare, type PicoShareBinary } from "../lib/upload/picoshare.ts";
import { goRuntimeEnv, goRuntimeEnvOf } from "../lib/upload/provenance.ts";
import { measureTest } from "../lib/upload/runner.ts";
import { writeTestFile } from "../lib/upload/testfiles.ts";

setDefaultTimeout(120_000);

describe("parsing /proc/PID/environ", () => {
  test("NUL-ended NAME=VALUE entries; a value may hold '=' and be empty; the first of a repeated name wins", () => {
    const text = "PATH=/usr/bin:/bin\0GODEBUG=madvdontneed=1,gctrace=1\0GOGC=\0GOMEMLIMIT=100MiB\0GOMEMLIMIT=1GiB\0garbage\0=x\0";
    expect(parseEnviron(text)).toEqual({ PATH: "/usr/bin:/bin", GODEBUG: "madvdontneed=1,gctrace=1", GOGC: "", GOMEMLIMIT: "100MiB" });
    // Unset and empty are alike to Go's runtime: both null.
    expect(goRuntimeEnvOf(text)).toEqual({ GOGC: null, GOMEMLIMIT: "100MiB", GODEBUG: "madvdontneed=1,gctrace=1", GOMAXPROCS: null });
    expect(goRuntimeEnvOf("")).toEqual({ GOGC: null, GOMEMLIMIT: null, GODEBUG: null, GOMAXPROCS: null });
  });

  test("a real process's environment, read from /proc, not the reader's", async () => {
    expect(process.env.GOMAXPROCS).toBeUndefined();
    const p = start(["sleep", "30"], { cleanEnv: true, env: { PATH: "/usr/bin:/bin", GOMAXPROCS: "3" }, stdout: "ignore" });
    try {
      // Until the child has exec'd sleep, its environ is not yet the one it was given (CI once read it empty).
      const execd = () => (processCmdline(p.pid) ?? "").startsWith("sleep");
      for (const until = Date.now() + 5000; !execd() && Date.now() < until; ) await Bun.sleep(5);
      expect(goRuntimeEnvOf(processEnviron(p.pid)!)).toEqual({ GOGC: null, GOMEMLIMIT: null, GODEBUG: null, GOMAXPROCS: "3" });
    } finally {
      await stopGroup(p);
    }
    expect(processEnviron(p.pid)).toBeNull();
  });

  /** A process's command line, or null when it is gone. */
  function processCmdline(pid: number): string | null {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      return null;
    }
  }
});

describe("the local backend and the runner", () => {
  let dir: string;
  let picoshare: PicoShareBinary;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "go-runtime-env-"));
    picoshare = await resolvePicoShare();
    await writeTestFile(join(dir, "1M.bin"), MiB);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The local backend, with `vars` in the harness's environment only while PicoShare is being started. */
  function startedWith(vars: Record<string, string>): Backend {
    return {
      ...localBackend,
      async create(spec) {
        const env: TestEnvironment = await localBackend.create(spec);
        const startPicoShare = env.startPicoShare.bind(env);
        env.startPicoShare = async (secret) => {
          Object.assign(process.env, vars);
          try {
            return await startPicoShare(secret);
          } finally {
            for (const k of Object.keys(vars)) delete process.env[k];
          }
        };
        return env;
      },
    };
  }

  test("the result's go_runtime_env is what PicoShare's process got, though the harness no longer has it", async () => {
    const m = await measureTest({
      ramMiB: 256, size: parseSize("1M"), filePath: join(dir, "1M.bin"), timeoutSec: 60, keep: false, verify: false, workDir: dir, runId: null,
      backend: startedWith({ GOGC: "61", GOMEMLIMIT: "200MiB" }), picoshare, download: false, recovery: false,
    });
    expect(m.result.exit_reason).toBe("success");
    // The harness's own environment says nothing of them now.
    expect(goRuntimeEnv()).toEqual({ GOGC: null, GOMEMLIMIT: null, GODEBUG: null, GOMAXPROCS: null });
    expect(m.result.go_runtime_env).toEqual({ GOGC: "61", GOMEMLIMIT: "200MiB", GODEBUG: null, GOMAXPROCS: null });
  });

  test("a PicoShare that never started has none to read: null, not the harness's", async () => {
    process.env.GOGC = "42";
    try {
      const m = await measureTest({
        ramMiB: 256, size: parseSize("1M"), filePath: join(dir, "1M.bin"), timeoutSec: 60, keep: false, verify: false, workDir: dir, runId: null,
        backend: localBackend, picoshare: { ...picoshare, path: "/nonexistent/picoshare" }, download: false, recovery: false,
      });
      expect(m.result.exit_reason).not.toBe("success");
      expect(m.result.go_runtime_env).toBeNull();
    } finally {
      delete process.env.GOGC;
    }
  });
});
