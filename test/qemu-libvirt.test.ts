// The Vagrant box made by scripts/build-vm-image.ts, booted by a real
// libvirtd (the qemu driver: KVM where it works, TCG here) the way
// vagrant-libvirt boots it: the box's disk as a copy-on-write volume, direct
// kernel boot with the box's kernel and initrd, one NIC on vagrant-libvirt's
// NAT network (192.168.121.0/24, DHCP from libvirt's dnsmasq). libvirtd,
// its network and the VM live in a network namespace the test makes and
// removes; the guest is reached from inside it only.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findImage, vmCacheRoot, type VmImage } from "../lib/vm-image.ts";
import { chooseAccel } from "../lib/qemu-vm.ts";
import { runScript } from "./helpers/run.ts";
import { VAGRANT_LIBVIRT_NETWORK, libvirtMissing, startLibvirtNs, type LibvirtNs } from "./helpers/libvirt-netns.ts";

setDefaultTimeout(600_000);

let root: string;
let image: VmImage;
let ns: LibvirtNs | null = null;

beforeAll(async () => {
  const missing = libvirtMissing();
  if (missing.length) throw new Error(missing.join("; "));
  const built = await runScript("build-vm-image", []);
  expect(built.code).toBe(0);
  image = findImage()!;
  root = mkdtempSync(join(tmpdir(), "qemu-libvirt-spec-"));
  chmodSync(root, 0o755);
}, 900_000);

afterAll(async () => {
  await ns?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

function ipNetnsList(): string {
  return spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout;
}

test("the box boots under libvirt in a private network namespace: DHCP, key login as perf with sudo, the host out of reach", async () => {
  // The box as `vagrant box add` would unpack it.
  const box = join(root, "box");
  spawnSync("mkdir", ["-p", box]);
  const untar = spawnSync("tar", ["-C", box, "-xf", image.boxFile], { encoding: "utf8" });
  expect(untar.status).toBe(0);
  const metadata = JSON.parse(readFileSync(join(box, "metadata.json"), "utf8"));
  expect(metadata).toMatchObject({ provider: "libvirt", format: "qcow2" });
  const vagrantfile = readFileSync(join(box, "Vagrantfile"), "utf8");
  const cmdline = /libvirt\.cmd_line = "([^"]+)"/.exec(vagrantfile)![1];

  const accel = (await chooseAccel(image)).accel;
  const tNs = performance.now();
  ns = await startLibvirtNs(root, join(vmCacheRoot(), "libvirt-cache"), { hideKvm: accel !== "kvm" });
  const nsSeconds = (performance.now() - tNs) / 1000;
  const disk = join(ns.dir, "lib/images/picoshare-perf_default.img");
  const mk = spawnSync("qemu-img", ["create", "-q", "-f", "qcow2", "-b", join(box, "box.img"), "-F", "qcow2", disk], { encoding: "utf8" });
  expect(mk.status).toBe(0);
  const consoleLog = join(ns.dir, "console.log");
  const domain = `<domain type='${accel === "kvm" ? "kvm" : "qemu"}'>
  <name>picoshare-perf_default</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${join(box, "vmlinuz")}</kernel>
    <initrd>${join(box, "initrd.img")}</initrd>
    <cmdline>${cmdline}</cmdline>
  </os>
  <on_reboot>destroy</on_reboot>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <source network='vagrant-libvirt'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'><source path='${consoleLog}'/><target port='0'/></serial>
  </devices>
</domain>
`;
  writeFileSync(join(ns.dir, "network.xml"), VAGRANT_LIBVIRT_NETWORK);
  writeFileSync(join(ns.dir, "domain.xml"), domain);
  for (const args of [["net-define", join(ns.dir, "network.xml")], ["net-start", "vagrant-libvirt"], ["define", join(ns.dir, "domain.xml")], ["start", "picoshare-perf_default"]]) {
    const r = await ns.virsh(...args);
    if (r.code !== 0) throw new Error(`virsh ${args.join(" ")}: ${r.stderr.trim()}`);
  }
  const startSeconds = (performance.now() - tNs) / 1000 - nsSeconds;
  const t0 = performance.now();
  let ip = "";
  while (!ip && performance.now() - t0 < 300_000) {
    ip = /192\.168\.121\.\d+/.exec((await ns.virsh("net-dhcp-leases", "vagrant-libvirt")).stdout)?.[0] ?? "";
    if (!ip) await Bun.sleep(1000);
  }
  expect(ip).not.toBe("");
  const leaseSeconds = (performance.now() - t0) / 1000;

  // A listener on the host's own loopback: the namespace must not reach it.
  const server = createServer((s) => s.end("host\n"));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const hostPort = (server.address() as { port: number }).port;
  try {
    const ssh = [
      "ssh", "-i", image.sshKey, "-o", "IdentitiesOnly=yes", "-o", `UserKnownHostsFile=${image.knownHosts}`,
      "-o", `HostKeyAlias=${image.hostKeyAlias}`, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
      "-o", "ConnectTimeout=5", `${image.user}@${ip}`,
    ];
    let out = null as Awaited<ReturnType<LibvirtNs["exec"]>> | null;
    for (let i = 0; i < 60; i++) {
      out = await ns.exec([...ssh, "id -un; sudo -n id -u; ip -4 route show default; systemctl is-system-running || true"], { timeoutMs: 30_000 });
      if (out.code === 0) break;
      await Bun.sleep(2000);
    }
    if (out!.code !== 0) console.error(out!.stderr, readFileSync(consoleLog, "utf8").slice(-2000));
    expect(out!.code).toBe(0);
    const sshSeconds = (performance.now() - t0) / 1000;
    const lines = out!.stdout.trim().split("\n");
    expect(lines[0]).toBe("perf");
    expect(lines[1]).toBe("0");
    expect(lines[2]).toContain("via 192.168.121.1");
    // Passwords are refused outright: only the key gets in.
    const pw = await ns.exec(["ssh", "-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no", "-o", `UserKnownHostsFile=${image.knownHosts}`, "-o", `HostKeyAlias=${image.hostKeyAlias}`, `perf@${ip}`, "true"]);
    expect(pw.code).toBe(255);
    expect(pw.stderr).toMatch(/Permission denied \(publickey\)/);
    // From the namespace, the host's loopback listener is not there.
    const probe = await ns.exec(["bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${hostPort}`], { timeoutMs: 10_000 });
    expect(probe.code).not.toBe(0);
    console.log(
      `libvirt (${accel}): libvirtd up in ${nsSeconds.toFixed(1)} s, define + start ${startSeconds.toFixed(1)} s, ` +
        `DHCP lease ${leaseSeconds.toFixed(1)} s and ssh ${sshSeconds.toFixed(1)} s after the start`,
    );
  } finally {
    server.close();
  }

  const name = ns.name;
  await ns.stop();
  ns = null;
  expect(ipNetnsList()).not.toContain(name);
  expect(existsSync(disk)).toBe(false);
});
