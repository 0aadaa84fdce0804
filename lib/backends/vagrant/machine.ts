// The VM of one test: reused when an earlier --reuse-vm run kept a matching
// one, else brought up fresh (`vagrant up`, after destroying whatever VM the
// folder holds); `vagrant ssh-config` is read once and kept in the state file,
// and everything after that goes through one shared plain-ssh connection.
import { randomBytes } from "node:crypto";
import type { EnvironmentSpec, TestEnvironment } from "../types.ts";
import { errorMessage } from "../../core/errors.ts";
import { shq } from "../../core/exec.ts";
import { log, warn } from "../../core/log.ts";
import { retry, StopRetrying } from "../../core/retry.ts";
import { parseSshConfig, SshConnection } from "../../vm/ssh.ts";
import { VagrantCli, VagrantLockedError, parseMachineState } from "./cli.ts";
import { GUEST_PREFIX, VAGRANT_LOG_FILE, harnessFile, isHarnessGuestDir, type VagrantConfig } from "./config.ts";
import { removeGuestDirVia } from "./guest-folder.ts";
import { readVmState, removeVmState, writeVmState, type VmState } from "./state.ts";

export class VagrantMachine {
  readonly cli: VagrantCli;
  ssh: SshConnection | null = null;
  /** The output of `vagrant ssh-config`; null until the VM is up. */
  sshConfigText: string | null = null;
  vmId = "";
  /** The VM's private folder in the guest. */
  guestDir = "";
  /** Kept from an earlier --reuse-vm run. */
  reused = false;

  constructor(
    private readonly spec: EnvironmentSpec,
    readonly cfg: VagrantConfig,
    private readonly reuseVm: boolean,
    private readonly settings: TestEnvironment["settings"],
  ) {
    this.cli = new VagrantCli(
      cfg.folder,
      { VM_MEMORY: String(spec.ramMiB), VM_BOX: cfg.box, VM_LIBVIRT_DRIVER: cfg.libvirtDriver },
      harnessFile(cfg.folder, VAGRANT_LOG_FILE),
    );
  }

  private get signal(): AbortSignal {
    return this.spec.signal;
  }

  /** A guest file of the VM's folder, quoted for the guest's shell. */
  q(name: string): string {
    return shq(`${this.guestDir}/${name}`);
  }

  remote(): SshConnection {
    if (!this.ssh) throw new Error("no ssh connection to the VM");
    return this.ssh;
  }

  /** A VM, up and connected: the kept one when it fits, else a fresh one. */
  async bringUp(): Promise<void> {
    const state = readVmState(this.cfg.folder);
    if (state) await this.tryReuse(state);
    if (!this.reused) await this.bootFresh(state !== null);
  }

  private async tryReuse(state: VmState): Promise<void> {
    const same = state.ram_mb === this.spec.ramMiB && state.provider === this.cfg.provider && state.box === this.cfg.box;
    if (this.reuseVm && same && state.mode === "reuse" && state.ssh_config) {
      try {
        this.vmId = state.vm_id;
        this.guestDir = state.guest_dir;
        await this.connect(state.ssh_config, { retries: 1 });
        const id = (await this.remote().exec(`cat ${this.q("vm-id")} 2>/dev/null`, { timeoutMs: 15_000, signal: this.signal })).stdout.trim();
        if (id !== state.vm_id) throw new Error(`its folder ${state.guest_dir} is not there (found id "${id}")`);
        this.reused = true;
        this.settings.vm_reused = true;
        log(`Reusing the VM kept by an earlier --reuse-vm run (id ${state.vm_id}, ${state.ram_mb} MiB, up since ${state.created})`);
        return;
      } catch (err) {
        if (this.signal.aborted) throw err;
        log(`The VM kept by an earlier run does not answer (${errorMessage(err)}): destroying it and making a new one`);
        await this.closeSsh();
      }
    } else {
      const why =
        state.mode === "creating" || state.mode === "in_use"
          ? `an earlier run (${state.mode === "creating" ? "making it" : "using it"}) stopped without cleaning up`
          : !this.reuseVm
            ? `kept by an earlier ${state.mode === "keep" ? "--keep-vm" : "--reuse-vm"} run; this test wants a fresh VM`
            : !same
              ? `it has ${state.ram_mb} MiB (${state.provider}, ${state.box}); this test needs ${this.spec.ramMiB} MiB (${this.cfg.provider}, ${this.cfg.box})`
              : `kept by an earlier --keep-vm run`;
      log(`Destroying the VM left in ${this.cfg.folder} (${why})`);
      // Its guest folder too, where the "VM" outlives `vagrant destroy` (tests).
      if (state.ssh_config && isHarnessGuestDir(this.cfg, state.guest_dir)) {
        await removeGuestDirVia(state.ssh_config, state.guest_dir, this.signal);
      }
    }
    // `vagrant up` on a machine that is still there would bring back the old one.
    if (!(await this.destroyVm())) throw new Error(`could not destroy the VM left in ${this.cfg.folder} (see the warning above)`);
    removeVmState(this.cfg.folder);
  }

