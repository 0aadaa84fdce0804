// The vagrant backend: PicoShare in a Vagrant VM with VM_MEMORY MiB of RAM
// and one CPU (the Vagrantfile at the project's top). After `vagrant up`,
// `vagrant ssh-config` is read once and everything else goes over one shared
// plain-ssh connection (lib/vm/ssh.ts): the binary is copied once per VM,
// PicoShare is started detached (systemd-run, else setsid), the upload goes
// through a forwarded port, and memory is read by one long-lived stream.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Backend, EnvironmentSpec, TestEnvironment } from "../types.ts";
import { interrupted, onCleanup } from "../../core/cleanup.ts";
import { UsageError } from "../../core/errors.ts";
import { log } from "../../core/log.ts";
import { LockHeldError, type Lock } from "../../core/lock.ts";
import { VagrantCli } from "./cli.ts";
import { VAGRANT_LOG_FILE, harnessFile, isHarnessGuestDir, vagrantConfig, type VagrantConfig, type VagrantOptions } from "./config.ts";
import { VagrantEnvironment } from "./environment.ts";
import { lockFolder, lockForTest } from "./locks.ts";
import { checkPrerequisites } from "./prerequisites.ts";
import { removeGuestDirVia } from "./guest-folder.ts";
import { readVmState, removeVmState } from "./state.ts";

export type { VagrantOptions } from "./config.ts";

class VagrantBackend implements Backend {
  readonly name = "vagrant" as const;
  private lock: Lock | null = null;
  private testLock: Lock | null = null;
  private summary: string | null = null;

  constructor(private readonly opts: VagrantOptions) {}

  async endRun(): Promise<void> {
    if (this.opts.reuseVm && (await destroyKeptVm())) log("Destroyed the VM kept by --reuse-vm");
  }

  async preflight(_spec: EnvironmentSpec): Promise<void> {
    const cfg = vagrantConfig();
    const cli = new VagrantCli(cfg.folder, {}, null);
    this.summary ??= await checkPrerequisites(cfg, cli);
    if (!existsSync(join(cfg.folder, "Vagrantfile"))) {
      throw new UsageError(`no Vagrantfile in ${cfg.folder}: run from the project's folder or point VAGRANT_CWD at the folder holding it`);
    }
    await this.takeLock(cfg, false);
    log(`Vagrant: ${this.summary}; folder ${cfg.folder}${this.opts.reuseVm ? "; --reuse-vm" : ""}`);
  }

  /**
   * The harness's own locks on the Vagrant folder (see locks.ts), held until
   * this process ends: the folder lock from the preflight on, the test lock
   * from the making of a VM on.
   */
  private async takeLock(cfg: VagrantConfig, forTest: boolean): Promise<void> {
    try {
      if (!this.lock) {
        const lock = await lockFolder(cfg);
        this.lock = lock;
        onCleanup("release the Vagrant folder's lock", () => lock.release());
      }
      if (forTest && !this.testLock) {
        const lock = await lockForTest(cfg);
        this.testLock = lock;
        onCleanup("release the Vagrant folder's test lock", () => lock.release());
      }
    } catch (err) {
      if (err instanceof LockHeldError) throw new UsageError(err.message);
      throw err;
    }
  }

  async create(spec: EnvironmentSpec): Promise<TestEnvironment> {
    const cfg = vagrantConfig();
    await this.takeLock(cfg, true);
    const env = new VagrantEnvironment(spec, cfg, Boolean(this.opts.reuseVm));
    // Until the environment is handed over, an interrupt destroys what is being made.
    const forget = onCleanup("destroy the VM being made", () => env.teardown());
    try {
      await env.prepare();
    } catch (err) {
      forget();
      if (!interrupted()) await env.teardown();
      throw err;
    }
    forget();
    env.registerExitCleanup();
    return env;
  }
}

export function vagrantBackend(opts: VagrantOptions = {}): Backend {
  return new VagrantBackend(opts);
}

/**
 * Destroys the VM a --reuse-vm (or --keep-vm) run left in the Vagrant folder,
 * e.g. after a matrix's last cell. Resolves false when there was none.
 */
export async function destroyKeptVm(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const cfg = vagrantConfig(env);
  const state = readVmState(cfg.folder);
  if (!state) return false;
  const lock = await lockFolder(cfg);
  let testLock: Lock | null = null;
  try {
    testLock = await lockForTest(cfg);
    // Unreachable is fine: the destroy below is what matters.
    if (state.ssh_config && isHarnessGuestDir(cfg, state.guest_dir)) await removeGuestDirVia(state.ssh_config, state.guest_dir);
    const cli = new VagrantCli(cfg.folder, {}, harnessFile(cfg.folder, VAGRANT_LOG_FILE));
    await cli.check(["destroy", "-f"], { timeoutMs: 300_000, lockWaitMs: cfg.lockWaitMs });
    removeVmState(cfg.folder);
    return true;
  } finally {
    testLock?.release();
    lock.release();
  }
}
