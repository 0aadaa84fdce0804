// The qemu backend for real: the image built by scripts/build-vm-image.ts
// (or reused from its cache), VMs booted with qemu (KVM where it works, TCG
// here), real uploads, a real OOM kill in the guest, and Ctrl-C during the
// boot and during the upload. Every test checks that nothing is left behind:
// no qemu process, no overlay, no ssh control folder.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import { BUN, ROOT, scriptArgv } from "../lib/core/paths.ts";
import { $ } from "../lib/core/shell.ts";
import { runScript, startScript, waitFor, type Ran } from "./helpers/run.ts";
import { interruptRun, newVmCase, readResult, vmRunArgs, type VmCase } from "./helpers/vm-case.ts";
import { hostState, hostStateChanges, type HostState } from "./helpers/host-state.ts";

setDefaultTimeout(300_000);

let root: string;
let files: string;
let picoshare: string;
let imageDir: string;
const timings: string[] = [];
let hostBefore: HostState;

beforeAll(async () => {
  hostBefore = hostState();
  const t0 = performance.now();
  const built = await runScript("build-vm-image", []);
  if (built.code !== 0) console.error(built.stderr);
  expect(built.code).toBe(0);
  imageDir = built.stdout.trim();
  timings.push(`image: ${built.stderr.includes("already built") ? "reused" : "built"} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  picoshare = (await resolvePicoShare()).path;
  root = mkdtempSync(join(tmpdir(), "qemu-spec-"));
  files = join(root, "files");
  mkdirSync(files);
  for (const [label, bytes] of [["8M", 8 * MiB], ["64M", 64 * MiB]] as const) await writeTestFile(testFilePath(label, files), bytes);
}, 900_000);

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  if (timings.length) console.log(`qemu tests: ${timings.join("; ")}`);
});

type Case = VmCase;

const newCase = () => newVmCase(root);

function args(c: Case, ...extra: string[]): string[] {
  return vmRunArgs("qemu", c, files, picoshare, ...extra);
}

/** qemu processes a run-test with this pid started (qemu is named after it). */
function qemuOf(pid: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8");
      if (cmd.startsWith("qemu-system") && cmd.includes(`\0picoshare-perf-${pid}\0`)) found.push(Number(name));
    } catch {}
  }
  return found;
}

/** What a finished run left behind: processes, work-dir entries, ssh folders. */
async function expectNothingLeft(c: Case, pid: number): Promise<void> {
  // qemu is ended before run-test exits; give the kernel a moment to reap it.
  await waitFor("qemu to be gone", () => qemuOf(pid).length === 0, 5000).catch(() => {});
  expect(qemuOf(pid)).toEqual([]);
  expect(readdirSync(c.work)).toEqual([]);
  expect(readdirSync(c.tmp).filter((n) => n.startsWith("picoshare-perf-ssh-"))).toEqual([]);
}

function baseImageStamp(): string {
  const s = statSync(join(imageDir, "disk.img"));
  return `${s.size} ${s.mtimeMs}`;
}

describe("build-vm-image", () => {
  test("a second run reuses the cached image at once; the folder holds the image, the fast pair and the box", async () => {
    const t0 = performance.now();
    const again = await runScript("build-vm-image", []);
    const seconds = (performance.now() - t0) / 1000;
    expect(again.code).toBe(0);
    expect(again.stdout.trim()).toBe(imageDir);
    expect(again.stderr).toContain("is already built");
    expect(seconds).toBeLessThan(10);
    for (const f of ["disk.img", "vmlinuz", "initrd.img", "vmlinux", "initrd-fast.img", "known_hosts", "id_ed25519", "picoshare-perf.box", "manifest.json"]) {
      expect(existsSync(join(imageDir, f))).toBe(true);
    }
    // Outside the clone, named by its content key; no half-built folder beside it.
    expect(imageDir.startsWith(ROOT)).toBe(false);
    const manifest = JSON.parse(readFileSync(join(imageDir, "manifest.json"), "utf8"));
    expect(imageDir.endsWith(`/${manifest.key}`)).toBe(true);
    expect(readdirSync(join(imageDir, "..")).filter((n) => n.startsWith(".build-"))).toEqual([]);
    expect(statSync(join(imageDir, "id_ed25519")).mode & 0o777).toBe(0o600);
    const check = await runScript("build-vm-image", ["--check"]);
    expect(check.code).toBe(0);
    expect(check.stdout.trim()).toBe(imageDir);
  });

  test("the box is a libvirt box of the same image; the image allows key logins only", async () => {
    const list = (await $`tar -tf ${join(imageDir, "picoshare-perf.box")}`.nothrow()).stdout;
    expect(list.split("\n").filter(Boolean).sort()).toEqual(["Vagrantfile", "box.img", "initrd-fast.img", "metadata.json", "vmlinux"]);
    const sshd = (await $`debugfs -R ${"cat /etc/ssh/sshd_config.d/picoshare-perf.conf"} ${join(imageDir, "disk.img")}`.nothrow()).stdout;
    expect(sshd).toContain("PasswordAuthentication no");
    expect(sshd).toContain("KbdInteractiveAuthentication no");
    expect(sshd).toContain("PermitRootLogin no");
  });
});

describe("build-vm-image: the lock and an interrupted build", () => {
  test("a second build waits for the lock; Ctrl-C during a build leaves no half-built folder and no debootstrap", async () => {
    const cache = join(root, "lock-cache");
    mkdirSync(cache, { recursive: true });
    const key = imageDir.split("/").pop()!;
    // Another builder of the same key, as far as the lock can tell.
    const holder = spawn("flock", ["-x", join(cache, `.lock-${key}`), "sleep", "600"], { stdio: "ignore", detached: true });
    await waitFor("the lock file", () => existsSync(join(cache, `.lock-${key}`)));
    await Bun.sleep(200);
    const run = startScript("build-vm-image", [], { PERF_VM_CACHE: cache });
    await waitFor("the wait", () => run.stderr().includes("Another process is building VM image"), 30_000);
    expect(readdirSync(cache).filter((n) => n.startsWith(".build-"))).toEqual([]);
    process.kill(-holder.pid!, "SIGKILL"); // flock and its sleep, which holds the lock too
    await waitFor("the build to start", () => run.stderr().includes("installs Debian with debootstrap"), 30_000);
    await waitFor("its build folder", () => readdirSync(cache).some((n) => n.startsWith(`.build-${key}-`)), 10_000);
    await Bun.sleep(500);
    process.kill(run.pid, "SIGINT");
    const ran = await run.done;
    if (ran.code !== 130) console.error(ran.stderr);
    expect(ran.code).toBe(130);
    expect(readdirSync(cache).filter((n) => n.startsWith(".build-") || n === key)).toEqual([]);
    const debootstraps = readdirSync("/proc").filter((p) => {
      try {
        return /^\d+$/.test(p) && readFileSync(`/proc/${p}/cmdline`, "utf8").includes(`.build-${key}-${run.pid}`);
      } catch {
        return false;
      }
    });
    expect(debootstraps).toEqual([]);
    expect(readFileSync("/proc/self/mounts", "utf8")).not.toContain(cache);
  });
});

describe("run-test --backend qemu", () => {
  test("an 8M upload in a VM passes; boot, accelerator and guest memory are in the result; the base image is untouched", async () => {
    const c = newCase();
    const before = baseImageStamp();
    const run = startScript("run-test", args(c, "--ram", "512", "--file-size", "8M", "--verify"), { TMPDIR: c.tmp, GODEBUG: "madvdontneed=1" });
    const ran = await run.done;
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    const r = readResult(ran);
    expect(r).toMatchObject({ backend: "qemu", exit_reason: "success", success: true, verified: true, ram_mb: 512, http_status: "200" });
    const s = r.backend_settings;
    // What the guest's unit got (its process's /proc/PID/environ), and the interval the guest sampled at.
    expect(r.go_runtime_env).toEqual({ GOGC: null, GOMEMLIMIT: null, GODEBUG: "madvdontneed=1", GOMAXPROCS: null });
    expect(r.memory_sample_interval_ms).toBe(s.guest_memory_sample_interval_ms);
    expect(["kvm", "tcg"]).toContain(s.accel);
    expect(ran.stderr).toMatch(s.accel === "kvm" ? /qemu: KVM/ : /qemu: TCG \(software emulation, no KVM\)/);
    expect(s.vm_ram_mb).toBe(512);
    expect(s.vcpus).toBe(1);
    expect(s.boot_seconds).toBeGreaterThan(0);
    expect(s.copy_seconds).toBeGreaterThan(0);
    // Guest memory: MemTotal - MemAvailable, sampled over one ssh stream.
    expect(r.initial_memory_bytes).toBeGreaterThan(10 * MiB);
    expect(r.peak_memory_bytes).toBeGreaterThanOrEqual(r.initial_memory_bytes);
    expect(r.peak_memory_bytes).toBeLessThan(512 * MiB);
    expect(r.memory_samples).toBeGreaterThan(0);
    expect(r.picoshare_peak_rss_bytes).toBeGreaterThan(0);
    expect(r.oom_kills).toBe(0);
    // PicoShare's counters, read in the guest by the same stream; its data folder after the response.
    expect(s.cpu_source).toBe("process ticks");
    expect(r.disk_write_bytes).toBeGreaterThanOrEqual(8 * MiB);
    expect(r.write_amplification).toBeGreaterThan(1);
    expect(r.write_amplification).toBeLessThan(10);
    expect(r.write_syscalls).toBeGreaterThan(8);
    expect(r.read_syscalls).toBeGreaterThan(8);
    expect(r.minor_faults).toBeGreaterThan(0);
    expect(r.cpu_user_seconds + r.cpu_system_seconds).toBeGreaterThan(0);
    expect(r.data_dir_bytes).toBeGreaterThanOrEqual(8 * MiB);
    expect([0, 1]).toContain(r.temp_files_left);
    expect(r.test_counters.read_syscalls).toBeGreaterThan(r.read_syscalls);
    // The split ends at the client's last byte (the server's temp files cost an ssh round trip a look).
    expect(r.upload_transfer_end).toBe("client");
    expect(r.upload_transfer_seconds).toBeGreaterThan(0);
    expect(r.upload_processing_seconds).toBeGreaterThan(0);
    expect(r.upload_transfer_seconds + r.upload_processing_seconds).toBeCloseTo(r.duration_seconds, 2);
    // The download, measured through the port forward, is the one --verify hashed.
    expect(r.download_exit_reason).toBe("success");
    expect(r.download_duration_seconds).toBeGreaterThan(0);
    expect(r.download_peak_memory_bytes).toBeGreaterThan(r.initial_memory_bytes / 2);
    // PicoShare's peak RSS during the download alone: its mark reset in the guest before it.
    expect(r.download_peak_rss_bytes).toBeGreaterThan(MiB);
    // The upload's own: the mark read before that reset.
    expect(r.picoshare_peak_rss_bytes).toBeGreaterThan(MiB);
    // The requests phase, through the port forward as the download.
    expect(r.requests_per_kind).toBe(20);
    expect(r.requests_error).toBeNull();
    for (const v of [r.list_page_seconds, r.info_page_seconds, r.download_first_byte_seconds]) expect(v).toBeGreaterThan(0);
    const timeline = readFileSync(r.timeline_file, "utf8").trim().split("\n");
    expect(timeline[0]).toBe("t_seconds,phase,working_set_bytes,anon_bytes,file_bytes");
    expect(new Set(timeline.slice(1).map((l) => l.split(",")[1]))).toContain("download");
    // PicoShare's own output, from the guest's serial port.
    const log = readFileSync(join(c.results, readdirSync(c.results).find((n) => n.startsWith("picoshare-"))!), "utf8");
    expect(log).toContain("starting picoshare server");
    expect(baseImageStamp()).toBe(before);
    await expectNothingLeft(c, run.pid);
    const ready = r.phases.setup + r.phases.readiness;
    timings.push(`8M: boot ${s.boot_seconds} s, boot to ready ${ready.toFixed(1)} s (${s.accel})`);
    expect(ready).toBeLessThan(120);
  });

  test("too little RAM for the upload: the guest kernel OOM-kills, the result says oom_killed", async () => {
    // With the guest's thrashing protection on, a 120 MiB VM OOM-kills during
    // the copy of the binary, PicoShare's start or a 64M upload (a stock kernel
    // thrashes there instead); at 128 MiB one CI run in many passed.
    const c = newCase();
    const run = startScript("run-test", args(c, "--ram", "120", "--file-size", "64M", "--timeout", "120"), {
      TMPDIR: c.tmp,
      PERF_QEMU_MIN_TTL_MS: "1000",
    });
    const ran = await run.done;
    expect(ran.code).toBe(1);
    const r = readResult(ran);
    if (r.exit_reason !== "oom_killed") console.error(ran.stderr);
    expect(r.exit_reason).toBe("oom_killed");
    expect(r.oom_kills).toBeGreaterThan(0);
    expect(r.backend_settings.oom_killed_processes).toBeTruthy();
    expect(r.backend_settings.kernel_oom_message).toMatch(/Out of memory: Killed process \d+/);
    expect(r.backend_settings.guest_min_ttl_ms).toBe(1000);
    expect(ran.stderr).toContain("TEST FAILED: oom_killed");
    await expectNothingLeft(c, run.pid);
    timings.push(`OOM at 120 MiB: ${r.backend_settings.oom_killed_processes}`);
  });

  test("an upload past --timeout: timeout, then PicoShare restarted in the VM on the same data, its database checked, the earlier entry served", async () => {
    const c = newCase();
    // Under emulation a 64M upload takes several seconds: 1 s ends it mid-transfer.
    const run = startScript("run-test", args(c, "--ram", "512", "--file-size", "64M", "--timeout", "1", "--no-download"), { TMPDIR: c.tmp });
    const ran = await run.done;
    expect(ran.code).toBe(1);
    const r = readResult(ran);
    expect(r.exit_reason).toBe("timeout");
    if (r.recovery?.error) console.error(ran.stderr);
    expect(r.recovery).toMatchObject({ started: true, integrity_check: "ok", earlier_entry_intact: true, error: null });
    expect(r.recovery.restart_seconds).toBeGreaterThan(0);
    expect(typeof r.recovery.temp_files_left).toBe("number");
    expect(r.backend_settings.picoshare_restart_guest_pid).toBeGreaterThan(0);
    expect(r.backend_settings.picoshare_restart_guest_pid).not.toBe(r.backend_settings.picoshare_guest_pid);
    expect(ran.stderr).toMatch(/Recovery: restart answered in [\d.]+ s, integrity_check ok, earlier entry served whole/);
    await expectNothingLeft(c, run.pid);
    timings.push(`timeout and recovery: restart ${r.recovery.restart_seconds} s, ${r.phases.teardown} s teardown`);
  });

  test("Ctrl-C during the boot: exit 130, the VM is powered off, nothing left, no result", async () => {
    const c = newCase();
    const run = startScript("run-test", args(c, "--ram", "512", "--file-size", "8M"), { TMPDIR: c.tmp });
    await waitFor("the boot", () => run.stderr().includes("qemu: booting the VM"), 120_000);
    await waitFor("qemu to run", () => qemuOf(run.pid).length > 0, 10_000);
    await Bun.sleep(1000);
    await interruptRun(run, c);
    await expectNothingLeft(c, run.pid);
  });

  test("Ctrl-C during the upload: exit 130, the VM is powered off, nothing left", async () => {
    const c = newCase();
    const run = startScript("run-test", args(c, "--ram", "512", "--file-size", "64M"), { TMPDIR: c.tmp });
    await waitFor("the upload", () => run.stderr().includes("sampling the VM's memory"), 180_000);
    await Bun.sleep(1500);
    expect(qemuOf(run.pid).length).toBe(1);
    await interruptRun(run, c);
    await expectNothingLeft(c, run.pid);
  });

  test("without the image: exit 2, one line naming the script that builds it, nothing written", async () => {
    const c = newCase();
    const empty = join(root, "empty-cache");
    mkdirSync(empty, { recursive: true });
    const ran = await runScript("run-test", args(c, "--ram", "512", "--file-size", "8M"), { TMPDIR: c.tmp, PERF_VM_CACHE: empty });
    expect(ran.code).toBe(2);
    expect(ran.stderr).toMatch(/ERROR: the VM image \S+ is not built in \S+: run bun scripts\/build-vm-image\.ts/);
    expect(ran.stdout).toBe("");
    expect(existsSync(c.results) ? readdirSync(c.results).filter((n) => n.endsWith(".json")) : []).toEqual([]);
  });

  test("without qemu: exit 2, one line per missing program", async () => {
    const c = newCase();
    // A PATH with bun and a shell only.
    const bin = join(root, "bin-bun-only");
    mkdirSync(bin, { recursive: true });
    for (const [name, target] of [["bun", BUN], ["bash", "/bin/bash"], ["sh", "/bin/sh"]]) {
      if (!existsSync(join(bin, name))) symlinkSync(target, join(bin, name));
    }
    const ran = await new Promise<Ran>((resolve) => {
      const [bun, ...argv] = scriptArgv("run-test", args(c, "--ram", "512", "--file-size", "8M"));
      const child = spawn(bun, argv, {
        cwd: ROOT,
        env: { ...process.env, PATH: bin, NO_COLOR: "1", TMPDIR: c.tmp },
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain("qemu-system-x86_64 is missing: apt-get install qemu-system-x86");
    expect(ran.stderr).toContain("qemu-img is missing: apt-get install qemu-utils");
    expect(ran.stderr).toContain("ssh and scp are missing: apt-get install openssh-client");
    expect(ran.stdout).toBe("");
  });
});

test("the VM tests leave the host as they found it: no mount, interface, loop device, iptables rule or file in /etc, /var, /run", () => {
  expect(hostStateChanges(hostBefore, hostState())).toEqual([]);
});
