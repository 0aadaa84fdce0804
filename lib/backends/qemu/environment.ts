// One qemu test's environment: a private folder with a copy-on-write
// overlay, a VM booted from the image (boot.ts: retried once with fresh ports
// for a boot that timed out), one shared ssh connection for the copy, the
// start and a long-lived sampler of the guest's memory (sampler.ts), and the
// serial console read for OOM kills. Powered off and its folder removed on
// every exit path.
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { EnvironmentSpec, ExitInfo, MemoryMonitor, StorageReading, TestEnvironment } from "../types.ts";
import { ExitLatch } from "../exit-latch.ts";
import { errorMessage } from "../../core/errors.ts";
import { readText } from "../../core/files.ts";
import { LOOPBACK } from "../../core/net.ts";
import { onCleanup } from "../../core/cleanup.ts";
import { shq } from "../../core/exec.ts";
import { resetPeakRssCommand, vmHwmBytes } from "../../core/proc.ts";
import type { Counters } from "../../upload/counters.ts";
import { round } from "../../upload/phases/common.ts";
import type { GoRuntimeEnv } from "../../upload/provenance.ts";
import type { VmImage } from "../../vm/image/index.ts";
import { MEM_FN, fetchGuestDatabase, guestGoRuntimeEnv, oomKills as consoleOomKills, parseMemLine, parseStorage, systemdExit } from "../../vm/guest.ts";
import { stopQemu, vmFiles, type AccelChoice, type VmFiles } from "../../vm/qemu.ts";
import { bootVm, type VmHandles } from "./boot.ts";
import { GUEST_HOME, STORAGE_COMMAND, UNIT_EXIT_COMMAND, startCommand } from "./guest-scripts.ts";
import { GuestSampler } from "./sampler.ts";
import { GUEST_MIN_TTL_MS, guestSampleMs } from "./settings.ts";

export class QemuEnvironment implements TestEnvironment {
  readonly settings: TestEnvironment["settings"];
  readonly logPath: string;
  readonly files: VmFiles;
  /** qemu, its ssh connection and ports: set by the boot as it goes. */
  private readonly vm: VmHandles = { qemu: null, ssh: null, sshPort: 0, httpPort: 0 };
  private readonly sampler: GuestSampler;
  private mainPid = 0;
  private readonly exit = new ExitLatch();
  private bootError: string | null = null;
  private torn = false;
  private tearing: Promise<void> | null = null;
  private forgetCleanup: () => void = () => {};

  private constructor(
    private readonly spec: EnvironmentSpec,
    private readonly image: VmImage,
    accel: AccelChoice,
    private readonly dir: string,
    qemuVersionText: string,
  ) {
    this.files = vmFiles(dir);
    this.sampler = new GuestSampler(guestSampleMs(accel.accel));
    this.logPath = this.files.guestLog;
    this.settings = {
      accel: accel.accel,
      accel_reason: accel.reason,
      qemu_version: qemuVersionText,
      vcpus: 1,
      vm_ram_mb: spec.ramMiB,
      image_key: image.key,
      kernel: image.manifest.kernel_version,
      kernel_cmdline: image.fastCmdline + (GUEST_MIN_TTL_MS ? ` picoshare_perf.min_ttl_ms=${GUEST_MIN_TTL_MS}` : ""),
      guest_min_ttl_ms: GUEST_MIN_TTL_MS,
      disk: "virtio, qcow2 overlay over a raw base, cache=writeback",
      network: "user-mode (slirp), restrict=on, hostfwd on 127.0.0.1",
      guest_memory_sample_interval_ms: this.sampler.sampleMs,
      // PicoShare's /proc/PID/stat in the guest, read by the sampler.
      cpu_source: "process ticks",
      memory_measure: "MemTotal - MemAvailable in the guest",
      boot_seconds: null,
      boot_attempts: 0,
      ssh_connect_seconds: null,
      copy_seconds: null,
      start_seconds: null,
      peak_used_including_cache_bytes: null,
      oom_killed_processes: null,
      work_dir: spec.workDir,
    };
  }

  /** Makes the folder, the overlay, and boots the VM until its sshd answers and the shared connection is up. */
  static async make(spec: EnvironmentSpec, image: VmImage, accel: AccelChoice, qv: string): Promise<QemuEnvironment> {
    const dir = mkdtempSync(join(spec.workDir, "picoshare-perf-qemu-"));
    chmodSync(dir, 0o700);
    const env = new QemuEnvironment(spec, image, accel, dir, qv);
    // Registered now, not when the runner gets the environment: a Ctrl-C
    // during the boot must power the VM off too.
    env.forgetCleanup = onCleanup("power off the VM and remove its overlay", () => env.teardown());
    try {
      env.bootError = await bootVm({ spec, image, accel, dir, files: env.files, settings: env.settings }, env.vm);
    } catch (err) {
      await env.teardown();
      throw err;
    }
    return env;
  }

