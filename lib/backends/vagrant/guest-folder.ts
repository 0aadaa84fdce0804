// The VM's private folder in the guest (one per VM, under
// PERF_VAGRANT_GUEST_DIR): made and described once, PicoShare's binary copied
// into it once per VM, wiped between the tests of a reused VM, removed with
// the VM.
import type { EnvironmentSpec, TestEnvironment } from "../types.ts";
import { localDiskNeeded } from "../local.ts";
import { shq } from "../../core/exec.ts";
import { log, warn } from "../../core/log.ts";
import { formatBytes } from "../../core/sizes.ts";
import { parseSshConfig, SshConnection } from "../../vm/ssh.ts";
import { stopScript, type StartMethod } from "./guest-scripts.ts";

/** What the guest said about itself, for starting and watching PicoShare. */
export interface GuestFacts {
  uid: number;
  gid: number;
  /** "" as root, else "sudo -n ". */
  sudo: string;
  method: StartMethod;
  /** Where the OOM killer's lines can be read; null: nowhere. */
  oomSource: "dmesg" | "journalctl" | null;
}

export interface GuestFolder {
  ssh: SshConnection;
  dir: string;
  vmId: string;
  /** A VM kept from an earlier test: its folder is wiped first. */
  reused: boolean;
  spec: EnvironmentSpec;
  settings: TestEnvironment["settings"];
}

/** The guest's private folder, facts, the binary (once per VM) and a clean data dir. */
export async function prepareGuest(g: GuestFolder): Promise<GuestFacts> {
  const { ssh, spec, settings } = g;
  const signal = spec.signal;
  const d = shq(g.dir);
  const out = await ssh.run(
    [
      `umask 077; mkdir -p ${d}/bin ${d}/data ${d}/tmp && chmod 700 ${d}`,
      `[ -s ${d}/vm-id ] || echo ${shq(g.vmId)} > ${d}/vm-id`,
      'echo "uid=$(id -u)"; echo "gid=$(id -g)"',
      'if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then echo systemd=yes; else echo systemd=no; fi',
      'if command -v setsid >/dev/null 2>&1; then echo setsid=yes; else echo setsid=no; fi',
      'echo "kernel=$(uname -r)"',
      // Shell arithmetic: awk would print big numbers rounded (%.6g).
      "echo \"memtotal=$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) * 1024 ))\"",
      `echo "free=$(( $(df -Pk ${d} | awk 'NR == 2 { print $4 }') * 1024 ))"`,
      `echo "binary=$(sha256sum ${d}/bin/picoshare 2>/dev/null | cut -d ' ' -f 1)"`,
      // Where the OOM killer's lines can be read (root only on Ubuntu: kernel.dmesg_restrict).
      'S=; [ "$(id -u)" = 0 ] || S="sudo -n"',
      "if $S dmesg >/dev/null 2>&1; then echo oom=dmesg; elif $S journalctl -k -q -n 1 --no-pager >/dev/null 2>&1; then echo oom=journalctl; else echo oom=none; fi",
    ].join("\n"),
    { what: "prepare the guest folder", idempotent: true, timeoutMs: 60_000, signal },
  );
  const facts = Object.fromEntries(out.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1).trim()]));
  const uid = Number(facts.uid);
  const gid = Number(facts.gid);
  let method: StartMethod;
  if (facts.systemd === "yes") {
    method = "systemd-run";
  } else if (facts.setsid === "yes") {
    method = "setsid";
  } else {
    throw new Error("the VM has neither systemd (systemd-run) nor setsid: PicoShare cannot be started detached there");
  }
  settings.guest_dir = g.dir;
  settings.vm_id = g.vmId;
  settings.guest_kernel = facts.kernel || null;
  settings.guest_mem_total_bytes = Number(facts.memtotal) || null;
  settings.start_method = method;

  // A reused VM: nothing of the last test stays (data, multipart temp files, log).
  if (g.reused) await wipeGuest(ssh, g.dir);

  const need = localDiskNeeded(spec.uploadBytes);
  const free = Number(facts.free);
  if (Number.isFinite(free) && free < need) {
    throw new Error(
      `not enough disk space in the VM for PicoShare's temp file and database: needs ${formatBytes(need)}, ` +
        `${formatBytes(free)} free in ${g.dir}; use a box with a bigger disk`,
    );
  }

  if (facts.binary === spec.picoshare.sha256) {
    log(`PicoShare binary already in the VM (sha256 ${facts.binary.slice(0, 12)})`);
  } else {
    const t0 = performance.now();
    await ssh.copy(spec.picoshare.path, `${g.dir}/bin/picoshare.partial`, { signal });
    const sum = await ssh.run(
      `cd ${d}/bin && chmod 755 picoshare.partial && mv -f picoshare.partial picoshare && sha256sum picoshare | cut -d ' ' -f 1`,
      { what: "install the binary", signal },
    );
    if (sum.trim() !== spec.picoshare.sha256) {
      throw new Error(`the PicoShare binary copied into the VM has sha256 ${sum.trim().slice(0, 12)}, expected ${spec.picoshare.sha256.slice(0, 12)}`);
    }
    log(`Copied PicoShare into the VM in ${((performance.now() - t0) / 1000).toFixed(2)} s (scp)`);
  }

  const oomSource = facts.oom === "dmesg" || facts.oom === "journalctl" ? facts.oom : null;
  settings.oom_source = oomSource ?? "unavailable";
  if (!oomSource) warn("the VM's kernel log cannot be read (dmesg, journalctl -k): OOM kills will not be detected");
  return { uid, gid, sudo: uid === 0 ? "" : "sudo -n ", method, oomSource };
}

/** Stops whatever PicoShare the folder records (see stopScript). */
export async function stopGuestProcesses(ssh: SshConnection, dir: string): Promise<void> {
  await ssh.exec(stopScript(dir), { timeoutMs: 30_000 });
}

/** Between the tests of a reused VM: PicoShare stopped, its data, temp files and log gone. */
export async function wipeGuest(ssh: SshConnection, dir: string): Promise<void> {
  await stopGuestProcesses(ssh, dir);
  await ssh.run(
    `cd ${shq(dir)} && rm -rf data tmp secret start.sh picoshare.log picoshare.pid wrapper.pid exit-status unit && mkdir -m 700 data tmp && sync`,
    { what: "wipe the data dir and temp files", idempotent: true, timeoutMs: 120_000 },
  );
}

/**
 * Best effort, before a destroy: stops PicoShare in a guest folder an earlier
 * run recorded and removes the folder, through a short-lived connection
 * (where the "VM" outlives `vagrant destroy`, as in the tests).
 */
export async function removeGuestDirVia(sshConfig: string, dir: string, signal?: AbortSignal): Promise<void> {
  let conn: SshConnection | null = null;
  try {
    conn = SshConnection.create(parseSshConfig(sshConfig));
    await conn.open({ retries: 0, signal });
    await stopGuestProcesses(conn, dir);
    await conn.run(`rm -rf ${shq(dir)}`, { timeoutMs: 60_000, what: "remove the old guest folder" });
  } catch {
    // the VM is gone or unreachable: destroying it is enough
  } finally {
    await conn?.close();
  }
}
