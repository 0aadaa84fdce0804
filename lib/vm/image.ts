// The test VM image: Debian (debootstrap, Debian packages only) with sshd, a
// user with sudo, DHCP networking and nothing else running. Built once per
// content key (package list, configuration, script version) into a cache
// outside the repository clone, so that fresh clones on the same machine
// (CI) reuse it:
//
//   ${PERF_VM_CACHE:-/var/cache/picoshare-perf/vm}/<key>/
//     disk.img          raw ext4 root file system (sparse), the qemu backend's base
//     vmlinuz, initrd.img, cmdline   Debian's kernel and initrd (for boot loaders)
//     vmlinux, initrd-fast.img   the same kernel uncompressed (PVH) and a minimal
//                       initramfs: the quick boot of the qemu backend and the box
//     id_ed25519[.pub]  the key made for this image (user "perf")
//     known_hosts       the image's own host key, under HOST_KEY_ALIAS
//     picoshare-perf.box  Vagrant box for the libvirt provider (a tar of
//                       metadata.json, box.img, Vagrantfile, vmlinux, initrd-fast.img)
//     manifest.json     what is in it; written last
//
// A build runs in `.build-<key>-<pid>` beside it and is renamed into place
// when complete, so nothing half-written looks finished; a lock (flock on
// `.lock-<key>`, released by the kernel if the builder dies) keeps two builds
// of the same key apart.
import { createHash } from "node:crypto";
import {
  chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync,
  renameSync, rmSync, statSync, symlinkSync, writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { spawn } from "node:child_process";
import { dlopen, FFIType } from "bun:ffi";
import { UsageError, errorMessage } from "../core/errors.ts";
import { log } from "../core/log.ts";
import { onCleanup, interruptSignal } from "../core/cleanup.ts";
import { GiB } from "../core/sizes.ts";

/** Bump when the build steps change in a way the content key would not see. */
export const IMAGE_SCRIPT_VERSION = 1;
export const IMAGE_SUITE = "bookworm";
export const IMAGE_MIRROR = process.env.PERF_VM_MIRROR || "http://deb.debian.org/debian";
/** debootstrap --variant=minbase plus these. */
export const IMAGE_PACKAGES = [
  "linux-image-amd64",
  "systemd-sysv",
  "udev",
  "openssh-server",
  "sudo",
  "iproute2",
  "procps",
  // The system bus and the PAM module that user managers (user@UID.service)
  // need, for the cgroup-v2 tests' user case; logins stay out of logind (below).
  "dbus",
  "libpam-systemd",
  // A static shell for the minimal initramfs of the fast boot path.
  "busybox-static",
];
/**
 * Modules the fast initramfs loads (with their dependencies): a virtio ext4
 * root, the virtio network card, serial ports and entropy source.
 */
export const FAST_INITRD_MODULES = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "virtio_net", "virtio_console", "virtio_rng"];

/**
 * Added to the kernel command line on the fast path: the initramfs has set up
 * the modules and the network (DHCP, busybox udhcpc), so udev, networkd and
 * tmpfiles are masked for this boot (systemd-debug-generator reads these).
 * The image itself is unchanged: a boot without them is a normal systemd boot.
 */
export const FAST_CMDLINE_EXTRA = [
  "picoshare_perf.fast=1",
  ...[
    "systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service", "systemd-networkd.service", "systemd-networkd.socket",
    "systemd-tmpfiles-setup.service",
  ].map((u) => `systemd.mask=${u}`),
].join(" ");
/** Virtual size of the root file system: room for a 5G test (temp file + database = 2x). */
export const IMAGE_DISK_BYTES = 24 * GiB;
export const IMAGE_USER = "perf";
export const HOST_KEY_ALIAS = "picoshare-perf-vm";
export const GUEST_HOSTNAME = "picoshare-perf";
/** Kernel command line for direct kernel boot (the disk is the first virtio disk). */
export const KERNEL_CMDLINE =
  "root=/dev/vda rw console=ttyS0 quiet panic=-1 mitigations=off random.trust_cpu=on " +
  "systemd.show_status=false net.ifnames=1";

