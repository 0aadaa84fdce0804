// The image cache: one folder per content key, outside the repository clone,
// so that fresh clones on the same machine (CI) reuse it:
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
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { onCleanup, interruptSignal } from "../../core/cleanup.ts";
import { UsageError, errorMessage } from "../../core/errors.ts";
import { flockWait, tryFlock } from "../../core/lock.ts";
import { log } from "../../core/log.ts";
import { buildInto, buildPrerequisites, removeBuildDir } from "./build.ts";
import { imageKey } from "./key.ts";

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

/** The build lock of `key`: its file in the cache root. */
function lockPath(root: string, key: string): string {
  return join(root, `.lock-${key}`);
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
    const unlock = tryFlock(lockPath(root, name));
    if (!unlock) {
      kept.push(name);
      continue;
    }
    try {
      rmSync(join(root, name), { recursive: true, force: true });
      rmSync(lockPath(root, name), { force: true });
      removed.push(name);
    } finally {
      unlock();
    }
  }
  return { removed, kept };
}

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
  const unlock = await flockWait(lockPath(root, key), `Another process is building VM image ${key}: waiting for it to finish`, interruptSignal);
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
