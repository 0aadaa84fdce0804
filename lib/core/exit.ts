// Leaving the process with all its output written. Under Bun, what a pipe
// cannot take at once waits in process.stdout's (and process.stderr's) own
// buffer, and process.exit() drops it: a pipe got the first 128 KiB of a
// larger output. Ending the two streams writes that buffer out; their end
// callbacks come once it is written, or once the reader has gone (EPIPE).

let flushing: Promise<void> | null = null;

/** Resolves once stdout and stderr have written out all they were given (once per process: the streams end). */
export function flushStdio(): Promise<void> {
  flushing ??= Promise.all(
    [process.stdout, process.stderr].map((s) => new Promise<void>((resolve) => s.end(() => resolve()))),
  ).then(() => undefined);
  return flushing;
}

/** process.exit(code) once stdout and stderr are written out. */
export async function exitFlushed(code: number): Promise<never> {
  await flushStdio();
  process.exit(code);
}
