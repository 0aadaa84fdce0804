// The guest's sampler: one long-lived ssh stream that prints, every sampleMs
// and fork-free in the guest (bash builtins only), the VM's memory and
// PicoShare's counters, and one line when PicoShare has ended. Keeps the last
// sample and the peak with the page cache; a memory monitor listens to it.
import type { ExitInfo, MemoryMonitor, MemoryPoint } from "../types.ts";
import { log, warn } from "../../core/log.ts";
import { CounterTracker } from "../../upload/counters.ts";
import { parseCountersLine, parseMemLine, systemdExit, type MemSample } from "../../vm/guest.ts";
import type { RemoteStream, SshConnection } from "../../vm/ssh.ts";
import { samplerCommand } from "./guest-scripts.ts";

export interface SamplerEvents {
  /** PicoShare's end as the guest reports it. */
  onExit(e: ExitInfo): void;
  /** Whether a stream that ended by itself is news (not after an exit or during the teardown). */
  expectsMore(): boolean;
  /** The stream ended by itself: PicoShare's exit must be seen another way. */
  onLost(): void;
}

export class GuestSampler {
  private stream: RemoteStream | null = null;
  private pid = 0;
  private last: MemSample | null = null;
  private lastAt = 0;
  /** The highest MemTotal - MemFree sampled (page cache included). */
  peakWithCache = 0;
  /** PicoShare's counters as the sampler reports them from the guest. */
  readonly tracker = new CounterTracker();
  private readonly listeners = new Set<(s: MemSample) => void>();

  constructor(readonly sampleMs: number) {}

  /** Starts the stream that follows PicoShare's main process `pid`. */
  follow(ssh: SshConnection, pid: number, events: SamplerEvents): void {
    this.pid = pid;
    const stream = ssh.stream(samplerCommand(this.sampleMs, pid), (line) => this.onLine(line, events));
    this.stream = stream;
    void stream.done.then((r) => {
      // (A restart stops the old one on purpose.)
      if (!events.expectsMore() || this.stream !== stream) return;
      warn(`the VM's memory sampler stopped (${r.code ?? r.signal}: ${r.stderr.trim().slice(-200) || "no message"})`);
      events.onLost();
    });
  }

  /** Stops the stream (for a restart, the teardown, or a kept VM). */
  async stop(): Promise<void> {
    await this.stream?.stop().catch(() => {});
    this.stream = null;
  }

  /** The last sample's memory in use, if it is recent (within two sample periods). */
  recentUsed(): number | null {
    return this.last && performance.now() - this.lastAt < 2 * this.sampleMs + 500 ? this.last.used : null;
  }

  monitor(): MemoryMonitor {
    // The guest samples on its own clock (sampleMs); the monitor keeps the peak of what arrives.
    log(`qemu: sampling the VM's memory (MemTotal - MemAvailable) every ${this.sampleMs} ms during the upload`);
    let peak = this.last?.used ?? 0;
    let samples = 0;
    // Stamped on arrival: the guest's clock is not the host's.
    const points: MemoryPoint[] = [];
    const listener = (s: MemSample) => {
      peak = Math.max(peak, s.used);
      samples++;
      points.push({ at: performance.now(), workingSet: s.used, anon: null, file: null });
    };
    this.listeners.add(listener);
    return {
      stop: async () => {
        // One more sample period, so that the last moment of the upload is in.
        await Bun.sleep(this.sampleMs + 20);
        this.listeners.delete(listener);
        return { peakBytes: peak, samples, points, intervalMs: this.sampleMs };
      },
    };
  }

  private onLine(line: string, events: SamplerEvents): void {
    const s = parseMemLine(line);
    if (s) {
      this.last = s;
      this.lastAt = performance.now();
      this.peakWithCache = Math.max(this.peakWithCache, s.usedWithCache);
      for (const l of this.listeners) l(s);
      return;
    }
    const c = parseCountersLine(line);
    if (c) {
      this.tracker.record(String(this.pid), c);
      return;
    }
    const parts = line.trim().split(/\s+/);
    if (parts[0] === "x") events.onExit(systemdExit(Number(parts[1]), Number(parts[2])));
  }
}
