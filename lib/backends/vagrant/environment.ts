// One test's environment in a Vagrant VM: the VM (machine.ts) and its guest
// folder (guest-folder.ts) made ready, then PicoShare started detached
// (systemd-run, else setsid), its exit watched by one long-lived ssh stream
// (exit-watch.ts), memory read by another (memory.ts), and what is read after
// the upload (log, OOM kills, VmHWM) fetched in one round trip (snapshot.ts).
// At the end the VM is kept (--reuse-vm, --keep-vm) or destroyed (ending.ts).
//
// The VM's working set is MemTotal - MemAvailable of the whole VM: the guest
// kernel and the part of the page cache the kernel does not count as
// available are in it (see FLAKINESS.md for how to read it).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { EnvironmentSpec, ExitInfo, MemoryMonitor, StorageReading, TestEnvironment } from "../types.ts";
import { ExitLatch } from "../exit-latch.ts";
import { interrupted, onCleanup } from "../../core/cleanup.ts";
import { log } from "../../core/log.ts";
import { freePort, LOOPBACK } from "../../core/net.ts";
import { retry } from "../../core/retry.ts";
import { fetchGuestDatabase, guestGoRuntimeEnv, parseStorage, storageScript } from "../../vm/guest.ts";
import type { Counters } from "../../upload/counters.ts";
import type { GoRuntimeEnv } from "../../upload/provenance.ts";
import type { RemoteStream } from "../../vm/ssh.ts";
import type { VagrantConfig } from "./config.ts";
import { GuestCounters } from "./counters.ts";
import { endInVm } from "./ending.ts";
import { ExitWatcher } from "./exit-watch.ts";
import { prepareGuest, stopGuestProcesses, type GuestFacts } from "./guest-folder.ts";
import { exitWatchScript, parseStartOutput, startCommand, type StartSpec } from "./guest-scripts.ts";
import { VagrantMachine } from "./machine.ts";
import { monitorVmMemory, readVmMemory } from "./memory.ts";
import { checkedVagrantVersion } from "./prerequisites.ts";
import { Snapshots, readSnapshot, type Snapshot } from "./snapshot.ts";
import { statePath } from "./state.ts";

export class VagrantEnvironment implements TestEnvironment {
  readonly settings: TestEnvironment["settings"];
  readonly logPath: string;
  private readonly exit = new ExitLatch();

  private readonly vm: VagrantMachine;
  private readonly hostDir: string;
  private ready = false;
  private broken = false;
  private facts: GuestFacts = { uid: 0, gid: 0, sudo: "", method: "setsid", oomSource: null };
  /** PicoShare's counters as read in the guest. */
  private readonly counts = new GuestCounters();
  private unit: string | null = null;
  private picoPid: number | null = null;
  /** The guest's uptime (s) just before PicoShare started: older kernel log lines are not about it. */
  private startUptime: number | null = null;
  private readonly ourPids = new Set<number>();
  private guestPort = 0;
  private hostPort = 0;
  private readonly watcher = new ExitWatcher({
    remote: () => this.vm.remote(),
    script: () => exitWatchScript(this.facts.method, { guestDir: this.vm.guestDir, sudo: this.facts.sudo, unit: this.unit, pid: this.picoPid ?? 0 }),
    onExit: (info) => this.markExited(info),
    exited: () => this.exit.value !== null,
    tearingDown: () => this.tearing !== null,
    reconnect: async () => {
      await this.vm.ssh?.ensureOpen(this.signal);
    },
    onLost: () => {
      this.broken = true;
    },
  });
  private readonly streams = new Set<RemoteStream>();
  private tearing: Promise<void> | null = null;
  private readonly snapshots = new Snapshots(async () => {
    if (!this.vm.ssh || !this.vm.guestDir) return null;
    return readSnapshot(this.vm.ssh, {
      guestLog: this.vm.q("picoshare.log"),
      hostLog: this.logPath,
      facts: this.facts,
      unit: this.unit,
      pid: this.picoPid,
      exited: this.exit.value !== null,
      startUptime: this.startUptime,
    });
  });

  constructor(
    private readonly spec: EnvironmentSpec,
    private readonly cfg: VagrantConfig,
    private readonly reuseVm: boolean,
  ) {
    this.hostDir = mkdtempSync(join(spec.workDir, "picoshare-perf-vagrant-"));
    this.logPath = join(this.hostDir, "picoshare.log");
    writeFileSync(this.logPath, "", { mode: 0o600 });
    this.settings = {
      vagrant_folder: cfg.folder,
      vagrant_version: checkedVagrantVersion() || null,
      provider: cfg.provider,
      libvirt_driver: cfg.provider === "libvirt" ? cfg.libvirtDriver : null,
      box: cfg.box,
      vm_memory_mib: spec.ramMiB,
      vm_cpus: 1,
      vm_reused: false,
      vm_boot_seconds: null,
      memory_metric: "MemTotal - MemAvailable of the whole VM",
      // PicoShare's /proc/PID/stat in the guest.
      cpu_source: "process ticks",
    };
    this.vm = new VagrantMachine(spec, cfg, reuseVm, this.settings);
  }

