// A build step: a command in its own process group with a clean environment,
// its output appended to the build log after a "$ argv" line, killed when the
// script is interrupted.
import { appendFileSync } from "node:fs";
import { onCleanup } from "../../core/cleanup.ts";
import { errorMessage } from "../../core/errors.ts";
import { signalGroup, start, type Started } from "../../core/exec.ts";

export interface Step {
  logPath: string;
}

const STEP_ENV = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" };

/** Runs argv to its end; throws, naming the build log, when it fails. */
export async function runStep(step: Step, argv: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<void> {
  appendFileSync(step.logPath, `\n$ ${argv.join(" ")}\n`);
  let started: Started;
  try {
    started = start(argv, { stdout: { file: step.logPath }, cleanEnv: true, env: { ...STEP_ENV, ...opts.env }, input: opts.input });
  } catch (err) {
    throw new Error(`${argv[0]}: ${errorMessage(err)}`);
  }
  const forget = onCleanup(`stop ${argv[0]}`, () => {
    signalGroup(started.pid, "SIGKILL");
  });
  const { code, signal } = await started.exited;
  forget();
  // Set only when it could not be started (its output goes to the log).
  if (started.stderr()) throw new Error(`${argv[0]}: ${started.stderr()}`);
  if (code !== 0) throw new Error(`${argv.slice(0, 3).join(" ")} failed (${signal ?? `exit ${code}`}); see ${step.logPath}`);
}
