// The frame every script runs in: installs the trap, turns errors into one
// `ERROR:` line and an exit code, and runs the cleanups before exiting once
// the output is written out.
import { installTrap, interrupted, runCleanups } from "./cleanup.ts";
import { error } from "./log.ts";
import { EXIT, Exit, Fatal, UsageError, errorMessage } from "./errors.ts";
import { exitFlushed } from "./exit.ts";

/** Fatal error: logs `ERROR: message`, runs the cleanups and exits with `code`. */
export function die(message: string, code: number = EXIT.failed): never {
  throw new Fatal(message, code);
}

/** Bad usage or set-up: `ERROR: message`, exit 2, nothing written. */
export function dieUsage(message: string, showUsage = false): never {
  throw new UsageError(message, showUsage);
}

export async function runMain(
  main: () => Promise<number | void>,
  usage?: string,
): Promise<never> {
  installTrap();
  let code: number = EXIT.ok;
  try {
    code = (await main()) ?? EXIT.ok;
  } catch (err) {
    if (interrupted()) {
      // The signal handler is already cleaning up and will exit.
      return new Promise<never>(() => {});
    }
    if (err instanceof Exit) {
      code = err.exitCode;
    } else if (err instanceof Fatal) {
      error(err.message);
      if (err.usage && usage) process.stderr.write(`\n${usage.trimEnd()}\n`);
      code = err.exitCode;
    } else {
      error(`unexpected failure: ${err instanceof Error && err.stack ? err.stack : errorMessage(err)}`);
      code = EXIT.failed;
    }
  }
  if (interrupted()) return new Promise<never>(() => {});
  await runCleanups();
  // A signal that came in while cleaning up decides the exit code itself.
  if (interrupted()) return new Promise<never>(() => {});
  return exitFlushed(code);
}

export { UsageError };
