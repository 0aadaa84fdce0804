// One qemu test's environment: a private folder with a copy-on-write
// overlay, a VM booted from the image (retried once with fresh ports for a
// boot that timed out), one shared ssh connection for the copy, the start and
// a long-lived sampler of the guest's memory, and the serial console read for
// OOM kills. Powered off and its folder removed on every exit path.
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { EnvironmentSpec, ExitInfo, MemoryMonitor, MemoryPoint, StorageReading, TestEnvironment } from "../types.ts";
import { errorMessage } from "../../core/errors.ts";
import type { Started } from "../../core/exec.ts";
import { log, warn } from "../../core/log.ts";
import { LOOPBACK, freePort } from "../../core/net.ts";
import { onCleanup } from "../../core/cleanup.ts";
import { SshConnection, type RemoteStream } from "../../vm/ssh.ts";
import type { VmImage } from "../../vm/image/index.ts";
import { MEM_FN, fetchGuestDatabase, guestGoRuntimeEnv, oomKills as consoleOomKills, parseCountersLine, parseMemLine, parseStorage, systemdExit, type MemSample } from "../../vm/guest.ts";
import { vmHwmBytes } from "../../core/proc.ts";
import { CounterTracker, type Counters } from "../../upload/counters.ts";
import type { GoRuntimeEnv } from "../../upload/provenance.ts";
import {
  bootFailureInConsole, createOverlay, fileTail, imageSshTarget, sshBanner, startQemu, stopQemu, vmFiles,
  type AccelChoice, type VmFiles,
} from "../../vm/qemu.ts";
import { GUEST_HOME, STORAGE_COMMAND, UNIT_EXIT_COMMAND, samplerCommand, startCommand } from "./guest-scripts.ts";
import { BOOT_ATTEMPTS, GUEST_MIN_TTL_MS, bootTimeoutMs, guestSampleMs } from "./settings.ts";
import { readText } from "../../core/files.ts";

export class QemuEnvironment implements TestEnvironment {
  readonly settings: TestEnvironment["settings"];
  readonly logPath: string;
  readonly files: VmFiles;
  private qemu: Started | null = null;
  private ssh: SshConnection | null = null;
  private sampler: RemoteStream | null = null;
  private sshPort = 0;
  private httpPort = 0;
  private mainPid = 0;
  private last: MemSample | null = null;
  private lastAt = 0;
  private peakWithCache = 0;
  /** PicoShare's counters as the sampler reports them from the guest. */
  private readonly tracker = new CounterTracker();
  private listeners = new Set<(s: MemSample) => void>();
  private exitedResolve!: (e: ExitInfo) => void;
  private exitInfo: ExitInfo | null = null;
  private exitedNow = new Promise<ExitInfo>((r) => (this.exitedResolve = r));
  private bootError: string | null = null;
  private readonly sampleMs: number;
  private torn = false;
  private tearing: Promise<void> | null = null;
  private forgetCleanup: () => void = () => {};

