// Processes the harness starts: each in its own process group, so that it and
// everything it starts can be ended together, by id, never by name.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import type { ExitInfo } from "../backends/types.ts";

export interface Started {
  child: ChildProcess;
  pid: number;
  exited: Promise<ExitInfo>;
  running(): boolean;
}

/** Starts argv in a new process group with stdout and stderr appended to `logPath`. */
export function startInGroup(
  argv: string[],
  opts: { cwd: string; env: Record<string, string>; logPath: string },
): Started {
  const fd = openSync(opts.logPath, "a", 0o600);
  let done = false;
  const child = spawn(argv[0], argv.slice(1), {
    cwd: opts.cwd,
    env: opts.env,
    detached: true,
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.once("error", () => {
      done = true;
      resolve({ code: 127, signal: null });
    });
  });
  if (child.pid === undefined) throw new Error(`could not start ${argv[0]}`);
  return { child, pid: child.pid, exited, running: () => !done };
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // the group is already gone
  }
}

/**
 * Ends a process group: SIGTERM, then SIGKILL after `graceMs` (PicoShare
 * shuts down within 5 s of a SIGTERM).
 */
export async function stopGroup(started: Started, graceMs = 5000): Promise<ExitInfo> {
  if (started.running()) {
    signalGroup(started.pid, "SIGTERM");
    const timer = setTimeout(() => signalGroup(started.pid, "SIGKILL"), graceMs);
    await started.exited;
    clearTimeout(timer);
  }
  // Anything the process left in its group goes too.
  signalGroup(started.pid, "SIGKILL");
  return started.exited;
}

/** A process's peak resident set (VmHWM) in bytes, or null once it is gone. */
export function peakRss(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Whether a process with this pid exists (EPERM: it exists, owned by another user). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
