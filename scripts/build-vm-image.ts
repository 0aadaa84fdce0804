#!/usr/bin/env bun
// Builds the test VM image (Debian, debootstrap) once per content key, into
// a cache outside the repository clone. stdout: the image's folder, alone.
import { parseCli } from "../lib/core/cli.ts";
import { FLAG } from "../lib/core/flags.ts";
import { flagSpec, flagsOf, switchFlag, usageText, type Flag } from "../lib/core/flag-kit.ts";
import { runMain } from "../lib/core/main.ts";
import { log, success } from "../lib/core/log.ts";
import { EXIT } from "../lib/core/errors.ts";
import { ensureImage, findImage, imageKey, pruneImages, vmCacheRoot, IMAGE_PACKAGES, IMAGE_SUITE } from "../lib/vm/image/index.ts";

const CHECK = switchFlag("check", "Build nothing: print the folder and exit 0 when the image exists, exit 1 when it does not");
const PRUNE = switchFlag("prune",
  "Also remove the images of other content keys (older builds) from the cache, except one being built right now");
const GROUPS: Array<[string, Flag<any>[]]> = [["Options:", [FLAG.force, CHECK, PRUNE]]];

const USAGE = usageText(
  `Usage: bun scripts/build-vm-image.ts [OPTIONS]

Builds the VM image the qemu and vagrant backends boot: Debian ${IMAGE_SUITE} made with
debootstrap from Debian packages only (minbase + ${IMAGE_PACKAGES.join(", ")}), with sshd,
a user "perf" with sudo and a key made for this image, DHCP networking, and no
password logins. Outputs a raw disk image plus kernel and initrd (direct kernel
boot), and a Vagrant box for the libvirt provider made from the same image.

The image is cached by a content key (package list, configuration, script
version) in $PERF_VM_CACHE (default /var/cache/picoshare-perf/vm), outside the
repository, so it is built once per machine; a second build of the same key
waits for the first. Needs root, debootstrap, e2fsprogs, qemu-utils, cpio,
xz-utils and openssh-client, and the Debian mirror ($PERF_VM_MIRROR, default
http://deb.debian.org/debian). About 2-4 minutes.

stdout: the image's folder, alone. Exit status: 0 done (or already built),
1 the build failed, 2 a missing prerequisite.
`,
  GROUPS,
  `Examples:
  bun scripts/build-vm-image.ts
  PERF_VM_CACHE=$HOME/.cache/picoshare-perf/vm bun scripts/build-vm-image.ts
  bun scripts/build-vm-image.ts --check
  bun scripts/build-vm-image.ts --prune
`,
);

await runMain(async () => {
  const { values: v } = parseCli(flagSpec(flagsOf(GROUPS)), USAGE);
  if (v.check) {
    const found = findImage();
    if (found) process.stdout.write(`${found.dir}\n`);
    else log(`VM image ${imageKey()} is not built in ${vmCacheRoot()}: run bun scripts/build-vm-image.ts`);
    return found ? EXIT.ok : EXIT.failed;
  }
  const t0 = performance.now();
  const { image, built } = await ensureImage({ force: Boolean(v.force) });
  if (built) {
    success(`VM image ${image.key} built in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${image.dir}`);
  } else {
    log(`VM image ${image.key} is already built (${image.manifest.built_at}, in ${image.manifest.build_seconds} s): ${image.dir}`);
  }
  log(`  disk:   ${image.disk} (raw, base of every qemu test; never written to)`);
  log(`  kernel: ${image.kernel} (Linux ${image.manifest.kernel_version}), initrd: ${image.initrd}`);
  log(`  box:    ${image.boxFile} (vagrant box add --name picoshare-perf ${image.boxFile})`);
  if (v.prune) {
    const { removed, kept } = pruneImages();
    log(`Pruned ${removed.length} older image(s) from ${vmCacheRoot()}${removed.length ? `: ${removed.join(", ")}` : ""}`);
    if (kept.length) log(`Kept ${kept.join(", ")}: being built right now`);
  }
  process.stdout.write(`${image.dir}\n`);
  return EXIT.ok;
}, USAGE);