  private constructor(
    private readonly spec: EnvironmentSpec,
    private readonly image: VmImage,
    private readonly accel: AccelChoice,
    private readonly dir: string,
    qemuVersionText: string,
  ) {
    this.files = vmFiles(dir);
    this.sampleMs = guestSampleMs(accel.accel);
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
      guest_memory_sample_interval_ms: this.sampleMs,
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
      await env.boot();
    } catch (err) {
      await env.teardown();
      throw err;
    }
    return env;
  }

  private async boot(): Promise<void> {
    const timeoutMs = bootTimeoutMs(this.accel.accel);
    for (let attempt = 1; attempt <= BOOT_ATTEMPTS; attempt++) {
      this.settings.boot_attempts = attempt;
      rmSync(this.files.overlay, { force: true });
      rmSync(this.files.console, { force: true });
      await createOverlay(this.image, this.files.overlay);
      this.sshPort = await freePort();
      do this.httpPort = await freePort();
      while (this.httpPort === this.sshPort);
      const t0 = performance.now();
      this.qemu = startQemu(
        {
          image: this.image, ramMiB: this.spec.ramMiB, accel: this.accel.accel, dir: this.dir,
          sshPort: this.sshPort, httpPort: this.httpPort,
          extraCmdline: GUEST_MIN_TTL_MS ? `picoshare_perf.min_ttl_ms=${GUEST_MIN_TTL_MS}` : undefined,
        },
        this.files,
      );
      log(`qemu: booting the VM (pid ${this.qemu.pid}, ${this.spec.ramMiB} MiB, 1 vCPU, ${this.accel.accel}; ssh on ${LOOPBACK}:${this.sshPort})`);
      const outcome = await this.waitForSshd(this.qemu, timeoutMs);
      if (outcome === "up") {
        this.settings.boot_seconds = round((performance.now() - t0) / 1000);
        log(`qemu: the VM's sshd answers after ${this.settings.boot_seconds} s`);
        break;
      }
      const consoleText = readText(this.files.console);
      const qemuText = fileTail(this.files.qemuLog, 3);
      const panic = bootFailureInConsole(consoleText);
      await stopQemu(this.qemu);
      this.qemu = null;
      if (outcome === "aborted") throw this.spec.signal.reason ?? new Error("interrupted");
      const why =
        outcome === "timeout"
          ? `its sshd did not answer within ${timeoutMs / 1000} s (console: ${fileTail(this.files.console, 3) || "empty"})`
          : `qemu stopped during the boot (${panic ?? (qemuText || fileTail(this.files.console, 3) || "no message")})`;
      // A guest that panics (e.g. too little RAM to boot) will do it again: that is the result.
      const retryable = !panic && consoleOomKills(consoleText).length === 0 && attempt < BOOT_ATTEMPTS;
      if (!retryable) {
        this.bootError = `the VM did not boot: ${why}`;
        warn(this.bootError);
        return;
      }
      warn(`qemu: attempt ${attempt} to boot the VM failed: ${why}; retrying with a fresh overlay and ports`);
    }
    // One shared ssh connection for everything that follows.
    const t1 = performance.now();
    this.ssh = SshConnection.create(imageSshTarget(this.image, this.sshPort));
    try {
      await this.ssh.open({ signal: this.spec.signal, retries: 5, minDelay: 250 });
    } catch (err) {
      if (this.spec.signal.aborted) throw err;
      // sshd answered but no session could be had (e.g. the guest ran out of memory).
      this.bootError = `the VM booted but ssh could not log in: ${errorMessage(err)}`;
      warn(this.bootError);
      return;
    }
    this.settings.ssh_connect_seconds = round((performance.now() - t1) / 1000);
  }

  /** Polls the forwarded ssh port for sshd's banner; qemu ending or the signal stop the wait. */
  private async waitForSshd(q: Started, timeoutMs: number): Promise<"up" | "exited" | "timeout" | "aborted"> {
    const end = performance.now() + timeoutMs;
    let lastConsoleCheck = 0;
    while (performance.now() < end) {
      if (this.spec.signal.aborted) return "aborted";
      if (!q.running()) return "exited";
      if (await sshBanner(this.sshPort, 1000)) return "up";
      if (performance.now() - lastConsoleCheck > 1000) {
        lastConsoleCheck = performance.now();
        if (bootFailureInConsole(readText(this.files.console))) {
          // panic=-1 and -no-reboot end qemu in a moment; let it.
          await Promise.race([q.exited, Bun.sleep(3000)]);
        }
      }
      await Bun.sleep(100);
    }
    return "timeout";
  }

  get exited(): Promise<ExitInfo> {
    return this.exitedNow;
  }

  async startPicoShare(secret: string): Promise<string> {
    const url = `http://${LOOPBACK}:${this.httpPort}`;
    if (this.bootError || !this.ssh) {
      // Reported through the runner's readiness check: "PicoShare exited during start-up (the VM did not boot: ...)".
      this.resolveExit({ code: null, signal: this.bootError ?? "the VM did not boot" });
      return url;
    }
    const t0 = performance.now();
    await this.ssh.copy(this.spec.picoshare.path, "/tmp/picoshare", { signal: this.spec.signal });
    this.settings.copy_seconds = round((performance.now() - t0) / 1000);
    const t1 = performance.now();
    await this.startUnit(secret, false);
    this.settings.start_seconds = round((performance.now() - t1) / 1000);
    this.settings.picoshare_guest_pid = this.mainPid;
    void this.qemu?.exited.then(() => this.resolveExit({ code: null, signal: "the VM stopped" }));
    return url;
  }

  /** Starts the unit and follows its main process with the sampler (or takes its exit at once). */
  private async startUnit(secret: string, restart: boolean): Promise<void> {
    const out = await this.ssh!.run(startCommand({ restart }), { input: secret, what: "start PicoShare", signal: this.spec.signal, timeoutMs: 60_000 });
    this.mainPid = Number(out.trim().split("\n").pop());
    if (!(this.mainPid > 0)) {
      // Started and gone already (e.g. OOM-killed at once): the unit's result says how.
      this.resolveExit(await this.unitExit());
    } else {
      this.startSampler();
    }
  }

  async restartPicoShare(secret: string): Promise<string> {
    if (!this.ssh || this.torn || !this.qemu?.running()) throw new Error("the VM is not running");
    // The old sampler follows the old pid; the restart gets its own, and `exited` follows the new process.
    await this.sampler?.stop().catch(() => {});
    this.sampler = null;
    this.exitInfo = null;
    this.exitedNow = new Promise<ExitInfo>((r) => (this.exitedResolve = r));
    await this.startUnit(secret, true);
    this.settings.picoshare_restart_guest_pid = this.mainPid;
    return `http://${LOOPBACK}:${this.httpPort}`;
  }

  async copyDatabase(dest: string): Promise<string> {
    if (!this.ssh || this.torn || !this.qemu?.running()) throw new Error("the VM is not running");
    return fetchGuestDatabase(this.ssh, `${GUEST_HOME}/data`, "sudo ", dest);
  }

  /** The long-lived stream: one line per sample, fork-free in the guest (bash builtins only). */
  private startSampler(): void {
    const stream = this.ssh!.stream(samplerCommand(this.sampleMs, this.mainPid), (line) => this.onSamplerLine(line));
    this.sampler = stream;
    void stream.done.then((r) => {
      // (A restart stops the old one on purpose.)
      if (this.torn || this.exitInfo || this.sampler !== stream) return;
      warn(`the VM's memory sampler stopped (${r.code ?? r.signal}: ${r.stderr.trim().slice(-200) || "no message"})`);
      // Without it PicoShare's exit is seen from the console (OOM) or qemu's own exit.
      void this.watchConsole();
    });
  }

  private onSamplerLine(line: string): void {
    const s = parseMemLine(line);
    if (s) {
      this.last = s;
      this.lastAt = performance.now();
      this.peakWithCache = Math.max(this.peakWithCache, s.usedWithCache);
      for (const l of this.listeners) l(s);
      return;
    }
    const c = parseCountersLine(line);
    if (c) {
      this.tracker.record(String(this.mainPid), c);
      return;
    }
    const parts = line.trim().split(/\s+/);
    if (parts[0] === "x") this.resolveExit(systemdExit(Number(parts[1]), Number(parts[2])));
  }

  /** Fallback when the sampler is gone: an OOM kill of PicoShare in the console ends it. */
  private async watchConsole(): Promise<void> {
    while (!this.torn && !this.exitInfo) {
      if (consoleOomKills(readText(this.files.console)).some((k) => k.pid === this.mainPid)) {
        this.resolveExit({ code: null, signal: "SIGKILL" });
        return;
      }
      await Bun.sleep(200);
    }
  }

  private async unitExit(): Promise<ExitInfo> {
    try {
      const out = await this.ssh!.run(UNIT_EXIT_COMMAND, {
        what: "PicoShare's exit status",
        timeoutMs: 10_000,
      });
      const [code, status] = out.trim().split("\n").map(Number);
      return systemdExit(code, status);
    } catch (err) {
      return { code: null, signal: `unknown (${errorMessage(err)})` };
    }
  }

  private resolveExit(e: ExitInfo): void {
    if (this.exitInfo) return;
    this.exitInfo = e;
    this.exitedResolve(e);
  }

  async memoryNow(): Promise<number> {
    if (this.last && performance.now() - this.lastAt < 2 * this.sampleMs + 500) return this.last.used;
    if (!this.ssh) return 0;
    const out = await this.ssh.run(`${MEM_FN}; mem`, { what: "read /proc/meminfo", timeoutMs: 10_000 });
    return parseMemLine(out)?.used ?? 0;
  }

  monitorMemory(_intervalMs: number): MemoryMonitor {
    // The guest samples on its own clock (this.sampleMs); the monitor keeps the peak of what arrives.
    log(`qemu: sampling the VM's memory (MemTotal - MemAvailable) every ${this.sampleMs} ms during the upload`);
    let peak = this.last?.used ?? 0;
    let samples = 0;
    // Stamped on arrival: the guest's clock is not the host's.
    const points: MemoryPoint[] = [];
    const listener = (s: MemSample) => {
      peak = Math.max(peak, s.used);
      samples++;
      points.push({ at: performance.now(), workingSet: s.used, anon: null, file: null });
    };
    this.listeners.add(listener);
    return {
      stop: async () => {
        // One more sample period, so that the last moment of the upload is in.
        await Bun.sleep(this.sampleMs + 20);
        this.listeners.delete(listener);
        return { peakBytes: peak, samples, points, intervalMs: this.sampleMs };
      },
    };
  }

  async oomKills(): Promise<number> {
    const kills = consoleOomKills(readText(this.files.console));
    if (kills.length > 0) {
      this.settings.oom_killed_processes = kills.map((k) => `${k.name}(${k.pid})`).join(", ");
      this.settings.kernel_oom_message = kills[0].line.slice(0, 300);
    }
    // The guest's own counter, where it can still be read (the console may lag).
    let counted = 0;
    if (this.ssh && !this.torn && this.qemu?.running()) {
      try {
        const out = await this.ssh.run("grep '^oom_kill ' /proc/vmstat", { what: "read /proc/vmstat", timeoutMs: 5000 });
        counted = Number(out.trim().split(/\s+/)[1]) || 0;
      } catch {}
    }
    return Math.max(kills.length, counted);
  }

  async kernelPeakBytes(): Promise<number | null> {
    // A VM has no high-water mark of its own; the highest MemTotal - MemFree
    // sampled (page cache included) is in the settings instead.
    this.settings.peak_used_including_cache_bytes = this.peakWithCache || null;
    return null;
  }

  async counters(): Promise<Counters | null> {
    // From the sampler's last reading (every sampleMs while PicoShare runs): none before it started.
    return this.tracker.total();
  }

  async storage(): Promise<StorageReading | null> {
    if (!this.ssh || this.torn) return null;
    try {
      const out = await this.ssh.run(STORAGE_COMMAND, { what: "PicoShare's data folder", timeoutMs: 10_000 });
      return parseStorage(out);
    } catch {
      return null;
    }
  }

  async picosharePeakRss(): Promise<number | null> {
    if (!this.ssh || !(this.mainPid > 0) || this.exitInfo) return null;
    try {
      const out = await this.ssh.run(`sudo grep '^VmHWM:' /proc/${this.mainPid}/status`, { what: "read VmHWM", timeoutMs: 5000 });
      return vmHwmBytes(out);
    } catch {
      return null;
    }
  }

  async goRuntimeEnv(): Promise<GoRuntimeEnv | null> {
    if (!this.ssh || !(this.mainPid > 0) || this.exitInfo || this.torn) return null;
    return guestGoRuntimeEnv(this.ssh, this.mainPid, "sudo ");
  }

  keepInstructions(baseUrl: string): string[] {
    // The harness's own cleanup must not power off a kept VM; its ssh
    // connection goes (the lines below say how to reach the VM without it).
    this.forgetCleanup();
    const sampler = this.sampler;
    const ssh = this.ssh;
    onCleanup("close the ssh connection to the kept VM", async () => {
      await sampler?.stop().catch(() => {});
      await ssh?.close().catch(() => {});
    });
    const sshLine = [
      "ssh", "-i", this.image.sshKey, "-o", "IdentitiesOnly=yes", "-o", `UserKnownHostsFile=${this.image.knownHosts}`,
      "-o", `HostKeyAlias=${this.image.hostKeyAlias}`, "-p", String(this.sshPort), `${this.image.user}@${LOOPBACK}`,
    ].join(" ");
    const pid = this.qemu?.pid;
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
    if (this.qemu) await stopQemu(this.qemu);
    await this.sampler?.stop().catch(() => {});
    await this.ssh?.close().catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
    this.resolveExit({ code: null, signal: "the VM was powered off" });
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

