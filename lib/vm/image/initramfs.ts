// The fast initramfs of the qemu backend and the box: a few modules, busybox
// and an /init that mounts the virtio root and hands over to systemd, packed
// by Debian's cpio in the "newc" format the kernel unpacks.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { $ } from "../../core/shell.ts";
import { FAST_INITRD_MODULES } from "./recipe.ts";

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

export interface ArchiveEntry {
  name: string;
  mode: number;
  data?: Uint8Array;
  /** A device node's major and minor. */
  rdev?: [number, number];
}

/**
 * How cpio packs it (part of the content key): entries in the order given,
 * owned by root, inodes numbered in that order and no host device numbers
 * (the two halves of --reproducible, named so that every cpio version means
 * the same), in blocks of 4 bytes: newc's own alignment, so that nothing pads
 * the archive past its trailer.
 */
export const CPIO_ARGV = ["cpio", "--create", "--format=newc", "--owner=0:0", "--ignore-devno", "--renumber-inodes", "--io-size=4", "--quiet"];

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

/** Makes one entry in the staging folder (its parent comes earlier in the list). */
function stage(path: string, e: ArchiveEntry): void {
  const type = e.mode & S_IFMT;
  if (type === S_IFDIR) mkdirSync(path);
  else if (type === S_IFREG) writeFileSync(path, e.data ?? new Uint8Array());
  else if (type === S_IFCHR || type === S_IFBLK) {
    const [major, minor] = e.rdev ?? [0, 0];
    const r = $({ nothrow: true }).sync`mknod ${path} ${type === S_IFCHR ? "c" : "b"} ${major} ${minor}`;
    if (r.exitCode !== 0) throw new Error(`mknod ${e.name} failed (${r.signal ?? `exit ${r.exitCode}`}): ${r.stderr.trim() || "it needs root"}`);
  } else throw new Error(`${e.name}: only folders, files and device nodes go into the initramfs`);
  chmodSync(path, e.mode & 0o7777);
}

/**
 * A cpio archive in the "newc" format the kernel unpacks as its initramfs:
 * the entries made in a temporary folder (a device node needs root), packed by cpio.
 */
export function newcArchive(entries: ArchiveEntry[]): Buffer {
  const dir = mkdtempSync(join(tmpdir(), "picoshare-perf-initramfs-"));
  try {
    const tree = join(dir, "tree");
    const archive = join(dir, "archive.cpio");
    mkdirSync(tree);
    for (const e of entries) stage(join(tree, e.name), e);
    // Times of 0 once everything is made (making an entry touches its folder): the same inputs, the same archive.
    for (const e of entries) utimesSync(join(tree, e.name), 0, 0);
    const names = entries.map((e) => `${e.name}\n`).join("");
    const r = $({ cwd: tree, input: names, nothrow: true }).sync`${CPIO_ARGV} ${`--file=${archive}`}`;
    if (r.exitCode !== 0) throw new Error(`cpio failed (${r.signal ?? `exit ${r.exitCode}`}): ${r.stderr.trim()}`);
    return readFileSync(archive);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The fast initramfs's /init: the whole boot path up to systemd (no udev, no module probing). */
export function fastInitScript(modNames: string[]): string {
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
export const UDHCPC_SCRIPT = `#!/bin/busybox sh
B=/bin/busybox
case "$1" in
  bound|renew)
    $B ifconfig "$interface" "$ip" netmask "\${subnet:-255.255.255.0}" up
    for r in $router; do $B route add default gw "$r" dev "$interface"; break; done
    ;;
esac
exit 0
`;

export function fastInitramfs(rootfs: string, kernelVersion: string): Buffer {
  const modDir = join(rootfs, "lib/modules", kernelVersion);
  const order = moduleLoadOrder(readFileSync(join(modDir, "modules.dep"), "utf8"), FAST_INITRD_MODULES);
  const busybox = join(rootfs, "bin/busybox");
  if (!existsSync(busybox)) throw new Error("busybox-static is not installed in the image");
  const modNames = order.map((p) => p.split("/").pop()!);
  const init = fastInitScript(modNames);
  const entries: ArchiveEntry[] = [
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
