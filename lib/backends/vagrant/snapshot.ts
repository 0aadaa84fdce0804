// What is read in the guest after the upload, in one ssh round trip:
// PicoShare's log (copied to the host; under systemd, once PicoShare ended,
// with the unit's journal), the OOM killer's lines from the kernel log and
// PicoShare's VmHWM. Taken one at a time, in order, and reused for 300 ms:
// the runner asks for these one after another.
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { shq } from "../../core/exec.ts";
import { vmHwmBytes } from "../../core/proc.ts";
import { PICOSHARE_OOM_LINES, oomKilledPids } from "../../vm/guest.ts";
import type { SshConnection } from "../../vm/ssh.ts";
import type { GuestFacts } from "./guest-folder.ts";
import { ALIVE_FN } from "./guest-scripts.ts";

export interface Snapshot {
  oomPids: number[];
  vmHwm: number | null;
  /** PicoShare was still running when the snapshot was taken. */
  running: boolean;
}

/** What a snapshot reads, as things stand when it is taken. */
export interface SnapshotQuery {
  /** PicoShare's log in the guest, quoted for the shell. */
  guestLog: string;
  /** Where its copy goes on the host. */
  hostLog: string;
  facts: GuestFacts;
  /** The systemd unit PicoShare runs in, if any. */
  unit: string | null;
  pid: number | null;
  /** PicoShare has ended (as the watcher said). */
  exited: boolean;
  /** The guest's uptime (s) just before PicoShare started: older kernel log lines are not about it. */
  startUptime: number | null;
}

export async function readSnapshot(ssh: SshConnection, q: SnapshotQuery): Promise<Snapshot | null> {
  const mark = `--picoshare-perf-${randomBytes(6).toString("hex")}--`;
  const parts = [`tail -c 4194304 ${q.guestLog} 2>/dev/null`];
  if (q.unit && q.exited) {
    parts.push(`echo "--- journal of ${q.unit} ---"`, `${q.facts.sudo}journalctl -u ${shq(q.unit)} -q --no-pager -o short-precise 2>/dev/null | tail -n 50`);
  }
  parts.push(`printf '\\n%s\\n' ${mark}`);
  if (q.facts.oomSource) {
    // Both print the kernel's "[seconds since boot]" stamp.
    const read = q.facts.oomSource === "dmesg" ? `${q.facts.sudo}dmesg` : `${q.facts.sudo}journalctl -k -q --no-pager -o short-monotonic`;
    parts.push(`${read} 2>/dev/null | grep -E ${shq(PICOSHARE_OOM_LINES)}`);
  }
  parts.push(`printf '\\n%s\\n' ${mark}`);
  if (q.pid && !q.exited) {
    parts.push(`grep '^VmHWM:' /proc/${q.pid}/status 2>/dev/null`, ALIVE_FN, `alive ${q.pid} && echo running=1`);
  }
  const r = await ssh.exec(`${parts.join("; ")}; true`, { timeoutMs: 30_000 });
  const [logText, oomText, hwmText] = r.stdout.split(`\n${mark}\n`);
  if (r.code !== 0 || hwmText === undefined) return null;
  writeFileSync(q.hostLog, logText, { mode: 0o600 });
  return { oomPids: oomKilledPids(oomText, q.startUptime), vmHwm: vmHwmBytes(hwmText), running: /^running=1$/m.test(hwmText) };
}

/** Snapshots one at a time, in order; one taken less than 300 ms ago is reused unless a fresh one is asked for. */
export class Snapshots {
  private chain: Promise<Snapshot | null> = Promise.resolve(null);
  private last: { at: number; value: Promise<Snapshot | null> } | null = null;

  /** `take` runs when the snapshot before it has ended, so that it reads the state of then. */
  constructor(private readonly take: () => Promise<Snapshot | null>) {}

  get(fresh = false): Promise<Snapshot | null> {
    if (!fresh && this.last && performance.now() - this.last.at < 300) return this.last.value;
    const run = () => this.take();
    const value = this.chain.then(run, run);
    this.chain = value.catch(() => null);
    this.last = { at: performance.now(), value };
    return value;
  }

  /** For a restarted PicoShare: the next get() reads afresh. */
  forget(): void {
    this.last = null;
  }
}
