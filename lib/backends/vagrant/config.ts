// The vagrant backend's settings: what it reads from the environment, and the
// names of the files it keeps in the Vagrant folder.
import { join, resolve } from "node:path";
import { oneOf } from "../../core/cli.ts";
import { UsageError } from "../../core/errors.ts";
import { ROOT } from "../../core/paths.ts";

export const DEFAULT_BOX = "generic/ubuntu2204";
export const PROVIDERS = ["libvirt", "virtualbox"] as const;
export type Provider = (typeof PROVIDERS)[number];
/** libvirt's domain type: kvm, or qemu (TCG: the CPU emulated, for hosts without KVM). */
export const LIBVIRT_DRIVERS = ["kvm", "qemu"] as const;
export type LibvirtDriver = (typeof LIBVIRT_DRIVERS)[number];
export const MIN_VAGRANT_VERSION = [2, 2, 0] as const;
/** In the Vagrant folder's .vagrant/: the VM a run left up, the harness's lock, vagrant's output. */
export const STATE_FILE = "picoshare-perf-state.json";
export const LOCK_FILE = "picoshare-perf.lock";
/** Held by the process that runs a test (create to exit): a matrix holds LOCK_FILE, its run-test this one. */
export const TEST_LOCK_FILE = "picoshare-perf-test.lock";
export const VAGRANT_LOG_FILE = "picoshare-perf-vagrant.log";
/** Every guest folder is named so: one per VM, under PERF_VAGRANT_GUEST_DIR. */
export const GUEST_PREFIX = "picoshare-perf-vm-";
export const SKIP_HOST_CHECKS = "PERF_VAGRANT_SKIP_HOST_CHECKS";

export interface VagrantOptions {
  /** --reuse-vm: keep one VM up across tests with the same RAM (wiped between tests). */
  reuseVm?: boolean;
}

/** Everything the backend reads from the environment, in one place. */
export interface VagrantConfig {
  /** The folder holding the Vagrantfile and .vagrant/ (VAGRANT_CWD, default the project's folder). */
  folder: string;
  provider: Provider;
  box: string;
  /** The libvirt provider's domain type (VM_LIBVIRT_DRIVER, read by the Vagrantfile too). */
  libvirtDriver: LibvirtDriver;
  /** Folder in the guest under which the VM's private folder goes. */
  guestBase: string;
  /** Bound on waiting for the harness's and Vagrant's locks, ms. */
  lockWaitMs: number;
  /** Bound on one `vagrant up`, ms. */
  upTimeoutMs: number;
  /** Tests only: skip the checks of this host's virtualisation (KVM, VirtualBox). */
  skipHostChecks: boolean;
}

function seconds(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === "") return fallback * 1000;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${name} must be a number of seconds, got "${text}"`);
  return n * 1000;
}

export function vagrantConfig(env: NodeJS.ProcessEnv = process.env): VagrantConfig {
  const provider = oneOf("VAGRANT_DEFAULT_PROVIDER", env.VAGRANT_DEFAULT_PROVIDER || "libvirt", PROVIDERS, " for the vagrant backend");
  const driver = oneOf("VM_LIBVIRT_DRIVER", env.VM_LIBVIRT_DRIVER || "kvm", LIBVIRT_DRIVERS);
  const guestBase = env.PERF_VAGRANT_GUEST_DIR || "/var/tmp";
  if (!guestBase.startsWith("/") || /[^\w./-]/.test(guestBase)) {
    throw new UsageError(`PERF_VAGRANT_GUEST_DIR must be an absolute path of letters, digits, . _ - and /, got "${guestBase}"`);
  }
  return {
    folder: resolve(env.VAGRANT_CWD || ROOT),
    provider,
    box: env.VM_BOX || DEFAULT_BOX,
    libvirtDriver: driver,
    guestBase: guestBase.replace(/\/+$/, "") || "/",
    lockWaitMs: seconds(env, "PERF_VAGRANT_LOCK_WAIT", 60),
    upTimeoutMs: seconds(env, "PERF_VAGRANT_UP_TIMEOUT", 900),
    skipHostChecks: env[SKIP_HOST_CHECKS] === "1",
  };
}

/** The Vagrant folder's .vagrant/, where the harness keeps its files next to Vagrant's. */
export function dotVagrant(folder: string): string {
  return join(folder, ".vagrant");
}

/** A harness file in .vagrant/ (STATE_FILE, LOCK_FILE, ...). */
export function harnessFile(folder: string, name: string): string {
  return join(dotVagrant(folder), name);
}

/** Whether a recorded guest folder is one the harness made (and so may remove). */
export function isHarnessGuestDir(cfg: VagrantConfig, dir: string): boolean {
  return dir.startsWith(`${cfg.guestBase}/${GUEST_PREFIX}`);
}