  get exited(): Promise<ExitInfo> {
    return this.exit.exited;
  }

  async startPicoShare(secret: string): Promise<string> {
    const url = `http://${LOOPBACK}:${this.vm.httpPort}`;
    if (this.bootError || !this.vm.ssh) {
      // Reported through the runner's readiness check: "PicoShare exited during start-up (the VM did not boot: ...)".
      this.exit.resolve({ code: null, signal: this.bootError ?? "the VM did not boot" });
      return url;
    }
    const t0 = performance.now();
    await this.vm.ssh.copy(this.spec.picoshare.path, "/tmp/picoshare", { signal: this.spec.signal });
    this.settings.copy_seconds = round((performance.now() - t0) / 1000);
    const t1 = performance.now();
    await this.startUnit(secret, false);
    this.settings.start_seconds = round((performance.now() - t1) / 1000);
    this.settings.picoshare_guest_pid = this.mainPid;
    void this.vm.qemu?.exited.then(() => this.exit.resolve({ code: null, signal: "the VM stopped" }));
    return url;
  }

  /** Starts the unit and follows its main process with the sampler (or takes its exit at once). */
  private async startUnit(secret: string, restart: boolean): Promise<void> {
    const out = await this.vm.ssh!.run(startCommand({ restart }), { input: secret, what: "start PicoShare", signal: this.spec.signal, timeoutMs: 60_000 });
    this.mainPid = Number(out.trim().split("\n").pop());
    if (!(this.mainPid > 0)) {
      // Started and gone already (e.g. OOM-killed at once): the unit's result says how.
      this.exit.resolve(await this.unitExit());
    } else {
      this.sampler.follow(this.vm.ssh!, this.mainPid, {
        onExit: (e) => void this.exit.resolve(e),
        expectsMore: () => !this.torn && !this.exit.value,
        // Without it PicoShare's exit is seen from the console (OOM) or qemu's own exit.
        onLost: () => void this.watchConsole(),
      });
    }
  }

  async restartPicoShare(secret: string): Promise<string> {
    if (!this.vm.ssh || this.torn || !this.vm.qemu?.running()) throw new Error("the VM is not running");
    // The old sampler follows the old pid; the restart gets its own, and `exited` follows the new process.
    await this.sampler.stop();
    this.exit.renew();
    await this.startUnit(secret, true);
    this.settings.picoshare_restart_guest_pid = this.mainPid;
    return `http://${LOOPBACK}:${this.vm.httpPort}`;
  }

  async copyDatabase(dest: string): Promise<string> {
    if (!this.vm.ssh || this.torn || !this.vm.qemu?.running()) throw new Error("the VM is not running");
    return fetchGuestDatabase(this.vm.ssh, `${GUEST_HOME}/data`, "sudo ", dest);
  }

  /** Fallback when the sampler is gone: an OOM kill of PicoShare in the console ends it. */
  private async watchConsole(): Promise<void> {
    while (!this.torn && !this.exit.value) {
      if (consoleOomKills(readText(this.files.console)).some((k) => k.pid === this.mainPid)) {
        this.exit.resolve({ code: null, signal: "SIGKILL" });
        return;
      }
      await Bun.sleep(200);
    }
  }

  private async unitExit(): Promise<ExitInfo> {
    try {
      const out = await this.vm.ssh!.run(UNIT_EXIT_COMMAND, {
        what: "PicoShare's exit status",
        timeoutMs: 10_000,
      });
      const [code, status] = out.trim().split("\n").map(Number);
      return systemdExit(code, status);
    } catch (err) {
      return { code: null, signal: `unknown (${errorMessage(err)})` };
    }
  }

  async memoryNow(): Promise<number> {
    const recent = this.sampler.recentUsed();
    if (recent !== null) return recent;
    if (!this.vm.ssh) return 0;
    const out = await this.vm.ssh.run(`${MEM_FN}; mem`, { what: "read /proc/meminfo", timeoutMs: 10_000 });
    return parseMemLine(out)?.used ?? 0;
  }

  monitorMemory(_intervalMs: number): MemoryMonitor {
    return this.sampler.monitor();
  }

