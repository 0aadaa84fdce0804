// The trap: cleanups registered while a script runs are run once, newest
// first, whether it ends normally, by an error, or by SIGINT / SIGTERM.
// A second Ctrl-C while cleaning up forces the exit.
import { log, warn } from "./log.ts";
import { EXIT, errorMessage } from "./errors.ts";
import { exitFlushed } from "./exit.ts";

type CleanupFn = () => void | Promise<void>;
interface Entry {
  name: string;
  fn: CleanupFn;
}

const entries: Entry[] = [];
let running: Promise<void> | null = null;
const interrupt = new AbortController();
let installed = false;

/** Registers a cleanup; the returned function removes it again (e.g. when done early). */
export function onCleanup(name: string, fn: CleanupFn): () => void {
  const entry = { name, fn };
  entries.push(entry);
  return () => {
    const i = entries.indexOf(entry);
    if (i >= 0) entries.splice(i, 1);
  };
}

/** Runs every registered cleanup once, newest first; later calls wait for the same run. */
export function runCleanups(): Promise<void> {
  running ??= (async () => {
    while (entries.length > 0) {
      const entry = entries.pop()!;
      try {
        await entry.fn();
      } catch (err) {
        warn(`cleanup "${entry.name}" failed: ${errorMessage(err)}`);
      }
    }
  })();
  return running;
}

/** Aborted when SIGINT or SIGTERM arrives: long waits pass it on so they stop at once. */
export const interruptSignal: AbortSignal = interrupt.signal;

export function interrupted(): boolean {
  return interrupt.signal.aborted;
}

const SIGNAL_EXIT: Record<string, number> = { SIGINT: EXIT.interrupted, SIGTERM: 143 };

/** Installs the SIGINT / SIGTERM handlers (idempotent). */
export function installTrap(): void {
  if (installed) return;
  installed = true;
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      if (interrupt.signal.aborted) {
        if (sig === "SIGINT") {
          warn("second interrupt: exiting without finishing cleanup");
          process.exit(SIGNAL_EXIT[sig]);
        }
        return;
      }
      log(`Caught ${sig}, cleaning up (Ctrl-C again to force)`);
      interrupt.abort(new Error(`interrupted by ${sig}`));
      void runCleanups().finally(() => exitFlushed(SIGNAL_EXIT[sig]));
    });
  }
}
