// The qemu backend: PicoShare in a VM booted from the test image
// (scripts/build-vm-image.ts) with qemu directly: RAM = --ram, one vCPU, KVM
// where it works, TCG otherwise. Each test gets a copy-on-write overlay, its
// own ports on 127.0.0.1 (ssh and PicoShare), and one shared ssh connection
// (lib/vm/ssh.ts) for the copy, the start and a long-lived memory-sampling
// stream (environment.ts). The VM is powered off and its folder removed on
// every exit path.
import { totalmem } from "node:os";
import type { Backend, EnvironmentSpec } from "../types.ts";
import { UsageError } from "../../core/errors.ts";
import { requireFreeSpace } from "../../core/files.ts";
import { MiB, formatBytes } from "../../core/sizes.ts";
import { findImage, imageKey, vmCacheRoot, type VmImage } from "../../vm/image/index.ts";
import { QEMU, QEMU_IMG, chooseAccel, logAccel, onPath, qemuVersion } from "../../vm/qemu.ts";
import { QemuEnvironment } from "./environment.ts";

/** Disk the guest needs beyond the image's own files: temp file + database (2x the upload) and slack. */
export function qemuDiskNeeded(uploadBytes: number): number {
  return 2 * uploadBytes + 256 * MiB;
}

function requireImage(): VmImage {
  const image = findImage();
  if (!image) {
    throw new UsageError(
      `the VM image ${imageKey()} is not built in ${vmCacheRoot()}: run bun scripts/build-vm-image.ts (once per machine, as root, about 2 minutes)`,
    );
  }
  return image;
}

export const qemuBackend: Backend = {
  name: "qemu",
  async preflight(spec: EnvironmentSpec) {
    const problems: string[] = [];
    if (!onPath(QEMU)) problems.push(`${QEMU} is missing: apt-get install qemu-system-x86`);
    if (!onPath(QEMU_IMG)) problems.push(`${QEMU_IMG} is missing: apt-get install qemu-utils`);
    if (!onPath("ssh") || !onPath("scp")) problems.push("ssh and scp are missing: apt-get install openssh-client");
    const image = findImage();
    if (!image) problems.push(`the VM image ${imageKey()} is not built in ${vmCacheRoot()}: run bun scripts/build-vm-image.ts`);
    if (spec.ramMiB * MiB > totalmem() * 0.9) {
      problems.push(`--ram ${spec.ramMiB} is more than this host can give a VM (${formatBytes(totalmem())} in all): choose a smaller --ram`);
    }
    if (image && qemuDiskNeeded(spec.uploadBytes) > image.manifest.disk_bytes - 1024 * MiB) {
      problems.push(
        `a ${formatBytes(spec.uploadBytes)} upload needs ${formatBytes(qemuDiskNeeded(spec.uploadBytes))} in the VM, ` +
          `more than its ${formatBytes(image.manifest.disk_bytes)} disk holds: use a smaller --file-size`,
      );
    }
    if (problems.length > 0) throw new UsageError(problems.join("\n"));
    // Decided here (a KVM probe may take seconds) so that it is not timed as the test's set-up.
    await chooseAccel(image!);
    // The overlay takes what the guest writes: the temp file and the database.
    requireFreeSpace(
      spec.workDir,
      qemuDiskNeeded(spec.uploadBytes),
      "the VM's disk overlay (PicoShare's temp file and database)",
      "free some space or choose another folder with --work-dir DIR",
    );
  },
  async create(spec: EnvironmentSpec) {
    const image = requireImage();
    const accel = await chooseAccel(image);
    logAccel(accel);
    return QemuEnvironment.make(spec, image, accel, await qemuVersion());
  },
};
