// The end of one test in its VM: PicoShare stopped and its log copied, the
// port forward cancelled, then the VM made ready for the next --reuse-vm test
// (guest folder wiped) or destroyed with its folder. Problems on the way are
// warned about, never thrown: the teardown goes on.
import type { ExitInfo } from "../types.ts";
import { errorMessage } from "../../core/errors.ts";
import { shq } from "../../core/exec.ts";
import { log, warn } from "../../core/log.ts";
import type { ExitWatcher } from "./exit-watch.ts";
import { stopGuestProcesses, wipeGuest } from "./guest-folder.ts";
import type { VagrantMachine } from "./machine.ts";
import { removeVmState, statePath } from "./state.ts";

export interface Ending {
  vm: VagrantMachine;
  /** The Vagrant folder (its state file). */
  folder: string;
  ramMiB: number;
  /** Keep the VM for the next --reuse-vm test, if its guest folder can be wiped. */
  keepForReuse: boolean;
  /** The environment was made ready: problems in the cleanup are worth a warning. */
  ready: boolean;
  /** The port forward to cancel, if one was made. */
  forward(): { host: number; guest: number } | null;
  watcher: ExitWatcher;
  /** PicoShare's exit is known. */
  exitKnown(): boolean;
  exited(): Promise<ExitInfo>;
  /** Copies PicoShare's log to the host (a snapshot). */
  copyLog(): Promise<unknown>;
}

export async function endInVm(e: Ending): Promise<void> {
  const { vm } = e;
  const problems: string[] = [];
  let reachable = false;
  if (vm.sshConfigText) {
    try {
      // Not with the interrupt signal: cleaning up after Ctrl-C is the point.
      if (!vm.ssh) await vm.connect(vm.sshConfigText, { retries: 1, signal: AbortSignal.timeout(60_000) });
      else await vm.ssh.ensureOpen();
      reachable = true;
    } catch (err) {
      problems.push(`ssh: ${errorMessage(err)}`);
    }
  }
  if (reachable && vm.guestDir) {
    const ssh = vm.remote();
    try {
      await stopGuestProcesses(ssh, vm.guestDir);
      if (e.watcher.started && !e.exitKnown()) await Promise.race([e.exited(), new Promise((r) => setTimeout(r, 3000))]);
      await e.watcher.stop();
      // markExited copied the log when PicoShare ended; else copy it now.
      if (!e.exitKnown()) await e.copyLog().catch(() => {});
      const forward = e.forward();
      if (forward) await ssh.cancelForward(forward.host, forward.guest).catch(() => {});
      if (e.keepForReuse) {
        await wipeGuest(ssh, vm.guestDir);
      } else {
        await ssh.run(`rm -rf ${shq(vm.guestDir)}`, { what: "remove the guest folder", timeoutMs: 120_000 });
      }
    } catch (err) {
      problems.push(errorMessage(err));
    }
  }
  await e.watcher.stop().catch(() => {});
  await vm.closeSsh().catch(() => {});
  if (e.keepForReuse && problems.length === 0) {
    vm.saveState("reuse");
    log(`VM kept for the next --reuse-vm test with ${e.ramMiB} MiB (state: ${statePath(e.folder)})`);
  } else {
    if (e.keepForReuse) warn(`the VM could not be made ready for reuse (${problems.join("; ")}): destroying it`);
    else if (problems.length > 0 && e.ready) warn(`cleaning the VM up: ${problems.join("; ")}`);
    if (vm.vmId) {
      if (await vm.destroyVm()) removeVmState(e.folder);
    }
  }
}
