// The build of one image into a folder: debootstrap, the system configured
// in a chroot, the kernel pairs, the disk image and the box, each phase
// logged with its time; every command a step (step.ts) of the build log.
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { interruptSignal } from "../../core/cleanup.ts";
import { errorMessage } from "../../core/errors.ts";
import { $ } from "../../core/shell.ts";
import { log } from "../../core/log.ts";
import { makeBox } from "./box.ts";
import type { ImageManifest } from "./cache.ts";
import { fastInitramfs } from "./initramfs.ts";
import {
  CHROOT_STEPS, FAST_CMDLINE_EXTRA, HOST_KEY_ALIAS, IMAGE_DISK_BYTES, IMAGE_MIRROR, IMAGE_PACKAGES,
  IMAGE_SCRIPT_VERSION, IMAGE_SUITE, IMAGE_USER, KERNEL_CMDLINE, imageFiles,
} from "./recipe.ts";
import { runStep, type Step } from "./step.ts";

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
    ["cpio", "cpio"],
  ];
  for (const [cmd, pkg] of tools) {
    if (!which(cmd)) missing.push(`${cmd} is missing: apt-get install ${pkg}`);
  }
  return missing;
}

/** Builds the image of `key` into `tmp` (a new folder in the cache `root`); manifest.json last. */
export async function buildInto(tmp: string, key: string, root: string): Promise<void> {
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
    runStep(step, [
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
    for (const argv of CHROOT_STEPS) await runStep(step, ["chroot", rootfs, ...argv]);
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
    await runStep(step, ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", `${HOST_KEY_ALIAS} host key`, "-f", join(rootfs, "etc/ssh/ssh_host_ed25519_key")]);
    const hostPub = readFileSync(join(rootfs, "etc/ssh/ssh_host_ed25519_key.pub"), "utf8").trim().split(" ");
    writeFileSync(join(tmp, "known_hosts"), `${HOST_KEY_ALIAS} ${hostPub[0]} ${hostPub[1]}\n`, { mode: 0o644 });
    // The user's key: made for this image, private key kept in the cache (0600).
    await runStep(step, ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", `${IMAGE_USER}@${key}`, "-f", join(tmp, "id_ed25519")]);
    const home = join(rootfs, "home", IMAGE_USER);
    mkdirSync(join(home, ".ssh"), { recursive: true, mode: 0o700 });
    writeFileSync(join(home, ".ssh/authorized_keys"), readFileSync(join(tmp, "id_ed25519.pub")), { mode: 0o600 });
    await runStep(step, ["chroot", rootfs, "chown", "-R", `${IMAGE_USER}:${IMAGE_USER}`, `/home/${IMAGE_USER}/.ssh`]);
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
    await runStep(step, ["cp", join(boot, `vmlinuz-${kernelVersion}`), join(tmp, "vmlinuz")]);
    await runStep(step, ["cp", join(boot, `initrd.img-${kernelVersion}`), join(tmp, "initrd.img")]);
    writeFileSync(join(tmp, "cmdline"), `${KERNEL_CMDLINE}\n`);
    // The fast pair for the qemu backend: the same kernel uncompressed (an ELF
    // with a PVH entry: no decompression under TCG) and an initramfs of a few
    // modules and busybox (no udev in the initramfs).
    await extractVmlinux(step, join(tmp, "vmlinuz"), join(tmp, "vmlinux"));
    writeFileSync(join(tmp, "initrd-fast.img"), fastInitramfs(rootfs, kernelVersion));
  });

  await phase("makes the disk image (mke2fs -d)", async () => {
    await runStep(step, [
      "mke2fs", "-q", "-t", "ext4", "-L", "picoshare-perf", "-N", "262144",
      "-E", "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0", "-J", "size=64",
      "-d", rootfs, join(tmp, "disk.img"), `${IMAGE_DISK_BYTES / 1024}k`,
    ]);
    await removeBuildDir(rootfs);
  });

  await phase("makes the Vagrant box (libvirt provider)", () => makeBox(step, tmp, join(root, key, "id_ed25519")));

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

/** Decompresses the kernel inside a bzImage (Debian's is xz) into an ELF vmlinux. */
async function extractVmlinux(step: Step, bzImage: string, out: string): Promise<void> {
  const data = readFileSync(bzImage);
  const xzMagic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  const at = data.indexOf(xzMagic);
  if (at < 0) throw new Error(`no xz stream in ${bzImage}: cannot make the uncompressed kernel`);
  const payload = join(dirname(out), ".vmlinux.xz");
  writeFileSync(payload, data.subarray(at));
  try {
    await runStep(step, ["sh", "-c", `xz -dc --single-stream < "$1" > "$2"`, "sh", payload, out]);
  } finally {
    rmSync(payload, { force: true });
  }
  const head = readFileSync(out).subarray(0, 4);
  if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) throw new Error(`${out} is not an ELF kernel`);
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
export async function removeBuildDir(dir: string): Promise<void> {
  for (const m of mountsUnder(dir)) {
    await $`umount -l ${m}`.nothrow();
  }
  if (mountsUnder(dir).length > 0) throw new Error(`could not unmount everything under ${dir}; remove it by hand`);
  rmSync(dir, { recursive: true, force: true });
}

