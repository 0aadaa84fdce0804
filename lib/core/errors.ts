// Exit codes and the errors that carry them, shared by every script.

export const EXIT = {
  ok: 0,
  failed: 1, // the test (or one of the tests) failed; results were written
  usage: 2, // bad usage or a set-up problem; nothing was written
  breach: 3, // compare --fail-on: B crossed a threshold (the harness itself worked)
  drift: 4, // run-test-matrix --stop-on-drift: the control cell drifted; resumable
  interrupted: 130,
} as const;

/** A fatal error with the exit code the script should end with. */
export class Fatal extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
    readonly usage = false,
  ) {
    super(message);
    this.name = "Fatal";
  }
}

/** Bad input: one line naming the problem and the fix; exit 2. */
export class UsageError extends Fatal {
  constructor(message: string, showUsage = false) {
    super(message, EXIT.usage, showUsage);
    this.name = "UsageError";
  }
}

/**
 * Ends the script at once with `exitCode` and no message (--help, once the
 * usage is printed): runMain exits when the output is written out.
 */
export class Exit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
    this.name = "Exit";
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
