// What the vagrant backend needs on this host, checked once per process:
// Vagrant (new enough), the provider and its plugin, the host's
// virtualisation, and the OpenSSH client.
import { accessSync, constants as fsConstants, existsSync } from "node:fs";
import { $ } from "../../core/shell.ts";
import { UsageError } from "../../core/errors.ts";
import { lastLines, parseVagrantVersion, versionAtLeast, type VagrantCli } from "./cli.ts";
import { MIN_VAGRANT_VERSION, SKIP_HOST_CHECKS, type VagrantConfig } from "./config.ts";

let checkedVersion = "";

/** The Vagrant version the prerequisites found ("" before they ran). */
export function checkedVagrantVersion(): string {
  return checkedVersion;
}

const which = (cmd: string): string | null => Bun.which(cmd);

/** The prerequisites, each failing with one line (exit 2); returns a one-line summary. */
export async function checkPrerequisites(cfg: VagrantConfig, cli: VagrantCli): Promise<string> {
  const vagrant = which("vagrant");
  if (!vagrant) {
    throw new UsageError(
      "vagrant is not on PATH: install Vagrant 2.2 or newer (https://developer.hashicorp.com/vagrant/install), or use --backend local",
    );
  }
  const v = await cli.run(["--version"], { timeoutMs: 60_000 });
  const version = parseVagrantVersion(v.stdout + v.stderr);
  if (v.code !== 0 || !version) {
    throw new UsageError(`\`vagrant --version\` did not say its version (${lastLines(v.stderr || v.stdout) || `exit ${v.code}`}): check the Vagrant install at ${vagrant}`);
  }
  const vtext = version.join(".");
  if (!versionAtLeast(version, MIN_VAGRANT_VERSION)) {
    throw new UsageError(`vagrant ${vtext} (${vagrant}) is too old: the vagrant backend needs Vagrant ${MIN_VAGRANT_VERSION.slice(0, 2).join(".")} or newer`);
  }
  let providerText: string = cfg.provider;
  if (cfg.provider === "libvirt") {
    const p = await cli.run(["plugin", "list"], { timeoutMs: 120_000 });
    const m = /^\s*vagrant-libvirt\s*\(([^,)]+)/m.exec(p.stdout);
    if (p.code !== 0 || !m) {
      throw new UsageError(
        "the libvirt provider's plugin is missing (`vagrant plugin list` shows no vagrant-libvirt): " +
          "install it (vagrant plugin install vagrant-libvirt, or apt-get install vagrant-libvirt), or set VAGRANT_DEFAULT_PROVIDER=virtualbox",
      );
    }
    providerText = `libvirt (vagrant-libvirt ${m[1].trim()})`;
  }
  let hostText = "";
  if (cfg.skipHostChecks) {
    hostText = `host virtualisation not checked (${SKIP_HOST_CHECKS}=1)`;
  } else if (cfg.provider === "libvirt" && cfg.libvirtDriver === "qemu") {
    hostText = "libvirt driver qemu (TCG: the CPU is emulated, KVM not needed)";
  } else if (cfg.provider === "libvirt") {
    const orTcg = "or set VM_LIBVIRT_DRIVER=qemu (an emulated CPU: slow), or use --backend local";
    if (!existsSync("/dev/kvm")) {
      throw new UsageError(`KVM is not available (/dev/kvm is missing): the libvirt provider's kvm driver needs hardware virtualisation; enable it (kvm modules, nested virtualisation), ${orTcg}`);
    }
    try {
      accessSync("/dev/kvm", fsConstants.R_OK | fsConstants.W_OK);
    } catch {
      throw new UsageError(`KVM is not usable: /dev/kvm cannot be opened read-write by this user; add the user to the kvm group (then log in again), ${orTcg}`);
    }
    hostText = "libvirt driver kvm, /dev/kvm usable";
  } else {
    if (!(which("VBoxManage"))) {
      throw new UsageError("VirtualBox is not installed (VBoxManage is not on PATH): install VirtualBox, or use VAGRANT_DEFAULT_PROVIDER=libvirt");
    }
    hostText = "VirtualBox present";
  }
  for (const tool of ["ssh", "scp"]) {
    if (!(which(tool))) {
      throw new UsageError(`${tool} is not on PATH: install the OpenSSH client (apt-get install openssh-client); the vagrant backend talks to the VM with plain ssh and scp`);
    }
  }
  const sshV = await $({ timeout: 10_000, nothrow: true })`ssh -V`;
  const sshText = (sshV.stderr + sshV.stdout).trim().split(/[\s,]/)[0] || "ssh";
  checkedVersion = vtext;
  return `vagrant ${vtext}, provider ${providerText}, ${hostText}, ${sshText}`;
}