// Units a test VM does not need: timers that wake up during a test, and
// services that only cost boot time (under TCG every unit costs ~0.1-1 s).
const MASKED_UNITS = [
  "apt-daily.timer",
  "apt-daily-upgrade.timer",
  "dpkg-db-backup.timer",
  "e2scrub_all.timer",
  "e2scrub_reap.service",
  "fstrim.timer",
  "systemd-tmpfiles-clean.timer",
  "getty.target",
  "getty-static.service",
  "systemd-networkd-wait-online.service",
  "systemd-network-generator.service",
  "systemd-pstore.service",
  "systemd-journal-flush.service",
  "systemd-update-utmp.service",
  "systemd-update-utmp-runlevel.service",
  "systemd-random-seed.service",
  "systemd-remount-fs.service",
  "systemd-sysusers.service",
  "systemd-sysctl.service",
  "systemd-modules-load.service",
  "systemd-firstboot.service",
  "systemd-machine-id-commit.service",
  "systemd-user-sessions.service",
  // Not needed to run PicoShare (ssh logins stay in ssh.service); a test that
  // needs user managers unmasks and starts it.
  "systemd-logind.service",
  "systemd-ask-password-console.path",
  "systemd-ask-password-wall.path",
  "kmod-static-nodes.service",
  "systemd-tmpfiles-setup-dev.service",
  "modprobe@configfs.service",
  "modprobe@dm_mod.service",
  "modprobe@drm.service",
  "modprobe@efi_pstore.service",
  "modprobe@fuse.service",
  "modprobe@loop.service",
  "dev-hugepages.mount",
  "dev-mqueue.mount",
  "sys-kernel-debug.mount",
  "sys-kernel-tracing.mount",
  "sys-kernel-config.mount",
  "sys-fs-fuse-connections.mount",
  "proc-sys-fs-binfmt_misc.automount",
  "remote-fs.target",
];

const BLACKLISTED_MODULES = [
  "kvm", "kvm_amd", "kvm_intel", "ccp", "irqbypass",
  "cfg80211", "rfkill", "floppy", "ata_piix", "ata_generic", "pata_acpi",
  "psmouse", "pcspkr", "serio_raw", "evdev", "joydev", "i2c_piix4", "button",
  "bochs", "drm", "drm_kms_helper", "qxl", "intel_rapl_msr", "intel_rapl_common",
  "aesni_intel", "crc32_pclmul", "crct10dif_pclmul", "ghash_clmulni_intel",
  "sha1_ssse3", "sha256_ssse3", "sha512_ssse3", "crc32c_intel",
];

/** Files written into the image: path, content, mode. Part of the content key. */
function imageFiles(): { path: string; content: string; mode: number }[] {
  return [
    { path: "/etc/hostname", content: `${GUEST_HOSTNAME}\n`, mode: 0o644 },
    { path: "/etc/hosts", content: `127.0.0.1 localhost\n127.0.1.1 ${GUEST_HOSTNAME}\n::1 localhost ip6-localhost ip6-loopback\n`, mode: 0o644 },
    // No fsck at boot (passno 0): the disk is a fresh overlay every time.
    { path: "/etc/fstab", content: "/dev/vda / ext4 rw,noatime,errors=remount-ro 0 0\n", mode: 0o644 },
    {
      path: "/etc/systemd/network/80-dhcp.network",
      content: [
        "# Any wired interface: IPv4 by DHCP (qemu's user network, libvirt's NAT network).",
        "[Match]",
        "Name=en* eth*",
        "",
        "[Network]",
        "DHCP=ipv4",
        "LinkLocalAddressing=no",
        "IPv6AcceptRA=no",
        "",
      ].join("\n"),
      mode: 0o644,
    },
    {
      path: "/etc/ssh/sshd_config.d/picoshare-perf.conf",
      content: [
        "# Key logins only, for the one user made for this image.",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin no",
        `AllowUsers ${IMAGE_USER}`,
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "UseDNS no",
        "MaxSessions 32",
        "MaxStartups 32:30:64",
        "",
      ].join("\n"),
      mode: 0o644,
    },
    { path: `/etc/sudoers.d/${IMAGE_USER}`, content: `${IMAGE_USER} ALL=(ALL) NOPASSWD: ALL\n`, mode: 0o440 },
    {
      path: "/etc/systemd/journald.conf.d/picoshare-perf.conf",
      content: "[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\nForwardToConsole=no\n",
      mode: 0o644,
    },
    // A small initrd: only what mounting a virtio ext4 root needs (quicker to unpack under TCG).
    { path: "/etc/initramfs-tools/conf.d/picoshare-perf.conf", content: "MODULES=list\n", mode: 0o644 },
    { path: "/etc/initramfs-tools/modules", content: "virtio_pci\nvirtio_blk\next4\n", mode: 0o644 },
    // sshd as soon as the system is up: Debian's unit waits for network.target
    // (systemd-networkd's start-up) and runs `sshd -t` first; sshd listens on
    // 0.0.0.0 before the address arrives by DHCP.
    {
      path: "/etc/systemd/system/ssh.service",
      content: [
        "[Unit]",
        "Description=OpenBSD Secure Shell server (picoshare-perf: no wait for the network)",
        "ConditionPathExists=!/etc/ssh/sshd_not_to_be_run",
        "",
        "[Service]",
        "ExecStart=/usr/sbin/sshd -D",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillMode=process",
        "Restart=on-failure",
        "RestartPreventExitStatus=255",
        "Type=notify",
        "RuntimeDirectory=sshd",
        "RuntimeDirectoryMode=0755",
        // The harness's channel into the VM (sshd, its sessions, the memory
        // sampler) is the last the OOM killer picks: an OOM kill ends
        // PicoShare, as it would in a cgroup, not the measurement.
        "OOMScoreAdjust=-900",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "Alias=sshd.service",
        "",
      ].join("\n"),
      mode: 0o644,
    },
    // Modules udev would load for the emulated PC's devices and CPU features
    // that a test VM never uses: each costs boot time under TCG.
    {
      path: "/etc/modprobe.d/picoshare-perf.conf",
      content: `${BLACKLISTED_MODULES.map((m) => `blacklist ${m}`).join("\n")}\n`,
      mode: 0o644,
    },
    // The journal is part of the harness's channel too (systemd-run reports through it).
    {
      path: "/etc/systemd/system/systemd-journald.service.d/picoshare-perf.conf",
      content: "[Service]\nOOMScoreAdjust=-900\n",
      mode: 0o644,
    },
    // No /run/nologin at boot (systemd-user-sessions, masked, would remove it).
    { path: "/etc/tmpfiles.d/systemd-nologin.conf", content: "", mode: 0o644 },
  ];
}

