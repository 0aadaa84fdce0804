// A throwaway OpenSSH server for the tests: Debian's /usr/sbin/sshd run as
// root on a free 127.0.0.1 port, with a host key and a user key made here by
// ssh-keygen and an authorized_keys file in the same temp folder. It stands
// in for the VM that `vagrant up` would make: the VM is this host, reached
// as root through real ssh. Stopped by pid, with the per-connection sshd
// processes it forked (they run in sessions of their own).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LOOPBACK, canConnect, freePort } from "../../lib/core/net.ts";
import { start } from "../../lib/core/exec.ts";
import { $ } from "../../lib/core/shell.ts";
import { processRuns } from "../../lib/core/proc.ts";

export const SSHD = "/usr/sbin/sshd";
export const SFTP_SERVER = "/usr/lib/openssh/sftp-server";

export interface TestSshd {
  port: number;
  /** The private key a client logs in with (as root). */
  keyPath: string;
  dir: string;
  pid: number;
  /** sshd's own log (-e). */
  logPath: string;
  stop(): Promise<void>;
}

function keygen(path: string, comment: string): void {
  const r = $({ nothrow: true }).sync`ssh-keygen -q -t ed25519 -N ${""} -C ${comment} -f ${path}`;
  if (r.exitCode !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
}

/** Pids of the descendants of `pid`, from /proc (the sshd children that serve connections). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** True while `pid` runs (a zombie counts as ended: nobody here reaps orphans). */
export const running = (pid: number): boolean => processRuns(pid);

export async function startSshd(): Promise<TestSshd> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: apt-get install -y openssh-server`);
  const dir = mkdtempSync(join(tmpdir(), "perf-sshd-"));
  chmodSync(dir, 0o700);
  const hostKey = join(dir, "host_ed25519");
  const keyPath = join(dir, "user_ed25519");
  keygen(hostKey, "perf-test host key");
  keygen(keyPath, "perf-test user key");
  const authorized = join(dir, "authorized_keys");
  writeFileSync(authorized, readFileSync(`${keyPath}.pub`), { mode: 0o600 });
  // sshd refuses to start without its privilege-separation folder; a new
  // machine (sshd never started) lacks it, and gets it removed again at stop.
  const madeRunSshd = !existsSync("/run/sshd");
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const port = await freePort();
  const config = join(dir, "sshd_config");
  writeFileSync(
    config,
    [
      `ListenAddress ${LOOPBACK}`,
      `Port ${port}`,
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${authorized}`,
      "PermitRootLogin prohibit-password",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      // The temp folder is under /tmp (world-writable): StrictModes would refuse the key.
      "StrictModes no",
      "AllowTcpForwarding yes",
      `Subsystem sftp ${SFTP_SERVER}`,
      "LogLevel VERBOSE",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const logPath = join(dir, "sshd.log");
  const child = start([SSHD, "-D", "-e", "-f", config], { stdout: { file: logPath } });
  const pid = child.pid;
  const gone = child.exited;

  let stopped = false;
  const stop = async () => {
    // Once: a second call must not signal whatever has the pids by then.
    if (stopped) return;
    stopped = true;
    // The connection handlers first (each in a session of its own), then the listener.
    for (const p of descendants(pid)) {
      try {
        process.kill(p, "SIGKILL");
      } catch {}
    }
    if (child.running()) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {}
      await Promise.race([gone, Bun.sleep(3000)]);
      if (child.running()) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
        await gone;
      }
    }
    rmSync(dir, { recursive: true, force: true });
    if (madeRunSshd) rmSync("/run/sshd", { recursive: true, force: true });
  };

  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (!child.running() || Date.now() > deadline) {
      const log = existsSync(logPath) ? readFileSync(logPath, "utf8") : "";
      await stop();
      throw new Error(`sshd did not start on ${LOOPBACK}:${port}: ${log.trim()}`);
    }
    await Bun.sleep(20);
  }
  return { port, keyPath, dir, pid, logPath, stop };
}
