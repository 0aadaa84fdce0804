// The vagrant command, run the way the harness needs it: in the Vagrant
// folder, output captured and appended to a log there, a timeout, its whole
// process group ended when aborted, and Vagrant's own machine lock ("another
// process is already executing an action") waited for with a bound.
import { appendFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { log, timestamp } from "../../core/log.ts";
import { $, stopReason } from "../../core/shell.ts";

/** What Vagrant prints when another vagrant process holds the machine's lock. */
export const VAGRANT_LOCKED_RE = /another process is already executing an action/i;

export interface VagrantResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Vagrant's lock stayed held by another process for the whole wait. */
export class VagrantLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VagrantLockedError";
  }
}

/** A vagrant command that failed. */
export class VagrantError extends Error {
  constructor(
    message: string,
    readonly result: VagrantResult,
  ) {
    super(message);
    this.name = "VagrantError";
  }
}

export interface VagrantRunOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** How long to wait for Vagrant's own lock, ms (0: fail at once). */
  lockWaitMs?: number;
}

export function lastLines(text: string, n = 3): string {
  return text.trim().split("\n").map((l) => l.trim()).filter(Boolean).slice(-n).join(" / ");
}

export class VagrantCli {
  private running = new Set<Promise<unknown>>();

  constructor(
    /** The folder holding the Vagrantfile (VAGRANT_CWD). */
    readonly folder: string,
    /** Extra environment (VM_MEMORY, VM_BOX ...). */
    readonly env: Record<string, string>,
    /** Where every command and its output is appended; null for none. */
    readonly logFile: string | null,
  ) {}

  private record(text: string): void {
    if (!this.logFile) return;
    try {
      mkdirSync(dirname(this.logFile), { recursive: true });
      appendFileSync(this.logFile, text);
    } catch {
      // the log is a convenience
    }
  }

  private once(args: string[], opts: VagrantRunOptions): Promise<VagrantResult> {
    this.record(`[${timestamp()}] $ vagrant ${args.join(" ")}\n`);
    // Its own process group (as every command): Ctrl-C reaches the harness
    // alone, which ends vagrant (and what it started) by group id, then
    // destroys the VM.
    const cmd = $({
      cwd: this.folder,
      env: { VAGRANT_CWD: this.folder, VAGRANT_NO_COLOR: "1", ...this.env },
      timeout: opts.timeoutMs,
      signal: opts.signal,
      // Anything vagrant left in its group goes too.
      endGroupAtExit: true,
      grace: 10_000,
      nothrow: true,
    })`vagrant ${args}`;
    cmd.stdout.on("data", (d: Buffer) => this.record(d.toString()));
    cmd.stderr.on("data", (d: Buffer) => this.record(d.toString()));
    const done = (async (): Promise<VagrantResult> => {
      const r = await cmd;
      const stopped = stopReason(r);
      const why = stopped === null ? null : stopped.startsWith("timed out") ? `timed out after ${Math.round(opts.timeoutMs! / 1000)} s` : "interrupted";
      const stderr = why ? `${r.stderr}\n(vagrant ${args[0]} ${why})` : r.stderr;
      this.record(`[${timestamp()}] exit ${r.exitCode ?? r.signal}${why ? ` (${why})` : ""}\n`);
      return { code: why ? null : r.exitCode, signal: r.signal, stdout: r.stdout, stderr };
    })();
    this.running.add(done);
    void done.finally(() => this.running.delete(done));
    return done;
  }

  /** Resolves once no vagrant command started here is running. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /**
   * Runs `vagrant args...`; resolves with its output whatever its exit
   * status, except that Vagrant's lock is waited for (backing off) up to
   * `lockWaitMs`, then reported as a VagrantLockedError.
   */
  async run(args: string[], opts: VagrantRunOptions = {}): Promise<VagrantResult> {
    const waitMs = opts.lockWaitMs ?? 0;
    const deadline = Date.now() + waitMs;
    let delay = 1000;
    let told = false;
    for (;;) {
      const r = await this.once(args, opts);
      if (r.code === 0 || !VAGRANT_LOCKED_RE.test(r.stdout + r.stderr)) return r;
      if (opts.signal?.aborted) return r;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new VagrantLockedError(
          `Vagrant's own lock on the machine in ${this.folder} stayed held by another vagrant process ` +
            `for ${Math.round(waitMs / 1000)} s ("vagrant ${args[0]}" was refused): let that process finish ` +
            `(ps -ef | grep '[v]agrant'), then run again; raise the wait with PERF_VAGRANT_LOCK_WAIT=SEC`,
        );
      }
      if (!told) {
        log(`Vagrant's machine lock in ${this.folder} is held by another vagrant process: waiting up to ${Math.round(waitMs / 1000)} s`);
        told = true;
      }
      await new Promise((r) => setTimeout(r, Math.min(delay, left)));
      delay = Math.min(delay * 2, 8000);
    }
  }

  /** Like run, but a non-zero exit is thrown as a VagrantError naming the last lines of output. */
  async check(args: string[], opts: VagrantRunOptions = {}): Promise<VagrantResult> {
    const r = await this.run(args, opts);
    if (r.code !== 0) {
      throw new VagrantError(
        `vagrant ${args.join(" ")} failed (${r.code === null ? "no exit status" : `exit ${r.code}`}): ${lastLines(r.stderr || r.stdout) || "no output"}`,
        r,
      );
    }
    return r;
  }
}

/** The machine's state from `vagrant status --machine-readable` (e.g. running, not_created, shutoff). */
export function parseMachineState(out: string): string | null {
  for (const line of out.split("\n")) {
    const f = line.split(",");
    if (f[2] === "state" && f[3]) return f[3].trim();
  }
  return null;
}

/** "Vagrant 2.4.1" → [2, 4, 1]. */
export function parseVagrantVersion(out: string): [number, number, number] | null {
  const m = /Vagrant\s+(\d+)\.(\d+)(?:\.(\d+))?/.exec(out);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

export function versionAtLeast(v: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    if ((v[i] ?? 0) !== min[i]) return (v[i] ?? 0) > min[i];
  }
  return true;
}
