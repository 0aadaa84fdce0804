// Setup: the backend makes the memory-limited environment and starts
// PicoShare in it. Whatever goes wrong here is setup_failed.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { EnvironmentSpec, TestEnvironment } from "../../backends/types.ts";
import { NAME_PREFIX } from "../../backends/cgroup-place.ts";
import { interruptSignal, onCleanup } from "../../core/cleanup.ts";
import type { TestOptions } from "../runner.ts";
import { attempt, secondsSince, type Outcome } from "./common.ts";

export interface SetupFigures extends Outcome {
  seconds: number;
  /** The environment once made (also when PicoShare's start failed in it); null when it was not. */
  env: TestEnvironment | null;
  /** Where the host reaches PicoShare; "" when it was not started. */
  baseUrl: string;
  /** PicoShare's shared secret for this test (never on a command line). */
  secret: string;
  /** The harness's own files of this test (the small entry, a database copy, the proxy's folder). */
  scratch: string;
  /** Unregisters the trap's teardown, once the test tears down (or keeps) the environment itself. */
  forgetTeardown: () => void;
}

export async function setup(opts: TestOptions): Promise<SetupFigures> {
  const spec: EnvironmentSpec = {
    ramMiB: opts.ramMiB,
    workDir: opts.workDir,
    picoshare: opts.picoshare,
    uploadBytes: opts.size.bytes,
    signal: interruptSignal,
    wrapper: opts.instrument?.wrapper,
  };
  // Named so that a dead harness's are reaped.
  const scratch = mkdtempSync(join(opts.workDir, `${NAME_PREFIX}${process.pid}-aux-`));
  let env: TestEnvironment | null = null;
  let baseUrl = "";
  // (A proxy stops on the trap by itself: startProxy registers that.)
  const forgetTeardown = onCleanup("tear down the test environment", async () => {
    await env?.teardown();
    rmSync(scratch, { recursive: true, force: true });
  });
  const secret = randomBytes(24).toString("base64url");
  const t0 = performance.now();
  const failure = await attempt(async () => {
    env = await opts.backend.create(spec);
    baseUrl = await env.startPicoShare(secret);
  }, "setup_failed");
  return { seconds: secondsSince(t0), env, baseUrl, secret, scratch, forgetTeardown, failure };
}