/** Commands run in the image (chroot) after the files are written. */
const CHROOT_STEPS: string[][] = [
  ["useradd", "--create-home", "--shell", "/bin/bash", "--uid", "1000", IMAGE_USER],
  // "*": no password is valid (not "locked", which some sshd set-ups refuse for keys too).
  ["usermod", "--password", "*", IMAGE_USER],
  ["usermod", "--password", "*", "root"],
  ["useradd", "--system", "--home-dir", "/var/lib/picoshare", "--shell", "/usr/sbin/nologin", "picoshare"],
  // PicoShare's home in the guest: data and temp files on the root disk.
  ["install", "-d", "-o", "picoshare", "-g", "picoshare", "-m", "0750", "/var/lib/picoshare", "/var/lib/picoshare/data", "/var/lib/picoshare/tmp"],
  ["systemctl", "enable", "systemd-networkd.service", "ssh.service"],
  ["systemctl", "set-default", "multi-user.target"],
  ["systemctl", "mask", ...MASKED_UNITS],
  // pam_systemd only where a user manager starts (/etc/pam.d/systemd-user), not
  // in every login: an ssh login stays in ssh.service, as on a host without logind.
  ["pam-auth-update", "--disable", "systemd"],
  ["update-initramfs", "-u", "-k", "all"],
  ["apt-get", "clean"],
];

export interface ImageManifest {
  key: string;
  script_version: number;
  suite: string;
  mirror: string;
  packages: string[];
  kernel_version: string;
  kernel_cmdline: string;
  /** Added to kernel_cmdline when booting the fast pair (vmlinux, initrd-fast.img). */
  fast_cmdline_extra: string;
  disk_bytes: number;
  user: string;
  host_key_alias: string;
  built_at: string;
  build_seconds: number;
}

export interface VmImage {
  dir: string;
  key: string;
  /** Raw ext4 image: the qemu backend's base (never written to). */
  disk: string;
  diskFormat: "raw";
  /** Debian's kernel (bzImage) and initrd. */
  kernel: string;
  initrd: string;
  /** The fast pair: the same kernel uncompressed (PVH entry) and a minimal initramfs. */
  fastKernel: string;
  fastInitrd: string;
  cmdline: string;
  /** The command line for the fast pair: cmdline plus FAST_CMDLINE_EXTRA. */
  fastCmdline: string;
  user: string;
  sshKey: string;
  knownHosts: string;
  hostKeyAlias: string;
  /** Vagrant box for the libvirt provider (a tar of metadata.json, box.img, Vagrantfile, vmlinux, initrd-fast.img). */
  boxFile: string;
  manifest: ImageManifest;
}

export function vmCacheRoot(): string {
  return process.env.PERF_VM_CACHE || "/var/cache/picoshare-perf/vm";
}

/** The content key: what goes into the image decides its name. */
export function imageKey(): string {
  const h = createHash("sha256");
  h.update(
    JSON.stringify({
      version: IMAGE_SCRIPT_VERSION,
      suite: IMAGE_SUITE,
      mirror: IMAGE_MIRROR,
      arch: "amd64",
      variant: "minbase",
      packages: IMAGE_PACKAGES,
      disk: IMAGE_DISK_BYTES,
      user: IMAGE_USER,
      cmdline: KERNEL_CMDLINE,
      fastCmdline: FAST_CMDLINE_EXTRA,
      fastModules: FAST_INITRD_MODULES,
      fastInit: fastInitScript(["MODULES"]),
      udhcpc: UDHCPC_SCRIPT,
      blacklist: BLACKLISTED_MODULES,
      files: imageFiles(),
      steps: CHROOT_STEPS,
      box: boxVagrantfile("KEY"),
    }),
  );
  return `${IMAGE_SUITE}-${h.digest("hex").slice(0, 16)}`;
}

