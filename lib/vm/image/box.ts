// The Vagrant box for the libvirt provider: the image's disk as qcow2, the
// fast boot pair and a Vagrantfile that boots it directly, in one tar.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GiB } from "../../core/sizes.ts";
import { FAST_CMDLINE_EXTRA, IMAGE_DISK_BYTES, IMAGE_USER, KERNEL_CMDLINE } from "./recipe.ts";
import { runStep, type Step } from "./step.ts";

/** Makes picoshare-perf.box in `tmp` from its disk.img, vmlinux and initrd-fast.img; `keyPath` is the key's final place. */
export async function makeBox(step: Step, tmp: string, keyPath: string): Promise<void> {
  const box = join(tmp, "box");
  mkdirSync(box);
  await runStep(step, ["qemu-img", "convert", "-O", "qcow2", "-f", "raw", join(tmp, "disk.img"), join(box, "box.img")]);
  // The fast pair, as the qemu backend boots it.
  await runStep(step, ["cp", join(tmp, "vmlinux"), join(box, "vmlinux")]);
  await runStep(step, ["cp", join(tmp, "initrd-fast.img"), join(box, "initrd-fast.img")]);
  writeFileSync(
    join(box, "metadata.json"),
    `${JSON.stringify({ provider: "libvirt", format: "qcow2", virtual_size: IMAGE_DISK_BYTES / GiB }, null, 2)}\n`,
  );
  writeFileSync(join(box, "Vagrantfile"), boxVagrantfile(keyPath));
  await runStep(step, ["tar", "-C", box, "-cf", join(tmp, "picoshare-perf.box"), "metadata.json", "Vagrantfile", "box.img", "vmlinux", "initrd-fast.img"]);
  rmSync(box, { recursive: true, force: true });
}

/**
 * The box's own Vagrantfile: direct kernel boot of the fast pair (the disk
 * has no boot loader), the image's user and key, no synced folder, and the
 * guest named (Vagrant's detection costs seconds of ssh round trips under TCG).
 */
export function boxVagrantfile(keyPath: string): string {
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