  get exited(): Promise<ExitInfo> {
    return this.exit.exited;
  }

  private get signal(): AbortSignal {
    return this.spec.signal;
  }

  /** The VM up, its guest folder ready with the binary in it. */
  async prepare(): Promise<void> {
    await this.vm.bringUp();
    this.facts = await prepareGuest({
      ssh: this.vm.remote(),
      dir: this.vm.guestDir,
      vmId: this.vm.vmId,
      reused: this.vm.reused,
      spec: this.spec,
      settings: this.settings,
    });
    this.vm.saveState(this.reuseVm ? "reuse" : "in_use");
    this.ready = true;
  }

  // ---- PicoShare --------------------------------------------------------

  /**
   * Starts PicoShare detached, in one ssh round trip (see startCommand): the
   * secret arrives on ssh's stdin, never on a command line.
   */
  async startPicoShare(secret: string): Promise<string> {
    const spec: StartSpec = {
      guestDir: this.vm.guestDir,
      sudo: this.facts.sudo,
      uid: this.facts.uid,
      gid: this.facts.gid,
      unit: this.facts.method === "systemd-run" ? `picoshare-perf-${this.vm.vmId}-${randomBytes(3).toString("hex")}` : null,
      candidatePorts: Array.from({ length: 40 }, () => 10000 + Math.floor(Math.random() * 22000)),
    };
    this.unit = spec.unit;
    const out = await this.vm.remote().run(startCommand(this.facts.method, spec), {
      input: secret,
      what: `start PicoShare with ${this.facts.method}`,
      signal: this.signal,
      timeoutMs: 60_000,
    });
    log(
      this.facts.method === "systemd-run"
        ? `PicoShare started in the VM by systemd-run (unit ${this.unit}, detached from ssh)`
        : "PicoShare started in the VM by setsid -f with a pid file (no systemd in the VM: /run/systemd/system is missing)",
    );
    const started = parseStartOutput(out);
    this.guestPort = started.port;
    this.picoPid = started.pid;
    this.startUptime = started.uptime;
    if (this.picoPid) this.ourPids.add(this.picoPid);
    this.settings.guest_port = this.guestPort;
    this.watcher.watch();

    // A free port on this host, forwarded over the shared connection.
    await retry(
      "port forward",
      async () => {
        const port = await freePort();
        await this.vm.remote().forward(port, this.guestPort);
        this.hostPort = port;
      },
      { retries: 4, minDelay: 100, signal: this.signal },
    );
    this.settings.host_port = this.hostPort;
    return `http://${LOOPBACK}:${this.hostPort}`;
  }

  /**
   * After a failure: whatever PicoShare the guest folder records is stopped,
   * its port forward cancelled, and PicoShare started again on
   * the same data dir in the same VM; `exited` follows the new process.
   */
  async restartPicoShare(secret: string): Promise<string> {
    if (!this.vm.ssh || !this.vm.guestDir || this.tearing) throw new Error("the VM is not reachable");
    await this.watcher.detach();
    await stopGuestProcesses(this.vm.remote(), this.vm.guestDir);
    if (this.hostPort) await this.vm.remote().cancelForward(this.hostPort, this.guestPort).catch(() => {});
    this.exit.renew();
    this.snapshots.forget();
    return this.startPicoShare(secret);
  }

  async copyDatabase(dest: string): Promise<string> {
    if (!this.vm.ssh || !this.vm.guestDir || this.tearing) throw new Error("the VM is not reachable");
    return fetchGuestDatabase(this.vm.remote(), `${this.vm.guestDir}/data`, this.facts.sudo, dest);
  }

  private markExited(info: ExitInfo): void {
    if (!this.exit.resolve(info)) return;
    // PicoShare's last words (and the unit's journal) come back to the host;
    // what reads them (oomKills, picosharePeakRss) waits for this snapshot.
    void this.snapshot(true).catch(() => {});
  }

  /** See snapshot.ts: one round trip for the log, the OOM kills and VmHWM. */
  private snapshot(fresh = false): Promise<Snapshot | null> {
    return this.snapshots.get(fresh);
  }

  // ---- measurements -----------------------------------------------------

  memoryNow(): Promise<number> {
    return readVmMemory(this.vm.remote());
  }

