// libvirtd in a network namespace of its own, for tests: libvirt's NAT
// network uses private addresses (192.168.121.0/24 for vagrant-libvirt), so
// the daemon, its dnsmasq, its bridge, its VMs and every client (virsh, ssh,
// vagrant) live in a namespace the test makes with `ip netns` and removes;
// nothing on the host is reached and nothing of the host's network changes.
// libvirtd also gets a private mount namespace with its own /etc/libvirt
// (empty: Debian's packaged files are all comments but for the `default`
// network, which a test must neither see nor delete), /run/libvirt,
// /var/lib/libvirt and /var/log/libvirt, so it reads none of the host's
// libvirt configuration and writes nothing outside the test's folder;
// /var/cache/libvirt is a folder the caller keeps (libvirt's probe of the
// qemu binary, slow under TCG, is cached there).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { start } from "../../lib/core/exec.ts";
import { $ } from "../../lib/core/shell.ts";
import type { Ran } from "./run.ts";

const LAUNCH = `
set -e
d=$1
mount --bind "$d/etc" /etc/libvirt
mkdir -p /run/libvirt
mount -t tmpfs -o mode=0755 tmpfs /run/libvirt
# /var/run is /run on Debian; elsewhere it needs its own private copy.
if [ ! -L /var/run ] && [ -d /var/run/libvirt ]; then mount -t tmpfs -o mode=0755 tmpfs /var/run/libvirt; fi
mount --bind "$d/lib" /var/lib/libvirt
mount --bind "$d/log" /var/log/libvirt
mount --bind "$2" /var/cache/libvirt
# A /dev/kvm that opens but runs no guest makes libvirt's probe of qemu wait
# for minutes, and libvirt then finds its cached probe (no KVM) stale at every
# start because /dev/kvm looks usable: when the caller knows KVM is unusable,
# /dev/kvm becomes a null device nobody may open, which libvirt reads as "no KVM".
if [ "$3" = hide-kvm ] && [ -e /dev/kvm ]; then
  mknod -m 000 "$d/no-kvm" c 1 3
  mount --bind "$d/no-kvm" /dev/kvm
fi
ip link set lo up
virtlogd -d -p "$d/virtlogd.pid"
exec libvirtd -p "$d/libvirtd.pid"
`;

/** Host folders the namespace needs that a new machine does not have. */
const HOST_RUN_DIRS = ["/run/netns", "/run/libvirt"];

function removeHostRunDirs(made: string[]): void {
  if (made.includes("/run/netns") && $({ nothrow: true }).sync`ip netns list`.stdout.trim() === "") {
    // ip netns bind-mounts /run/netns onto itself (shared propagation) the first time.
    while (readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((l) => l.split(" ")[4] === "/run/netns")) {
      if ($({ nothrow: true }).sync`umount /run/netns`.exitCode !== 0) break;
    }
  }
  for (const d of made) {
    try {
      rmdirSync(d);
    } catch {}
  }
}

export interface LibvirtNs {
  /** The network namespace's name (ip netns list). */
  name: string;
  /** Private folder: libvirt's state, logs, and anything the test puts there (world-readable: qemu runs as libvirt-qemu). */
  dir: string;
  pid: number;
  /** Runs argv in libvirtd's network and mount namespaces. */
  exec(argv: string[], opts?: { input?: string; timeoutMs?: number }): Promise<Ran>;
  virsh(...args: string[]): Promise<Ran>;
  /** Destroys every domain and network, ends every process of the namespace, removes it and the folder. */
  stop(): Promise<void>;
}

export function libvirtMissing(): string[] {
  const missing: string[] = [];
  for (const [path, pkg] of [
    ["/usr/sbin/libvirtd", "libvirt-daemon-system"],
    ["/usr/bin/virsh", "libvirt-clients"],
    ["/usr/sbin/dnsmasq", "dnsmasq-base"],
    ["/usr/sbin/iptables", "iptables"],
    ["/usr/bin/nsenter", "util-linux"],
  ]) {
    if (!existsSync(path)) missing.push(`${path} is missing: apt-get install ${pkg}`);
  }
  return missing;
}


/** Processes in network namespace `name`. */
function nsPids(name: string): number[] {
  const r = $({ nothrow: true }).sync`ip netns pids ${name}`;
  return r.exitCode === 0 ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
}

export async function startLibvirtNs(base: string, cacheDir: string, opts: { hideKvm?: boolean } = {}): Promise<LibvirtNs> {
  mkdirSync(cacheDir, { recursive: true });
  // Made on the host by the first `ip netns add` and by the launch's mount
  // point: removed again at stop when this helper made them.
  const madeHere = HOST_RUN_DIRS.filter((d) => !existsSync(d));
  const name = `pperf-${process.pid}-${randomBytes(3).toString("hex")}`;
  const dir = mkdtempSync(join(base, "libvirt-"));
  chmodSync(dir, 0o755);
  for (const sub of ["etc", "lib/qemu", "lib/images", "lib/dnsmasq", "lib/network", "log/qemu"]) mkdirSync(join(dir, sub), { recursive: true });
  const added = $({ nothrow: true }).sync`ip netns add ${name}`;
  if (added.exitCode !== 0) throw new Error(`ip netns add ${name}: ${added.stderr.trim()}`);
  const child = start(["ip", "netns", "exec", name, "unshare", "-m", "--propagation", "private", "sh", "-c", LAUNCH, "sh", dir, cacheDir, opts.hideKvm ? "hide-kvm" : ""], {
    stdout: { file: join(dir, "libvirtd.log"), mode: 0o644 },
  });
  const pid = child.pid!;
  const exec = async (argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<Ran> => {
    const r = await $({ input: opts.input, timeout: opts.timeoutMs ?? 120_000, grace: 0, nothrow: true })`nsenter -t ${pid} -m -n ${argv}`;
    return { code: r.exitCode, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  };
  const virsh = (...args: string[]) => exec(["virsh", "-q", "-c", "qemu:///system", ...args]);
  let stopped = false;
  const ns: LibvirtNs = {
    name,
    dir,
    pid,
    exec,
    virsh,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.running()) {
        for (const d of (await virsh("list", "--all", "--name")).stdout.split("\n").filter(Boolean)) {
          await virsh("destroy", d);
          await virsh("undefine", d, "--nvram");
        }
        for (const n of (await virsh("net-list", "--all", "--name")).stdout.split("\n").filter(Boolean)) {
          await virsh("net-destroy", n);
          await virsh("net-undefine", n);
        }
      }
      // Everything still in the namespace was started by this helper.
      for (let round = 0; round < 50; round++) {
        const pids = nsPids(name);
        if (pids.length === 0) break;
        for (const p of pids) {
          try {
            process.kill(p, round < 10 ? "SIGTERM" : "SIGKILL");
          } catch {}
        }
        await Bun.sleep(100);
      }
      $({ nothrow: true }).sync`ip netns del ${name}`;
      rmSync(dir, { recursive: true, force: true });
      removeHostRunDirs(madeHere);
    },
  };
  // Up when virsh gets an answer.
  const end = Date.now() + 30_000;
  for (;;) {
    if (!child.running()) {
      const log = readFileSync(join(dir, "libvirtd.log"), "utf8").trim().split("\n").slice(-3).join(" | ");
      await ns.stop();
      throw new Error(`libvirtd ended at start-up: ${log}`);
    }
    if ((await virsh("version")).code === 0) return ns;
    if (Date.now() > end) {
      await ns.stop();
      throw new Error("libvirtd did not answer within 30 s");
    }
    await Bun.sleep(200);
  }
}