function imageAt(dir: string): VmImage | null {
  const manifestPath = join(dir, "manifest.json");
  if (!existsSync(manifestPath)) return null;
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  } catch {
    return null;
  }
  const img: VmImage = {
    dir,
    key: manifest.key,
    disk: join(dir, "disk.img"),
    diskFormat: "raw",
    kernel: join(dir, "vmlinuz"),
    initrd: join(dir, "initrd.img"),
    fastKernel: join(dir, "vmlinux"),
    fastInitrd: join(dir, "initrd-fast.img"),
    cmdline: manifest.kernel_cmdline,
    fastCmdline: `${manifest.kernel_cmdline} ${manifest.fast_cmdline_extra}`,
    user: manifest.user,
    sshKey: join(dir, "id_ed25519"),
    knownHosts: join(dir, "known_hosts"),
    hostKeyAlias: manifest.host_key_alias,
    boxFile: join(dir, "picoshare-perf.box"),
    manifest,
  };
  for (const f of [img.disk, img.kernel, img.initrd, img.fastKernel, img.fastInitrd, img.sshKey, img.knownHosts, img.boxFile]) {
    if (!existsSync(f)) return null;
  }
  return img;
}

/** The complete image for the current content key, or null when it has not been built. */
export function findImage(): VmImage | null {
  return imageAt(join(vmCacheRoot(), imageKey()));
}

// ---------------------------------------------------------------- lock (flock)

const LOCK_EX = 2;
const LOCK_NB = 4;
let libc: ReturnType<typeof openLibc> | null = null;
function openLibc() {
  return dlopen("libc.so.6", { flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 } });
}

/**
 * Takes the build lock for `key`, waiting while another process holds it.
 * The kernel drops it when this process ends, however it ends.
 */
async function lockBuild(root: string, key: string): Promise<() => void> {
  libc ??= openLibc();
  const fd = openSync(join(root, `.lock-${key}`), "a", 0o644);
  let said = false;
  while (libc.symbols.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    if (!said) {
      log(`Another process is building VM image ${key}: waiting for it to finish`);
      said = true;
    }
    if (interruptSignal.aborted) {
      closeSync(fd);
      throw interruptSignal.reason;
    }
    await Bun.sleep(500);
  }
  return () => closeSync(fd);
}

/** Takes the build lock of `key` only if nobody holds it; null when someone does. */
function tryLock(root: string, key: string): (() => void) | null {
  libc ??= openLibc();
  const fd = openSync(join(root, `.lock-${key}`), "a", 0o644);
  if (libc.symbols.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    closeSync(fd);
    return null;
  }
  return () => closeSync(fd);
}

/**
 * Removes the images of other content keys (older versions of the build) and
 * the KVM probe answers; an image whose build lock is held is left alone.
 * A running VM keeps its base open, so removing it under a VM is safe.
 */
export function pruneImages(): { removed: string[]; kept: string[] } {
  const root = vmCacheRoot();
  const current = imageKey();
  const removed: string[] = [];
  const kept: string[] = [];
  if (!existsSync(root)) return { removed, kept };
  for (const name of readdirSync(root)) {
    if (/^kvm-probe-[0-9a-f]+\.json$/.test(name)) {
      rmSync(join(root, name), { force: true });
      continue;
    }
    if (!/^[a-z]+-[0-9a-f]{16}$/.test(name) || name === current) continue;
    const unlock = tryLock(root, name);
    if (!unlock) {
      kept.push(name);
      continue;
    }
    try {
      rmSync(join(root, name), { recursive: true, force: true });
      rmSync(join(root, `.lock-${name}`), { force: true });
      removed.push(name);
    } finally {
      unlock();
    }
  }
  return { removed, kept };
}

// ---------------------------------------------------------------- commands

interface Step {
  logPath: string;
}

/** Runs argv in its own process group, output appended to the build log; killed on interrupt. */
function run(step: Step, argv: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const fd = openSync(step.logPath, "a");
    writeFileSync(fd, `\n$ ${argv.join(" ")}\n`);
    const child = spawn(argv[0], argv.slice(1), {
      detached: true,
      stdio: [opts.input === undefined ? "ignore" : "pipe", fd, fd],
      env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8", ...opts.env },
    });
    closeSync(fd);
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const forget = onCleanup(`stop ${argv[0]}`, () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {}
    });
    child.once("error", (err) => {
      forget();
      reject(new Error(`${argv[0]}: ${errorMessage(err)}`));
    });
    child.once("exit", (code, signal) => {
      forget();
      if (code === 0) resolve();
      else reject(new Error(`${argv.slice(0, 3).join(" ")} failed (${signal ?? `exit ${code}`}); see ${step.logPath}`));
    });
  });
}