  monitorMemory(intervalMs: number): MemoryMonitor {
    const monitor = monitorVmMemory(
      {
        remote: () => this.vm.remote(),
        guestDir: this.vm.guestDir,
        streams: this.streams,
        tearingDown: () => this.tearing !== null,
        memoryNow: () => this.memoryNow(),
        picoPid: this.picoPid,
        onCounters: (c) => this.counts.record(this.picoPid, c),
      },
      intervalMs,
    );
    return {
      stop: async () => {
        const watched = await monitor.stop();
        // The stream's last counters can predate the end of a short upload (it reads every
        // 0.1 s): the reading after it is a fresh one (measured: 0 bytes written for a 4M upload).
        this.counts.stale();
        return watched;
      },
    };
  }

  async oomKills(): Promise<number> {
    let snap = await this.snapshot();
    if (snap && !snap.running && this.picoPid && !this.exit.value) {
      // PicoShare is gone but the watcher's report is still on its way: wait
      // for it, so that whoever asks next sees it exited (and how).
      await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000))]);
      snap = (await this.snapshot(true)) ?? snap;
    }
    // Only the PicoShare this environment started counts (the kernel log is the whole machine's).
    return snap ? snap.oomPids.filter((p) => this.ourPids.has(p)).length : 0;
  }

  async kernelPeakBytes(): Promise<number | null> {
    // A VM has no kernel-kept high-water mark for the whole machine.
    return null;
  }

  async picosharePeakRss(): Promise<number | null> {
    return (await this.snapshot())?.vmHwm ?? null;
  }

  /** See counters.ts. */
  counters(): Promise<Counters | null> {
    return this.counts.read(this.exit.value ? null : this.picoPid, this.vm.ssh);
  }

  async storage(): Promise<StorageReading | null> {
    if (!this.vm.ssh || !this.vm.guestDir) return null;
    const r = await this.vm.ssh.exec(storageScript(`${this.vm.guestDir}/data`, `${this.vm.guestDir}/tmp`), { timeoutMs: 15_000 }).catch(() => null);
    return r && r.code === 0 ? parseStorage(r.stdout) : null;
  }

  async goRuntimeEnv(): Promise<GoRuntimeEnv | null> {
    if (!this.vm.ssh || !this.picoPid || this.exit.value || this.tearing) return null;
    return guestGoRuntimeEnv(this.vm.remote(), this.picoPid, this.facts.sudo);
  }

  keepInstructions(baseUrl: string): string[] {
    const f = this.cfg.folder;
    const cd = f === process.cwd() ? "" : `cd ${f} && `;
    return [
      `VM kept with PicoShare running in it (id ${this.vm.vmId}, ${this.spec.ramMiB} MiB, ${this.cfg.provider}); ${baseUrl} ends with this run`,
      `  shell:   ${cd}vagrant ssh`,
      `  reach:   ${cd}vagrant ssh -- -N -L ${this.hostPort}:127.0.0.1:${this.guestPort}   then ${baseUrl}/login`,
      `  secret:  ${this.vm.guestDir}/secret in the VM`,
      `  log:     ${this.vm.guestDir}/picoshare.log in the VM` + (this.unit ? ` (journalctl -u ${this.unit})` : ""),
      `Stop it:   ${cd}vagrant destroy -f && rm -f ${statePath(f)}`,
    ];
  }

  // ---- ending -----------------------------------------------------------

  /** At this process's end: --keep-vm leaves the VM (only the ssh connection goes); an interrupt destroys it. */
  registerExitCleanup(): void {
    onCleanup("close the ssh connection to the VM", async () => {
      if (this.tearing) return this.tearing;
      if (interrupted()) return this.teardown();
      this.vm.saveState("keep");
      for (const s of [...this.streams]) await s.stop();
      await this.watcher.stop();
      await this.vm.closeSsh();
      rmSync(this.hostDir, { recursive: true, force: true });
    });
  }

  teardown(): Promise<void> {
    this.tearing ??= this.doTeardown();
    return this.tearing;
  }

  private async doTeardown(): Promise<void> {
    // Whatever vagrant command was under way (interrupted) ends first.
    await this.vm.cli.idle();
    for (const s of [...this.streams]) await s.stop().catch(() => {});
    await endInVm({
      vm: this.vm,
      folder: this.cfg.folder,
      ramMiB: this.spec.ramMiB,
      keepForReuse: this.reuseVm && this.ready && !this.broken && !interrupted(),
      ready: this.ready,
      forward: () => (this.hostPort ? { host: this.hostPort, guest: this.guestPort } : null),
      watcher: this.watcher,
      exitKnown: () => this.exit.value !== null,
      exited: () => this.exited,
      copyLog: () => this.snapshot(true),
    });
    rmSync(this.hostDir, { recursive: true, force: true });
  }
}
