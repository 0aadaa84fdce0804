// The vagrant backend against the real thing: Vagrant and vagrant-libvirt
// from Debian, `vagrant up --provider libvirt` of the box that
// scripts/build-vm-image.ts makes, under a real libvirtd (the qemu driver:
// TCG here, KVM where it works). libvirt's NAT network uses private
// addresses, so libvirtd, its network, vagrant and the harness all run in a
// network namespace the tests make (ip netns) and remove; the harness reaches
// the VM over that network, and nothing on the host is reached.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { chooseAccel } from "../lib/vm/qemu.ts";
import { findImage, vmCacheRoot, type VmImage } from "../lib/vm/image/index.ts";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import { ROOT } from "../lib/core/paths.ts";
import { $ } from "../lib/core/shell.ts";
import { STATE_FILE } from "../lib/backends/vagrant/config.ts";
import { readVmState } from "../lib/backends/vagrant/state.ts";
import { startScript, waitFor, type Ran } from "./helpers/run.ts";
import { interruptRun, newVmCase, readResult, vmRunArgs, type VmCase } from "./helpers/vm-case.ts";
import { libvirtMissing, startLibvirtNs, type LibvirtNs } from "./helpers/libvirt-netns.ts";
import { CHECKSUMMED, hostState, hostStateChanges, type HostState } from "./helpers/host-state.ts";

setDefaultTimeout(600_000);

const BOX = "picoshare-perf";
let root: string;
let files: string;
let picoshare: string;
let image: VmImage;
let ns: LibvirtNs | null = null;
/** VAGRANT_HOME (the box) and VAGRANT_CWD (a copy of the project's Vagrantfile). */
let home: string;
let folder: string;
let driver: "kvm" | "qemu";
const timings: string[] = [];
/** The host as these tests found it (libvirt's configuration and state byte for byte). */
let hostBefore: HostState;

