// PicoShare's end as an environment reports it (TestEnvironment.exited): told
// once, whichever watcher sees it first, and renewed for the process a
// restart starts.
import type { ExitInfo } from "./types.ts";

export class ExitLatch {
  private resolveNow!: (e: ExitInfo) => void;
  private current: Promise<ExitInfo> = this.fresh();
  private info: ExitInfo | null = null;

  /** Resolves with the first exit told since the last renew(). */
  get exited(): Promise<ExitInfo> {
    return this.current;
  }

  /** The exit told, or null while PicoShare runs (as far as anyone has said). */
  get value(): ExitInfo | null {
    return this.info;
  }

  /** Tells the exit; later calls (another watcher, the teardown) are ignored. Returns whether this call was the first. */
  resolve(e: ExitInfo): boolean {
    if (this.info) return false;
    this.info = e;
    this.resolveNow(e);
    return true;
  }

  /** For a restarted PicoShare: `exited` follows the new process. */
  renew(): void {
    this.info = null;
    this.current = this.fresh();
  }

  private fresh(): Promise<ExitInfo> {
    return new Promise<ExitInfo>((r) => (this.resolveNow = r));
  }
}
