// The VM's working set (MemTotal - MemAvailable of the whole VM), read once
// or sampled by one long-lived ssh stream that is restarted, a few times,
// when it breaks.
import type { MemoryMonitor, MemoryPoint } from "../types.ts";
import { interrupted } from "../../core/cleanup.ts";
import { errorMessage } from "../../core/errors.ts";
import { shq } from "../../core/exec.ts";
import { warn } from "../../core/log.ts";
import { COUNTERS_FN, MEM_FN, parseCountersLine, parseMemLine } from "../../vm/guest.ts";
import type { RemoteStream, SshConnection } from "../../vm/ssh.ts";
import type { CounterReading } from "../../core/proc.ts";

export async function readVmMemory(ssh: SshConnection): Promise<number> {
  const out = await ssh.run(`${MEM_FN}; mem`, { what: "read /proc/meminfo", idempotent: true, timeoutMs: 15_000 });
  const n = parseMemLine(out)?.used ?? NaN;
  if (!Number.isFinite(n) || n <= 0) throw new Error(`could not read the VM's memory (got "${out.trim()}")`);
  return n;
}

export interface MemoryStreamHost {
  remote(): SshConnection;
  /** The guest folder: the sampler ends when it goes (teardown). */
  guestDir: string;
  /** Open streams, stopped by the teardown. */
  streams: Set<RemoteStream>;
  tearingDown(): boolean;
  memoryNow(): Promise<number>;
  /** PicoShare's pid in the guest: its counters come with each sample (see COUNTERS_FN). */
  picoPid: number | null;
  onCounters(c: CounterReading): void;
}

/** Samples every `intervalMs` (10 to 100 ms) until stopped; one last reading at the stop. */
export function monitorVmMemory(host: MemoryStreamHost, intervalMs: number): MemoryMonitor {
  let peak = 0;
  let samples = 0;
  let stopped = false;
  const everyMs = Math.min(Math.max(intervalMs, 10), 100);
  const sleep = (everyMs / 1000).toFixed(3);
  // Runs until its output is closed, or its folder goes (teardown).
  const ctr = host.picoPid ? `; ctr ${host.picoPid}` : "";
  const cmd = `${MEM_FN}\n${COUNTERS_FN}\nwhile [ -d ${shq(host.guestDir)} ]; do mem${ctr}; sleep ${sleep}; done`;
  // Stamped on arrival: the guest's clock is not the host's.
  const points: MemoryPoint[] = [];
  const record = (n: number) => {
    if (Number.isFinite(n) && n > 0) {
      peak = Math.max(peak, n);
      samples++;
      points.push({ at: performance.now(), workingSet: n, anon: null, file: null });
    }
  };
  const onLine = (line: string) => {
    const c = parseCountersLine(line);
    if (c) host.onCounters(c);
    else record(parseMemLine(line)?.used ?? NaN);
  };
  let current: RemoteStream;
  const begin = (restarts: number) => {
    current = host.remote().stream(cmd, onLine);
    host.streams.add(current);
    const mine = current;
    void mine.done.then(() => {
      host.streams.delete(mine);
      if (stopped || host.tearingDown() || interrupted()) return;
      if (restarts >= 3) {
        warn("the memory stream from the VM kept breaking: the peak covers only part of the upload");
        return;
      }
      warn("the memory stream from the VM broke: restarting it");
      setTimeout(() => {
        if (stopped || host.tearingDown()) return;
        try {
          begin(restarts + 1);
        } catch (err) {
          warn(`could not restart the memory stream: ${errorMessage(err)}`);
        }
      }, 200);
    });
  };
  begin(0);
  return {
    stop: async () => {
      stopped = true;
      await current.stop();
      try {
        record(await host.memoryNow());
      } catch {
        // the VM is going away
      }
      return { peakBytes: peak, samples, points, intervalMs: everyMs };
    },
  };
}