  private async bootFresh(stateWasThere: boolean): Promise<void> {
    if (!stateWasThere) {
      const st = await this.cli.run(["status", "--machine-readable"], { timeoutMs: 120_000, signal: this.signal });
      const machine = parseMachineState(st.stdout);
      if (machine && machine !== "not_created") {
        log(`The Vagrant folder ${this.cfg.folder} already has a VM (${machine}) that no run recorded: destroying it first`);
        if (!(await this.destroyVm())) throw new Error(`could not destroy the VM already in ${this.cfg.folder} (see the warning above)`);
      }
    }
    this.vmId = randomBytes(6).toString("hex");
    this.guestDir = `${this.cfg.guestBase}/${GUEST_PREFIX}${this.vmId}`;
    this.saveState("creating");
    const t0 = performance.now();
    log(`Starting a VM: vagrant up --provider ${this.cfg.provider} (${this.spec.ramMiB} MiB, 1 CPU, box ${this.cfg.box})`);
    await retry(
      "vagrant up",
      async (attempt) => {
        if (attempt > 1) await this.destroyVm();
        try {
          await this.cli.check(["up", "--provider", this.cfg.provider], {
            timeoutMs: this.cfg.upTimeoutMs,
            signal: this.signal,
            lockWaitMs: this.cfg.lockWaitMs,
          });
        } catch (err) {
          if (err instanceof VagrantLockedError || this.signal.aborted) throw new StopRetrying(err as Error);
          throw err;
        }
      },
      { retries: 2, minDelay: 5000, maxDelay: 20_000, signal: this.signal },
    );
    // Read once; every later command goes through plain ssh.
    const sc = await this.cli.check(["ssh-config"], { timeoutMs: 120_000, signal: this.signal, lockWaitMs: this.cfg.lockWaitMs });
    await this.connect(sc.stdout, { retries: 6 });
    this.settings.vm_boot_seconds = Math.round((performance.now() - t0) / 10) / 100;
    log(`VM up in ${this.settings.vm_boot_seconds} s; ssh ${this.remote().description}`);
  }

  async connect(sshConfig: string, opts: { retries: number; signal?: AbortSignal }): Promise<void> {
    const target = parseSshConfig(sshConfig);
    this.sshConfigText = sshConfig;
    this.ssh = SshConnection.create(target);
    await this.ssh.open({ signal: opts.signal ?? this.signal, retries: opts.retries });
    this.settings.ssh_target = this.ssh.description;
  }

  async closeSsh(): Promise<void> {
    const s = this.ssh;
    this.ssh = null;
    await s?.close();
  }

  saveState(mode: VmState["mode"]): void {
    const now = new Date().toISOString();
    const old = readVmState(this.cfg.folder);
    writeVmState(this.cfg.folder, {
      version: 1,
      vm_id: this.vmId,
      ram_mb: this.spec.ramMiB,
      provider: this.cfg.provider,
      box: this.cfg.box,
      guest_dir: this.guestDir,
      mode,
      ssh_config: this.sshConfigText,
      created: old?.vm_id === this.vmId ? old.created : now,
      updated: now,
    });
  }

  /** `vagrant destroy -f`, retried; a failure is reported, not thrown (teardown goes on). */
  async destroyVm(): Promise<boolean> {
    await this.cli.idle();
    try {
      await retry(
        "vagrant destroy",
        async () => {
          try {
            await this.cli.check(["destroy", "-f"], { timeoutMs: 300_000, lockWaitMs: this.cfg.lockWaitMs });
          } catch (err) {
            if (err instanceof VagrantLockedError) throw new StopRetrying(err);
            throw err;
          }
        },
        { retries: 2, minDelay: 2000 },
      );
      return true;
    } catch (err) {
      warn(`the VM was not destroyed: ${errorMessage(err)}; destroy it by hand: cd ${this.cfg.folder} && vagrant destroy -f`);
      return false;
    }
  }
}
