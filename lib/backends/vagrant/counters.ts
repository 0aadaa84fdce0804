// PicoShare's counters in the guest: the memory stream's reading when it is
// fresh (the end of the upload), else one read over ssh while PicoShare runs
// (each round trip costs a second or more under TCG), else its last reading.
import type { CounterReading } from "../../core/proc.ts";
import { CounterTracker, type Counters } from "../../upload/counters.ts";
import { COUNTERS_FN, parseCountersLine } from "../../vm/guest.ts";
import type { SshConnection } from "../../vm/ssh.ts";

export class GuestCounters {
  private readonly tracker = new CounterTracker();
  private at = -Infinity;

  record(pid: number | null, c: CounterReading): void {
    this.tracker.record(String(pid), c);
    this.at = performance.now();
  }

  /** The last reading no longer counts as fresh: the next read() asks the guest. */
  stale(): void {
    this.at = -Infinity;
  }

  /** `pid`: PicoShare's while it runs, else null (its last reading stands). */
  async read(pid: number | null, ssh: SshConnection | null): Promise<Counters | null> {
    const fresh = performance.now() - this.at < 1000;
    if (!fresh && pid && ssh) {
      const r = await ssh.exec(`${COUNTERS_FN}\nctr ${pid}`, { timeoutMs: 15_000 }).catch(() => null);
      const c = r ? parseCountersLine(r.stdout) : null;
      if (c) this.record(pid, c);
    }
    return this.tracker.total();
  }
}