/** Mount points at or below `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const decode = (s: string) => s.replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => decode(l.split(" ")[1] ?? ""))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Removes a build folder, unmounting anything a step left mounted inside it first. */
async function removeBuildDir(dir: string): Promise<void> {
  for (const m of mountsUnder(dir)) {
    await new Promise<void>((r) => spawn("umount", ["-l", m], { stdio: "ignore" }).once("exit", () => r()).once("error", () => r()));
  }
  if (mountsUnder(dir).length > 0) throw new Error(`could not unmount everything under ${dir}; remove it by hand`);
  rmSync(dir, { recursive: true, force: true });
}

function which(cmd: string): boolean {
  for (const p of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin"])) {
    if (p && existsSync(join(p, cmd))) return true;
  }
  return false;
}

/** What a build needs from the host: one line each for what is missing. */
export function buildPrerequisites(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push("building the VM image needs root (debootstrap, chroot): run it as root or with sudo");
  const tools: [string, string][] = [
    ["debootstrap", "debootstrap"],
    ["mke2fs", "e2fsprogs"],
    ["qemu-img", "qemu-utils"],
    ["ssh-keygen", "openssh-client"],
    ["tar", "tar"],
    ["xz", "xz-utils"],
  ];
  for (const [cmd, pkg] of tools) {
    if (!which(cmd)) missing.push(`${cmd} is missing: apt-get install ${pkg}`);
  }
  return missing;
}

// ---------------------------------------------------------------- the build

export interface BuildOptions {
  /** Build again even when the image for this key exists. */
  force?: boolean;
}

/** The image for the current key: the cached one, or built now (once, under the lock). */
export async function ensureImage(opts: BuildOptions = {}): Promise<{ image: VmImage; built: boolean }> {
  const key = imageKey();
  const root = vmCacheRoot();
  const final = join(root, key);
  if (!opts.force) {
    const found = imageAt(final);
    if (found) return { image: found, built: false };
  }
  const missing = buildPrerequisites();
  if (missing.length > 0) throw new UsageError(missing.join("\n"));
  try {
    mkdirSync(root, { recursive: true });
  } catch (err) {
    throw new UsageError(`cannot create the VM image cache ${root} (${errorMessage(err)}): set PERF_VM_CACHE to a writable folder`);
  }
  const unlock = await lockBuild(root, key);
  const releaseLock = onCleanup("release the VM image build lock", unlock);
  try {
    // Someone else may have finished it while we waited.
    if (!opts.force) {
      const found = imageAt(final);
      if (found) return { image: found, built: false };
    }
    // Holding the lock, any other build folder of this key belongs to a dead build.
    for (const name of readdirSync(root)) {
      if (name.startsWith(`.build-${key}-`)) {
        log(`Removing ${join(root, name)}, left by an interrupted build`);
        await removeBuildDir(join(root, name));
      }
    }
    const tmp = join(root, `.build-${key}-${process.pid}`);
    mkdirSync(tmp, { mode: 0o755 });
    const forgetTmp = onCleanup("remove the unfinished VM image", () => removeBuildDir(tmp));
    try {
      await buildInto(tmp, key, root);
      if (opts.force && existsSync(final)) {
        const old = join(root, `.old-${key}-${process.pid}`);
        renameSync(final, old);
        rmSync(old, { recursive: true, force: true });
      }
      renameSync(tmp, final);
    } catch (err) {
      await removeBuildDir(tmp).catch(() => {});
      throw err;
    } finally {
      forgetTmp();
    }
    const image = imageAt(final);
    if (!image) throw new Error(`the VM image in ${final} is incomplete after its build`);
    return { image, built: true };
  } finally {
    releaseLock();
    unlock();
  }
}