  async oomKills(): Promise<number> {
    const kills = consoleOomKills(readText(this.files.console));
    if (kills.length > 0) {
      this.settings.oom_killed_processes = kills.map((k) => `${k.name}(${k.pid})`).join(", ");
      this.settings.kernel_oom_message = kills[0].line.slice(0, 300);
    }
    // The guest's own counter, where it can still be read (the console may lag).
    let counted = 0;
    if (this.vm.ssh && !this.torn && this.vm.qemu?.running()) {
      try {
        const out = await this.vm.ssh.run("grep '^oom_kill ' /proc/vmstat", { what: "read /proc/vmstat", timeoutMs: 5000 });
        counted = Number(out.trim().split(/\s+/)[1]) || 0;
      } catch {}
    }
    return Math.max(kills.length, counted);
  }

  async kernelPeakBytes(): Promise<number | null> {
    // A VM has no high-water mark of its own; the highest MemTotal - MemFree
    // sampled (page cache included) is in the settings instead.
    this.settings.peak_used_including_cache_bytes = this.sampler.peakWithCache || null;
    return null;
  }

  async counters(): Promise<Counters | null> {
    // From the sampler's last reading (every sampleMs while PicoShare runs): none before it started.
    return this.sampler.tracker.total();
  }

  async storage(): Promise<StorageReading | null> {
    if (!this.vm.ssh || this.torn) return null;
    try {
      const out = await this.vm.ssh.run(STORAGE_COMMAND, { what: "PicoShare's data folder", timeoutMs: 10_000 });
      return parseStorage(out);
    } catch {
      return null;
    }
  }

  async picosharePeakRss(): Promise<number | null> {
    return this.vmHwm((pid) => `sudo grep '^VmHWM:' /proc/${pid}/status`, "read VmHWM");
  }

  async resetPeakRss(): Promise<number | null> {
    return this.vmHwm((pid) => `sudo sh -c ${shq(resetPeakRssCommand(pid))}`, "reset VmHWM");
  }

  /** PicoShare's VmHWM as `command` prints it in the guest; null once it is gone or unreachable. */
  private async vmHwm(command: (pid: number) => string, what: string): Promise<number | null> {
    if (!this.vm.ssh || !(this.mainPid > 0) || this.exit.value) return null;
    try {
      return vmHwmBytes(await this.vm.ssh.run(command(this.mainPid), { what, timeoutMs: 5000 }));
    } catch {
      return null;
    }
  }

  async goRuntimeEnv(): Promise<GoRuntimeEnv | null> {
    if (!this.vm.ssh || !(this.mainPid > 0) || this.exit.value || this.torn) return null;
    return guestGoRuntimeEnv(this.vm.ssh, this.mainPid, "sudo ");
  }

  keepInstructions(baseUrl: string): string[] {
    // The harness's own cleanup must not power off a kept VM; its ssh
    // connection goes (the lines below say how to reach the VM without it).
    this.forgetCleanup();
    const sampler = this.sampler;
    const ssh = this.vm.ssh;
    onCleanup("close the ssh connection to the kept VM", async () => {
      await sampler.stop();
      await ssh?.close().catch(() => {});
    });
    const sshLine = [
      "ssh", "-i", this.image.sshKey, "-o", "IdentitiesOnly=yes", "-o", `UserKnownHostsFile=${this.image.knownHosts}`,
      "-o", `HostKeyAlias=${this.image.hostKeyAlias}`, "-p", String(this.vm.sshPort), `${this.image.user}@${LOOPBACK}`,
    ].join(" ");
    const pid = this.vm.qemu?.pid;
    return [
      `PicoShare kept running in the VM at ${baseUrl} (qemu pid ${pid}, process group ${pid})`,
      `  secret:  ${sshLine} sudo cat ${GUEST_HOME}/secret   (log in at ${baseUrl}/login)`,
      `  ssh:     ${sshLine}`,
      `  log:     ${this.logPath}; console: ${this.files.console}`,
      `Stop it:   kill -TERM -- -${pid}; rm -rf ${this.dir}`,
    ];
  }

  teardown(): Promise<void> {
    this.tearing ??= this.doTeardown();
    return this.tearing;
  }

  private async doTeardown(): Promise<void> {
    this.torn = true;
    this.forgetCleanup();
    // The VM first: a stalled guest keeps the sampler's ssh stream waiting,
    // and a harness stopped by its deadline would leave qemu running.
    if (this.vm.qemu) await stopQemu(this.vm.qemu);
    await this.sampler.stop();
    await this.vm.ssh?.close().catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
    this.exit.resolve({ code: null, signal: "the VM was powered off" });
  }
}
