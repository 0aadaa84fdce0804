// The content key: what goes into the image decides its name, and so its
// folder in the cache.
import { createHash } from "node:crypto";
import { boxVagrantfile } from "./box.ts";
import { CPIO_ARGV, UDHCPC_SCRIPT, fastInitScript } from "./initramfs.ts";
import {
  BLACKLISTED_MODULES, CHROOT_STEPS, FAST_CMDLINE_EXTRA, FAST_INITRD_MODULES, IMAGE_DISK_BYTES, IMAGE_MIRROR,
  IMAGE_PACKAGES, IMAGE_SCRIPT_VERSION, IMAGE_SUITE, IMAGE_USER, KERNEL_CMDLINE, imageFiles,
} from "./recipe.ts";

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
      fastArchive: CPIO_ARGV,
      blacklist: BLACKLISTED_MODULES,
      files: imageFiles(),
      steps: CHROOT_STEPS,
      box: boxVagrantfile("KEY"),
    }),
  );
  return `${IMAGE_SUITE}-${h.digest("hex").slice(0, 16)}`;
}
