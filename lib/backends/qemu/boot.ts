// Booting one test's VM: a fresh overlay and ports, qemu started, then a wait
// for its sshd's banner (retried with fresh ones for a boot that timed out; a
// guest that panics or OOM-kills while booting is the result, not retried),
// then the one shared ssh connection opened.
import { rmSync } from "node:fs";
import type { EnvironmentSpec, TestEnvironment } from "../types.ts";
import { errorMessage } from "../../core/errors.ts";
import type { Started } from "../../core/exec.ts";
import { readText } from "../../core/files.ts";
import { log, warn } from "../../core/log.ts";
import { LOOPBACK, freePort } from "../../core/net.ts";
import { round } from "../../upload/phases/common.ts";
import { oomKills as consoleOomKills } from "../../vm/guest.ts";
import type { VmImage } from "../../vm/image/index.ts";
import {
  bootFailureInConsole, createOverlay, fileTail, imageSshTarget, sshBanner, startQemu, stopQemu,
  type AccelChoice, type VmFiles,
} from "../../vm/qemu.ts";
import { SshConnection } from "../../vm/ssh.ts";
import { BOOT_ATTEMPTS, GUEST_MIN_TTL_MS, bootTimeoutMs } from "./settings.ts";

/** What the boot gives the environment, set as it goes: a teardown during the boot finds what to stop. */
export interface VmHandles {
  qemu: Started | null;
  ssh: SshConnection | null;
  sshPort: number;
  httpPort: number;
}

export interface BootSpec {
  spec: EnvironmentSpec;
  image: VmImage;
  accel: AccelChoice;
  dir: string;
  files: VmFiles;
  /** boot_attempts, boot_seconds and ssh_connect_seconds are recorded here. */
  settings: TestEnvironment["settings"];
}

/**
 * Boots the VM into `vm`. Returns null when it is up with its ssh connection,
 * else why it is not (a result of the test, reported when PicoShare would
 * start); throws when interrupted.
 */
export async function bootVm(b: BootSpec, vm: VmHandles): Promise<string | null> {
  const timeoutMs = bootTimeoutMs(b.accel.accel);
  for (let attempt = 1; attempt <= BOOT_ATTEMPTS; attempt++) {
    b.settings.boot_attempts = attempt;
    rmSync(b.files.overlay, { force: true });
    rmSync(b.files.console, { force: true });
    await createOverlay(b.image, b.files.overlay);
    vm.sshPort = await freePort();
    do vm.httpPort = await freePort();
    while (vm.httpPort === vm.sshPort);
    const t0 = performance.now();
    vm.qemu = startQemu(
      {
        image: b.image, ramMiB: b.spec.ramMiB, accel: b.accel.accel, dir: b.dir,
        sshPort: vm.sshPort, httpPort: vm.httpPort,
        extraCmdline: GUEST_MIN_TTL_MS ? `picoshare_perf.min_ttl_ms=${GUEST_MIN_TTL_MS}` : undefined,
      },
      b.files,
    );
    log(`qemu: booting the VM (pid ${vm.qemu.pid}, ${b.spec.ramMiB} MiB, 1 vCPU, ${b.accel.accel}; ssh on ${LOOPBACK}:${vm.sshPort})`);
    const outcome = await waitForSshd(b, vm.qemu, vm.sshPort, timeoutMs);
    if (outcome === "up") {
      b.settings.boot_seconds = round((performance.now() - t0) / 1000);
      log(`qemu: the VM's sshd answers after ${b.settings.boot_seconds} s`);
      break;
    }
    const consoleText = readText(b.files.console);
    const qemuText = fileTail(b.files.qemuLog, 3);
    const panic = bootFailureInConsole(consoleText);
    await stopQemu(vm.qemu);
    vm.qemu = null;
    if (outcome === "aborted") throw b.spec.signal.reason ?? new Error("interrupted");
    const why =
      outcome === "timeout"
        ? `its sshd did not answer within ${timeoutMs / 1000} s (console: ${fileTail(b.files.console, 3) || "empty"})`
        : `qemu stopped during the boot (${panic ?? (qemuText || fileTail(b.files.console, 3) || "no message")})`;
    // A guest that panics (e.g. too little RAM to boot) will do it again: that is the result.
    const retryable = !panic && consoleOomKills(consoleText).length === 0 && attempt < BOOT_ATTEMPTS;
    if (!retryable) {
      const bootError = `the VM did not boot: ${why}`;
      warn(bootError);
      return bootError;
    }
    warn(`qemu: attempt ${attempt} to boot the VM failed: ${why}; retrying with a fresh overlay and ports`);
  }
  // One shared ssh connection for everything that follows.
  const t1 = performance.now();
  vm.ssh = SshConnection.create(imageSshTarget(b.image, vm.sshPort));
  try {
    await vm.ssh.open({ signal: b.spec.signal, retries: 5, minDelay: 250 });
  } catch (err) {
    if (b.spec.signal.aborted) throw err;
    // sshd answered but no session could be had (e.g. the guest ran out of memory).
    const bootError = `the VM booted but ssh could not log in: ${errorMessage(err)}`;
    warn(bootError);
    return bootError;
  }
  b.settings.ssh_connect_seconds = round((performance.now() - t1) / 1000);
  return null;
}

/** Polls the forwarded ssh port for sshd's banner; qemu ending or the signal stop the wait. */
async function waitForSshd(b: BootSpec, q: Started, sshPort: number, timeoutMs: number): Promise<"up" | "exited" | "timeout" | "aborted"> {
  const end = performance.now() + timeoutMs;
  let lastConsoleCheck = 0;
  while (performance.now() < end) {
    if (b.spec.signal.aborted) return "aborted";
    if (!q.running()) return "exited";
    if (await sshBanner(sshPort, 1000)) return "up";
    if (performance.now() - lastConsoleCheck > 1000) {
      lastConsoleCheck = performance.now();
      if (bootFailureInConsole(readText(b.files.console))) {
        // panic=-1 and -no-reboot end qemu in a moment; let it.
        await Promise.race([q.exited, Bun.sleep(3000)]);
      }
    }
    await Bun.sleep(100);
  }
  return "timeout";
}