async function buildInto(tmp: string, key: string, root: string): Promise<void> {
  const t0 = performance.now();
  const step: Step = { logPath: join(tmp, "build.log") };
  const rootfs = join(tmp, "rootfs");
  const debs = join(root, "debs");
  mkdirSync(debs, { recursive: true });
  const tail = () => {
    try {
      return readFileSync(step.logPath, "utf8").trimEnd().split("\n").slice(-8).join("\n  ");
    } catch {
      return "";
    }
  };
  const phase = async (what: string, fn: () => Promise<void>) => {
    const p0 = performance.now();
    log(`VM image: ${what}`);
    try {
      await fn();
    } catch (err) {
      if (interruptSignal.aborted) throw err;
      throw new Error(`VM image build failed while it ${what}: ${errorMessage(err)}\n  ${tail()}`);
    }
    log(`VM image: ${what}: done in ${((performance.now() - p0) / 1000).toFixed(1)} s`);
  };

  await phase("installs Debian with debootstrap (a few minutes)", () =>
    run(step, [
      "debootstrap", "--variant=minbase", `--cache-dir=${debs}`, `--include=${IMAGE_PACKAGES.join(",")}`,
      IMAGE_SUITE, rootfs, IMAGE_MIRROR,
    ]),
  );

  await phase("configures the system", async () => {
    for (const f of imageFiles()) {
      const path = join(rootfs, f.path);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, f.content);
      chmodSync(path, f.mode);
    }
    for (const argv of CHROOT_STEPS) await run(step, ["chroot", rootfs, ...argv]);
    // Generators run at every boot before any unit starts (one process each,
    // slow under TCG); the debug generator stays for systemd.mask= on the
    // kernel command line.
    const generators = join(rootfs, "lib/systemd/system-generators");
    mkdirSync(join(rootfs, "etc/systemd/system-generators"), { recursive: true });
    for (const name of readdirSync(generators)) {
      if (name !== "systemd-debug-generator") symlinkSync("/dev/null", join(rootfs, "etc/systemd/system-generators", name));
    }
    // The host key made for this image, known to the harness under one alias.
    for (const name of readdirSync(join(rootfs, "etc/ssh"))) {
      if (name.startsWith("ssh_host_")) rmSync(join(rootfs, "etc/ssh", name));
    }
    await run(step, ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", `${HOST_KEY_ALIAS} host key`, "-f", join(rootfs, "etc/ssh/ssh_host_ed25519_key")]);
    const hostPub = readFileSync(join(rootfs, "etc/ssh/ssh_host_ed25519_key.pub"), "utf8").trim().split(" ");
    writeFileSync(join(tmp, "known_hosts"), `${HOST_KEY_ALIAS} ${hostPub[0]} ${hostPub[1]}\n`, { mode: 0o644 });
    // The user's key: made for this image, private key kept in the cache (0600).
    await run(step, ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", `${IMAGE_USER}@${key}`, "-f", join(tmp, "id_ed25519")]);
    const home = join(rootfs, "home", IMAGE_USER);
    mkdirSync(join(home, ".ssh"), { recursive: true, mode: 0o700 });
    writeFileSync(join(home, ".ssh/authorized_keys"), readFileSync(join(tmp, "id_ed25519.pub")), { mode: 0o600 });
    await run(step, ["chroot", rootfs, "chown", "-R", `${IMAGE_USER}:${IMAGE_USER}`, `/home/${IMAGE_USER}/.ssh`]);
    // Machine id: made at first boot, so that every VM has its own.
    writeFileSync(join(rootfs, "etc/machine-id"), "");
    rmSync(join(rootfs, "var/lib/dbus/machine-id"), { force: true });
  });

  let kernelVersion = "";
  await phase("extracts the kernel and initrd", async () => {
    const boot = join(rootfs, "boot");
    const kernels = readdirSync(boot).filter((n) => n.startsWith("vmlinuz-")).sort();
    if (kernels.length === 0) throw new Error("no kernel in /boot");
    kernelVersion = kernels[kernels.length - 1].slice("vmlinuz-".length);
    // Debian's pair, for boot loaders.
    await run(step, ["cp", join(boot, `vmlinuz-${kernelVersion}`), join(tmp, "vmlinuz")]);
    await run(step, ["cp", join(boot, `initrd.img-${kernelVersion}`), join(tmp, "initrd.img")]);
    writeFileSync(join(tmp, "cmdline"), `${KERNEL_CMDLINE}\n`);
    // The fast pair for the qemu backend: the same kernel uncompressed (an ELF
    // with a PVH entry: no decompression under TCG) and an initramfs of a few
    // modules and busybox (no udev in the initramfs).
    await extractVmlinux(step, join(tmp, "vmlinuz"), join(tmp, "vmlinux"));
    writeFileSync(join(tmp, "initrd-fast.img"), fastInitramfs(rootfs, kernelVersion));
  });

  await phase("makes the disk image (mke2fs -d)", async () => {
    await run(step, [
      "mke2fs", "-q", "-t", "ext4", "-L", "picoshare-perf", "-N", "262144",
      "-E", "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0", "-J", "size=64",
      "-d", rootfs, join(tmp, "disk.img"), `${IMAGE_DISK_BYTES / 1024}k`,
    ]);
    await removeBuildDir(rootfs);
  });

  await phase("makes the Vagrant box (libvirt provider)", async () => {
    const box = join(tmp, "box");
    mkdirSync(box);
    await run(step, ["qemu-img", "convert", "-O", "qcow2", "-f", "raw", join(tmp, "disk.img"), join(box, "box.img")]);
    // The fast pair, as the qemu backend boots it.
    await run(step, ["cp", join(tmp, "vmlinux"), join(box, "vmlinux")]);
    await run(step, ["cp", join(tmp, "initrd-fast.img"), join(box, "initrd-fast.img")]);
    writeFileSync(
      join(box, "metadata.json"),
      `${JSON.stringify({ provider: "libvirt", format: "qcow2", virtual_size: IMAGE_DISK_BYTES / GiB }, null, 2)}\n`,
    );
    writeFileSync(join(box, "Vagrantfile"), boxVagrantfile(join(root, key, "id_ed25519")));
    await run(step, ["tar", "-C", box, "-cf", join(tmp, "picoshare-perf.box"), "metadata.json", "Vagrantfile", "box.img", "vmlinux", "initrd-fast.img"]);
    rmSync(box, { recursive: true, force: true });
  });

  const manifest: ImageManifest = {
    key,
    script_version: IMAGE_SCRIPT_VERSION,
    suite: IMAGE_SUITE,
    mirror: IMAGE_MIRROR,
    packages: IMAGE_PACKAGES,
    kernel_version: kernelVersion,
    kernel_cmdline: KERNEL_CMDLINE,
    fast_cmdline_extra: FAST_CMDLINE_EXTRA,
    disk_bytes: IMAGE_DISK_BYTES,
    user: IMAGE_USER,
    host_key_alias: HOST_KEY_ALIAS,
    built_at: new Date().toISOString(),
    build_seconds: Math.round((performance.now() - t0) / 100) / 10,
  };
  // Last: its presence marks the folder complete.
  writeFileSync(join(tmp, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  if (statSync(join(tmp, "disk.img")).size !== IMAGE_DISK_BYTES) throw new Error("disk.img has the wrong size");
}

/**
 * The box's own Vagrantfile: direct kernel boot of the fast pair (the disk
 * has no boot loader), the image's user and key, no synced folder, and the
 * guest named (Vagrant's detection costs seconds of ssh round trips under TCG).
 */
function boxVagrantfile(keyPath: string): string {
  return `# Vagrant box made by picoshare-perf-test (scripts/build-vm-image.ts) for the libvirt provider.
Vagrant.configure("2") do |config|
  config.ssh.username = "${IMAGE_USER}"
  config.ssh.private_key_path = ENV.fetch("PICOSHARE_PERF_VM_KEY", "${keyPath}")
  config.ssh.insert_key = false
  config.vm.guest = :debian
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.provider :libvirt do |libvirt|
    box_dir = File.dirname(__FILE__)
    libvirt.kernel = File.join(box_dir, "vmlinux")
    libvirt.initrd = File.join(box_dir, "initrd-fast.img")
    libvirt.cmd_line = "${KERNEL_CMDLINE} ${FAST_CMDLINE_EXTRA}"
    libvirt.disk_bus = "virtio"
    libvirt.nic_model_type = "virtio"
    libvirt.cpus = 1
    libvirt.graphics_type = "none"
    libvirt.video_type = "none"
    # "qemu" (TCG) where KVM is missing or unusable; vagrant-libvirt's default is "kvm".
    driver = ENV.fetch("VM_LIBVIRT_DRIVER", "").strip
    libvirt.driver = driver unless driver.empty?
  end
end
`;
}

// ---------------------------------------------------------------- fast boot pair

/** Decompresses the kernel inside a bzImage (Debian's is xz) into an ELF vmlinux. */
async function extractVmlinux(step: Step, bzImage: string, out: string): Promise<void> {
  const data = readFileSync(bzImage);
  const xzMagic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  const at = data.indexOf(xzMagic);
  if (at < 0) throw new Error(`no xz stream in ${bzImage}: cannot make the uncompressed kernel`);
  const payload = join(dirname(out), ".vmlinux.xz");
  writeFileSync(payload, data.subarray(at));
  try {
    await run(step, ["sh", "-c", `xz -dc --single-stream < "$1" > "$2"`, "sh", payload, out]);
  } finally {
    rmSync(payload, { force: true });
  }
  const head = readFileSync(out).subarray(0, 4);
  if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) throw new Error(`${out} is not an ELF kernel`);
}

/** Module files (relative to /lib/modules/VERSION) to load for `names`, dependencies first. */
export function moduleLoadOrder(depText: string, names: string[]): string[] {
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of depText.split("\n")) {
    const m = /^([^:]+):\s*(.*)$/.exec(line.trim());
    if (!m) continue;
    deps.set(m[1], m[2] ? m[2].split(/\s+/) : []);
    byName.set(m[1].split("/").pop()!.replace(/\.ko(\.\w+)?$/, "").replace(/-/g, "_"), m[1]);
  }
  const order: string[] = [];
  const visit = (path: string) => {
    if (order.includes(path)) return;
    for (const d of deps.get(path) ?? []) visit(d);
    order.push(path);
  };
  for (const name of names) {
    const path = byName.get(name.replace(/-/g, "_"));
    if (!path) throw new Error(`kernel module ${name} not found in modules.dep`);
    visit(path);
  }
  return order;
}

/** A cpio archive in the "newc" format the kernel unpacks as its initramfs. */
export function newcArchive(entries: { name: string; mode: number; data?: Uint8Array; rdev?: [number, number] }[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const add = (name: string, mode: number, data: Uint8Array, rdev: [number, number] = [0, 0]) => {
    const hex = (n: number) => n.toString(16).padStart(8, "0");
    const nameBytes = Buffer.from(`${name}\0`);
    const header = `070701${[ino++, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0].map(hex).join("")}`;
    parts.push(Buffer.from(header), nameBytes, pad(110 + nameBytes.length), Buffer.from(data), pad(data.length));
  };
  for (const e of entries) add(e.name, e.mode, e.data ?? new Uint8Array(), e.rdev);
  add("TRAILER!!!", 0, new Uint8Array());
  return Buffer.concat(parts);
}

/** The fast initramfs's /init: the whole boot path up to systemd (no udev, no module probing). */
function fastInitScript(modNames: string[]): string {
  return `#!/bin/busybox sh
# picoshare-perf fast initramfs: load the modules a virtio ext4 root needs,
# mount it and hand over to its init. A failure ends init: the kernel panics
# and (panic=-1, qemu -no-reboot) the VM stops instead of hanging.
B=/bin/busybox
$B mount -t devtmpfs devtmpfs /dev
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
for m in ${modNames.join(" ")}; do
  $B insmod /lib/modules/$m || echo "initramfs: insmod $m failed"
done
n=0
while [ ! -b /dev/vda ]; do
  n=$((n + 1))
  if [ $n -gt 1000 ]; then echo "initramfs: no /dev/vda after 10 s"; exit 1; fi
  $B usleep 10000
done
$B mount -t ext4 -o rw,noatime /dev/vda /root || { echo "initramfs: cannot mount /dev/vda"; exit 1; }
# The network by DHCP (qemu's user network answers at once).
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 500 ]; do n=$((n + 1)); $B usleep 10000; done
$B ip link set lo up
$B ip link set eth0 up
$B udhcpc -i eth0 -n -q -f -t 10 -T 1 -s /udhcpc.sh >/dev/null 2>&1 || echo "initramfs: no DHCP answer on eth0"
# Optional thrashing protection, off unless asked for on the command line
# (picoshare_perf.min_ttl_ms=N): multi-gen LRU keeps the working set of the
# last N ms, and the OOM killer runs when it cannot.
for a in $($B cat /proc/cmdline); do
  case $a in
    picoshare_perf.min_ttl_ms=*)
      echo y > /sys/kernel/mm/lru_gen/enabled
      echo "\${a#*=}" > /sys/kernel/mm/lru_gen/min_ttl_ms
      ;;
  esac
done
$B mount --move /dev /root/dev
$B mount --move /sys /root/sys
$B mount --move /proc /root/proc
exec $B switch_root /root /sbin/init
`;
}

/** udhcpc's hook: applies the lease (address, netmask, router). */
const UDHCPC_SCRIPT = `#!/bin/busybox sh
B=/bin/busybox
case "$1" in
  bound|renew)
    $B ifconfig "$interface" "$ip" netmask "\${subnet:-255.255.255.0}" up
    for r in $router; do $B route add default gw "$r" dev "$interface"; break; done
    ;;
esac
exit 0
`;

function fastInitramfs(rootfs: string, kernelVersion: string): Buffer {
  const modDir = join(rootfs, "lib/modules", kernelVersion);
  const order = moduleLoadOrder(readFileSync(join(modDir, "modules.dep"), "utf8"), FAST_INITRD_MODULES);
  const busybox = join(rootfs, "bin/busybox");
  if (!existsSync(busybox)) throw new Error("busybox-static is not installed in the image");
  const modNames = order.map((p) => p.split("/").pop()!);
  const init = fastInitScript(modNames);
  const entries: { name: string; mode: number; data?: Uint8Array; rdev?: [number, number] }[] = [
    { name: "bin", mode: 0o040755 },
    { name: "dev", mode: 0o040755 },
    { name: "dev/console", mode: 0o020600, rdev: [5, 1] },
    { name: "root", mode: 0o040755 },
    { name: "proc", mode: 0o040755 },
    { name: "sys", mode: 0o040755 },
    { name: "lib", mode: 0o040755 },
    { name: "lib/modules", mode: 0o040755 },
    { name: "bin/busybox", mode: 0o100755, data: readFileSync(busybox) },
    { name: "init", mode: 0o100755, data: Buffer.from(init) },
    { name: "udhcpc.sh", mode: 0o100755, data: Buffer.from(UDHCPC_SCRIPT) },
  ];
  for (const p of order) entries.push({ name: `lib/modules/${p.split("/").pop()}`, mode: 0o100644, data: readFileSync(join(modDir, p)) });
  return newcArchive(entries);
}
