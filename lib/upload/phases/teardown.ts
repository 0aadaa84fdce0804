// Teardown: the test's last readings of the environment, then the
// environment ended (or kept with --keep-vm after a success) and the
// harness's scratch files removed.
import { readFileSync, rmSync } from "node:fs";
import type { TestEnvironment } from "../../backends/types.ts";
import { interruptSignal, interrupted } from "../../core/cleanup.ts";
import { log } from "../../core/log.ts";
import type { Counters } from "../counters.ts";
import type { TestOptions } from "../runner.ts";
import { optional, secondsSince, type Ending } from "./common.ts";
import type { SetupFigures } from "./setup.ts";

/** What the environment says once the test has ended, before any restart. */
export interface LastReadings {
  /** OOM kills since the environment was made (`soFar` when it cannot say). */
  ooms: number;
  kernelPeak: number | null;
  picoRss: number | null;
  /** The counters from PicoShare's start to the end of the test. */
  testCounters: Counters | null;
  /** PicoShare's output ("" where it could not be read). */
  log: string;
}

export async function lastReadings(env: TestEnvironment, soFar: number): Promise<LastReadings> {
  const ooms = await env.oomKills().catch(() => soFar);
  const kernelPeak = await env.kernelPeakBytes().catch(() => null);
  const picoRss = await env.picosharePeakRss().catch(() => null);
  const testCounters = await optional(() => env.counters?.());
  let text = "";
  try {
    text = readFileSync(env.logPath, "utf8");
  } catch {}
  return { ooms, kernelPeak, picoRss, testCounters, log: text };
}

export interface TeardownFigures {
  /** 0 when the environment was kept, or never made. */
  seconds: number;
}

export async function teardown(made: SetupFigures, ending: Ending, opts: TestOptions): Promise<TeardownFigures> {
  const env = made.env;
  let seconds = 0;
  if (opts.keep && env && ending.reason === "success") {
    made.forgetTeardown();
    for (const line of env.keepInstructions(made.baseUrl)) log(line);
  } else if (env) {
    const t0 = performance.now();
    await env.teardown();
    seconds = secondsSince(t0);
    made.forgetTeardown();
  }
  rmSync(made.scratch, { recursive: true, force: true });
  if (interrupted()) throw interruptSignal.reason;
  return { seconds };
}