beforeAll(async () => {
  hostBefore = hostState();
  const missing = libvirtMissing();
  if (!Bun.which("vagrant")) missing.push("vagrant is missing: apt-get install vagrant vagrant-libvirt");
  if (missing.length) throw new Error(missing.join("; "));
  const t0 = performance.now();
  const built = await startScript("build-vm-image", []).done;
  if (built.code !== 0) console.error(built.stderr);
  expect(built.code).toBe(0);
  image = findImage()!;
  // Provisioned before entering the namespace, where nothing outside is reachable.
  picoshare = (await resolvePicoShare()).path;
  root = mkdtempSync(join(tmpdir(), "vagrant-libvirt-spec-"));
  // qemu runs as libvirt-qemu: it must reach the box's kernel under VAGRANT_HOME.
  chmodSync(root, 0o755);
  files = join(root, "files");
  mkdirSync(files);
  for (const [label, bytes] of [["8M", 8 * MiB], ["64M", 64 * MiB]] as const) await writeTestFile(testFilePath(label, files), bytes);
  home = join(root, "vagrant-home");
  folder = join(root, "vagrant");
  mkdirSync(home);
  mkdirSync(folder);
  copyFileSync(join(ROOT, "Vagrantfile"), join(folder, "Vagrantfile"));

  const accel = (await chooseAccel(image)).accel;
  driver = accel === "kvm" ? "kvm" : "qemu";
  ns = await startLibvirtNs(root, join(vmCacheRoot(), "libvirt-cache"), { hideKvm: accel !== "kvm" });
  const added = await ns.exec(["env", `VAGRANT_HOME=${home}`, "vagrant", "box", "add", "--name", BOX, image.boxFile], { timeoutMs: 300_000 });
  if (added.code !== 0) throw new Error(`vagrant box add: ${added.stderr.trim() || added.stdout.trim().slice(-300)}`);
  timings.push(`image, libvirtd and box add ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}, 900_000);

afterAll(async () => {
  await ns?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
  if (timings.length) console.log(`vagrant (libvirt ${driver}) tests: ${timings.join("; ")}`);
});

type Case = VmCase;

const newCase = () => newVmCase(root);

/** run-test --backend vagrant inside the namespace, with the box and driver of these tests. */
function runTest(c: Case, ...extra: string[]) {
  const args = vmRunArgs("vagrant", c, files, picoshare, ...extra);
  const env = { TMPDIR: c.tmp, VAGRANT_HOME: home, VAGRANT_CWD: folder, VM_BOX: BOX, VM_LIBVIRT_DRIVER: driver, PERF_VAGRANT_UP_TIMEOUT: "300" };
  return startScript("run-test", args, env, ["nsenter", "-t", String(ns!.pid), "-m", "-n", `--wd=${ROOT}`]);
}

function lines(text: string): string[] {
  return text.split("\n").map((l) => l.trim()).filter(Boolean);
}

/** Processes of the namespace by name: libvirtd and virtlogd, plus qemu and dnsmasq while a VM is up. */
function nsCommands(): string[] {
  const pids = lines($({ nothrow: true }).sync`ip netns pids ${ns!.name}`.stdout);
  return pids.map((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, "utf8").trim();
    } catch {
      return "";
    }
  }).filter(Boolean);
}

/** No domain, network or disk (but the box's base volume), no qemu or dnsmasq, no state: what every run must leave. */
async function expectNothingLeft(c: Case): Promise<void> {
  await waitFor("qemu to end", () => !nsCommands().some((n) => n.startsWith("qemu")), 10_000).catch(() => {});
  expect(nsCommands().filter((n) => n.startsWith("qemu"))).toEqual([]);
  expect(lines((await ns!.virsh("list", "--all", "--name")).stdout)).toEqual([]);
  // vagrant-libvirt removes its network with the last domain on it.
  expect(lines((await ns!.virsh("net-list", "--all", "--name")).stdout)).toEqual([]);
  expect(nsCommands().filter((n) => n === "dnsmasq")).toEqual([]);
  const volumes = lines((await ns!.virsh("vol-list", "default")).stdout).map((l) => l.split(/\s+/)[0]);
  expect(volumes.filter((v) => !v.includes("_vagrant_box_image_"))).toEqual([]);
  expect(existsSync(join(folder, ".vagrant", STATE_FILE))).toBe(false);
  expect(existsSync(join(folder, ".vagrant", "machines", "default", "libvirt", "id"))).toBe(false);
  expect(readdirSync(c.work)).toEqual([]);
  expect(readdirSync(c.tmp).filter((n) => n.startsWith("picoshare-perf-ssh-"))).toEqual([]);
}

/** ssh to the VM a run left up, with the ssh-config the harness recorded. */
async function sshKept(command: string, extra: string[] = []): Promise<Ran> {
  const state = readVmState(folder);
  if (!state?.ssh_config) throw new Error("no VM recorded in the Vagrant folder");
  const config = join(root, "kept-ssh-config");
  writeFileSync(config, state.ssh_config);
  return ns!.exec(["ssh", "-F", config, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", ...extra, "default", command], { timeoutMs: 60_000 });
}

test("an 8M upload through a real `vagrant up --provider libvirt` passes; the VM, its disk and its network are gone after", async () => {
  const c = newCase();
  const t0 = performance.now();
  const ran = await runTest(c, "--ram", "512", "--file-size", "8M", "--verify").done;
  if (ran.code !== 0) console.error(ran.stderr);
  expect(ran.code).toBe(0);
  const r = readResult(ran);
  expect(r).toMatchObject({ backend: "vagrant", exit_reason: "success", success: true, verified: true, ram_mb: 512, http_status: "200" });
  const s = r.backend_settings;
  expect(s).toMatchObject({ provider: "libvirt", libvirt_driver: driver, box: BOX, vm_memory_mib: 512, vm_cpus: 1, vm_reused: false, start_method: "systemd-run", oom_source: "dmesg" });
  expect(s.vagrant_version).toMatch(/^\d+\.\d+\.\d+$/);
  expect(s.ssh_target).toMatch(/^perf@192\.168\.121\.\d+:22$/);
  expect(s.vm_boot_seconds).toBeGreaterThan(0);
  // The whole VM's memory: more than nothing, less than its RAM.
  expect(s.guest_mem_total_bytes).toBeGreaterThan(256 * MiB);
  expect(s.guest_mem_total_bytes).toBeLessThan(512 * MiB);
  expect(r.initial_memory_bytes).toBeGreaterThan(10 * MiB);
  expect(r.peak_memory_bytes).toBeGreaterThanOrEqual(r.initial_memory_bytes);
  expect(r.peak_memory_bytes).toBeLessThan(s.guest_mem_total_bytes);
  expect(ran.stderr).toMatch(new RegExp(`Vagrant: vagrant \\S+, provider libvirt \\(vagrant-libvirt \\S+\\), libvirt driver ${driver}`));
  expect(ran.stderr).toContain("Starting a VM: vagrant up --provider libvirt");
  // The domain was libvirt's, of the asked type: vagrant's own log of the run says so.
  const vagrantLog = readFileSync(join(folder, ".vagrant", "picoshare-perf-vagrant.log"), "utf8");
  expect(vagrantLog).toMatch(new RegExp(`Domain type:\\s+${driver}`));
  expect(vagrantLog).toMatch(/Memory:\s+512M/);
  expect(vagrantLog).toMatch(/Cpus:\s+1\n/);
  expect(vagrantLog).toContain("$ vagrant destroy -f");
  await expectNothingLeft(c);
  timings.push(
    `8M: ${((performance.now() - t0) / 1000).toFixed(1)} s end to end, vagrant up ${s.vm_boot_seconds} s, ` +
      `phases ${Object.entries(r.phases as Record<string, number>).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}`,
  );
});

test("--reuse-vm keeps the VM for the next test; the guest takes the key only, as perf with sudo, and cannot reach the host", async () => {
  const c = newCase();
  const first = await runTest(c, "--ram", "512", "--file-size", "8M", "--reuse-vm").done;
  if (first.code !== 0) console.error(first.stderr);
  expect(first.code).toBe(0);
  expect(readResult(first).backend_settings.vm_reused).toBe(false);
  const t0 = performance.now();
  const second = await runTest(c, "--ram", "512", "--file-size", "8M", "--reuse-vm").done;
  expect(second.code).toBe(0);
  const r = readResult(second);
  expect(r.backend_settings.vm_reused).toBe(true);
  expect(second.stderr).toContain("Reusing the VM kept by an earlier --reuse-vm run");
  expect(second.stderr).not.toContain("Starting a VM");
  expect(lines((await ns!.virsh("list", "--name")).stdout)).toHaveLength(1);
  timings.push(`a reused VM's test ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // A listener on every address of the host: neither the namespace nor the guest may reach it.
  const server = createServer((s) => s.end("host\n"));
  await new Promise<void>((r) => server.listen(0, "0.0.0.0", r));
  const hostPort = (server.address() as { port: number }).port;
  const hostAddresses = ["127.0.0.1", ...Object.values(networkInterfaces()).flat().filter((a) => a && a.family === "IPv4" && !a.internal).map((a) => a!.address)];
  try {
    const who = await sshKept("id -un; sudo -n id -u; ip -4 route show default");
    expect(who.code).toBe(0);
    expect(lines(who.stdout)[0]).toBe("perf");
    expect(lines(who.stdout)[1]).toBe("0");
    expect(lines(who.stdout)[2]).toContain("via 192.168.121.1");
    const password = await sshKept("true", ["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"]);
    expect(password.code).toBe(255);
    expect(password.stderr).toMatch(/Permission denied \(publickey\)/);
    const probe = hostAddresses.map((a) => `timeout 3 bash -c 'exec 3<>/dev/tcp/${a}/${hostPort}' 2>/dev/null && echo "reached ${a}"`).join("; ");
    const fromNs = await ns!.exec(["bash", "-c", `${probe}; true`], { timeoutMs: 60_000 });
    expect(fromNs.stdout).not.toContain("reached");
    const fromGuest = await sshKept(`${probe}; echo probed`);
    expect(fromGuest.stdout.trim()).toBe("probed");
  } finally {
    server.close();
  }

  // The way to end a kept VM by hand that docs/backends.md gives.
  const destroyed = await ns!.exec(["env", `VAGRANT_HOME=${home}`, `VAGRANT_CWD=${folder}`, "vagrant", "destroy", "-f"], { timeoutMs: 300_000 });
  expect(destroyed.code).toBe(0);
  rmSync(join(folder, ".vagrant", STATE_FILE));
  await expectNothingLeft(c);
});

test("Ctrl-C during the boot: exit 130, no domain, disk, qemu or state left, no result", async () => {
  const c = newCase();
  const run = runTest(c, "--ram", "512", "--file-size", "8M");
  await waitFor("vagrant up", () => run.stderr().includes("Starting a VM: vagrant up"), 120_000);
  const running = async () => lines((await ns!.virsh("list", "--state-running", "--name")).stdout).length > 0;
  const end = Date.now() + 120_000;
  while (!(await running()) && Date.now() < end) await Bun.sleep(200);
  expect(await running()).toBe(true);
  await Bun.sleep(1000);
  await interruptRun(run, c);
  await expectNothingLeft(c);
});

test("Ctrl-C during the upload: exit 130, no domain, disk, qemu or state left", async () => {
  const c = newCase();
  const run = runTest(c, "--ram", "512", "--file-size", "64M");
  await waitFor("PicoShare to start in the VM", () => run.stderr().includes("PicoShare started in the VM"), 300_000);
  // Under way when Go's multipart reader has spilled to the guest folder's tmp/.
  const end = Date.now() + 60_000;
  let spilled = "";
  while (!spilled && Date.now() < end) {
    const state = readVmState(folder);
    if (state) spilled = (await sshKept(`ls -A ${state.guest_dir}/tmp`)).stdout.trim();
    if (!spilled) await Bun.sleep(250);
  }
  expect(spilled).not.toBe("");
  await interruptRun(run, c);
  await expectNothingLeft(c);
});

test("the namespace goes with libvirtd: no netns, no process, no folder; the host's libvirt files are as they were", async () => {
  const name = ns!.name;
  const dir = ns!.dir;
  await ns!.stop();
  ns = null;
  expect($({ nothrow: true }).sync`ip netns list`.stdout).not.toContain(name);
  expect(existsSync(dir)).toBe(false);
  const after = hostState();
  // The packaged `default` network, where the host has one, is still there.
  expect(after["/etc/libvirt"]).toEqual(hostBefore["/etc/libvirt"]);
  expect(after["/var/lib/libvirt"]).toEqual(hostBefore["/var/lib/libvirt"]);
  expect(hostStateChanges(hostBefore, after)).toEqual([]);
  for (const root of CHECKSUMMED) timings.push(`${root}: ${after[root].length} entries unchanged`);
});
