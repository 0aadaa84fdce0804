// One test's environment in a Vagrant VM: the VM (machine.ts) and its guest
// folder (guest-folder.ts) made ready, then PicoShare started detached
// (systemd-run, else setsid), its exit watched by one long-lived ssh stream,
// memory read by another, and what is read after the upload (log, OOM kills,
// VmHWM) fetched in one round trip. At the end the VM is kept (--reuse-vm,
// --keep-vm) or destroyed.
//
// The VM's working set is MemTotal - MemAvailable of the whole VM: the guest
// kernel and the part of the page cache the kernel does not count as
// available are in it (see FLAKINESS.md for how to read it).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { EnvironmentSpec, ExitInfo, MemoryMonitor, StorageReading, TestEnvironment } from "../types.ts";
import { interrupted, onCleanup } from "../../core/cleanup.ts";
import { errorMessage } from "../../core/errors.ts";
import { shq } from "../../core/exec.ts";
import { log, warn } from "../../core/log.ts";
import { freePort, LOOPBACK } from "../../core/net.ts";
import { retry } from "../../core/retry.ts";
import { COUNTERS_FN, PICOSHARE_OOM_LINES, fetchGuestDatabase, guestGoRuntimeEnv, oomKilledPids, parseCountersLine, parseStorage, storageScript } from "../../vm/guest.ts";
import { CounterTracker, type Counters } from "../../upload/counters.ts";
import type { GoRuntimeEnv } from "../../upload/provenance.ts";
import { vmHwmBytes, type CounterReading } from "../../core/proc.ts";
import type { RemoteStream } from "../../vm/ssh.ts";
import type { VagrantConfig } from "./config.ts";
import { prepareGuest, stopGuestProcesses, wipeGuest, type GuestFacts } from "./guest-folder.ts";
import { ALIVE_FN, exitWatchScript, isExitLine, parseExitLine, startCommand, type StartSpec } from "./guest-scripts.ts";
import { VagrantMachine } from "./machine.ts";
import { monitorVmMemory, readVmMemory } from "./memory.ts";
import { checkedVagrantVersion } from "./prerequisites.ts";
import { removeVmState, statePath } from "./state.ts";

interface Snapshot {
  oomPids: number[];
  vmHwm: number | null;
  /** PicoShare was still running when the snapshot was taken. */
  running: boolean;
}

export class VagrantEnvironment implements TestEnvironment {
  readonly settings: TestEnvironment["settings"];
  readonly logPath: string;
  private exitedNow: Promise<ExitInfo>;
  private exitedResolve!: (e: ExitInfo) => void;
  private exitInfo: ExitInfo | null = null;

  private readonly vm: VagrantMachine;
  private readonly hostDir: string;
  private ready = false;
  private broken = false;
  private facts: GuestFacts = { uid: 0, gid: 0, sudo: "", method: "setsid", oomSource: null };
  /** PicoShare's counters as read in the guest. */
  private readonly tracker = new CounterTracker();
  private countersAt = -Infinity;
  private unit: string | null = null;
  private picoPid: number | null = null;
  /** The guest's uptime (s) just before PicoShare started: older kernel log lines are not about it. */
  private startUptime: number | null = null;
  private readonly ourPids = new Set<number>();
  private guestPort = 0;
  private hostPort = 0;
  private watcher: RemoteStream | null = null;
  private readonly streams = new Set<RemoteStream>();
  private tearing: Promise<void> | null = null;
  private snapshotChain: Promise<Snapshot | null> = Promise.resolve(null);
  private lastSnapshot: { at: number; value: Promise<Snapshot | null> } | null = null;

  constructor(
    private readonly spec: EnvironmentSpec,
    private readonly cfg: VagrantConfig,
    private readonly reuseVm: boolean,
  ) {
    this.exitedNow = new Promise<ExitInfo>((r) => (this.exitedResolve = r));
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
    return this.exitedNow;
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
    const port = Number(/^port=(\d+)$/m.exec(out)?.[1]);
    const pid = Number(/^pid=(\d+)$/m.exec(out)?.[1]);
    if (!port) throw new Error(`starting PicoShare in the VM printed no port: ${out.trim().slice(0, 200)}`);
    this.guestPort = port;
    this.picoPid = Number.isInteger(pid) && pid > 0 ? pid : null;
    const up = Number(/^uptime=(\d+(?:\.\d+)?)$/m.exec(out)?.[1]);
    this.startUptime = Number.isFinite(up) && up > 0 ? up : null;
    if (this.picoPid) this.ourPids.add(this.picoPid);
    this.settings.guest_port = this.guestPort;
    this.watchExit();

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

  /** One long-lived ssh stream that prints one line when PicoShare has ended. */
  private watchExit(restarts = 0): void {
    if (this.exitInfo) return;
    const script = exitWatchScript(this.facts.method, { guestDir: this.vm.guestDir, sudo: this.facts.sudo, unit: this.unit, pid: this.picoPid ?? 0 });
    let seen = false;
    const stream = this.vm.remote().stream(script, (line) => {
      if (isExitLine(line)) {
        seen = true;
        void this.markExited(parseExitLine(line));
      }
    });
    this.watcher = stream;
    void stream.done.then(async () => {
      // (A restart stops the old one on purpose.)
      if (seen || this.exitInfo || this.tearing || this.watcher !== stream) return;
      // The stream broke (not PicoShare): reconnect and watch again, a few times.
      if (restarts >= 3 || interrupted()) {
        warn("lost track of PicoShare in the VM (the ssh stream that watches it kept breaking)");
        this.broken = true;
        return;
      }
      await new Promise((r) => setTimeout(r, 500 * 2 ** restarts));
      if (this.tearing || this.exitInfo) return;
      try {
        await this.vm.ssh?.ensureOpen(this.signal);
        this.watchExit(restarts + 1);
      } catch (err) {
        this.broken = true;
        warn(`lost the ssh connection to the VM: ${errorMessage(err)}`);
      }
    });
  }

  /**
   * After a failure: whatever PicoShare the guest folder records is stopped,
   * its port forward cancelled, and PicoShare started again on
   * the same data dir in the same VM; `exited` follows the new process.
   */
  async restartPicoShare(secret: string): Promise<string> {
    if (!this.vm.ssh || !this.vm.guestDir || this.tearing) throw new Error("the VM is not reachable");
    const watcher = this.watcher;
    this.watcher = null;
    await watcher?.stop().catch(() => {});
    await stopGuestProcesses(this.vm.remote(), this.vm.guestDir);
    if (this.hostPort) await this.vm.remote().cancelForward(this.hostPort, this.guestPort).catch(() => {});
    this.exitInfo = null;
    this.exitedNow = new Promise<ExitInfo>((r) => (this.exitedResolve = r));
    this.lastSnapshot = null;
    return this.startPicoShare(secret);
  }

  async copyDatabase(dest: string): Promise<string> {
    if (!this.vm.ssh || !this.vm.guestDir || this.tearing) throw new Error("the VM is not reachable");
    return fetchGuestDatabase(this.vm.remote(), `${this.vm.guestDir}/data`, this.facts.sudo, dest);
  }

  private async markExited(info: ExitInfo): Promise<void> {
    if (this.exitInfo) return;
    this.exitInfo = info;
    // PicoShare's last words (and the unit's journal) come back to the host;
    // what reads them (oomKills, picosharePeakRss) waits for this snapshot.
    void this.snapshot(true).catch(() => {});
    this.exitedResolve(info);
  }

  /**
   * One ssh round trip for what is read after the upload: PicoShare's log
   * (copied to logPath; under systemd, once PicoShare ended, with the unit's
   * journal), the OOM killer's lines from the kernel log and PicoShare's
   * VmHWM. Reused for 300 ms: the runner asks for these one after another.
   */
  private snapshot(fresh = false): Promise<Snapshot | null> {
    if (!fresh && this.lastSnapshot && performance.now() - this.lastSnapshot.at < 300) return this.lastSnapshot.value;
    const run = async (): Promise<Snapshot | null> => {
      if (!this.vm.ssh || !this.vm.guestDir) return null;
      const mark = `--picoshare-perf-${randomBytes(6).toString("hex")}--`;
      const parts = [`tail -c 4194304 ${this.vm.q("picoshare.log")} 2>/dev/null`];
      if (this.unit && this.exitInfo) {
        parts.push(`echo "--- journal of ${this.unit} ---"`, `${this.facts.sudo}journalctl -u ${shq(this.unit)} -q --no-pager -o short-precise 2>/dev/null | tail -n 50`);
      }
      parts.push(`printf '\\n%s\\n' ${mark}`);
      if (this.facts.oomSource) {
        // Both print the kernel's "[seconds since boot]" stamp.
        const read = this.facts.oomSource === "dmesg" ? `${this.facts.sudo}dmesg` : `${this.facts.sudo}journalctl -k -q --no-pager -o short-monotonic`;
        parts.push(`${read} 2>/dev/null | grep -E ${shq(PICOSHARE_OOM_LINES)}`);
      }
      parts.push(`printf '\\n%s\\n' ${mark}`);
      if (this.picoPid && !this.exitInfo) {
        parts.push(`grep '^VmHWM:' /proc/${this.picoPid}/status 2>/dev/null`, ALIVE_FN, `alive ${this.picoPid} && echo running=1`);
      }
      const r = await this.vm.ssh.exec(`${parts.join("; ")}; true`, { timeoutMs: 30_000 });
      const [logText, oomText, hwmText] = r.stdout.split(`\n${mark}\n`);
      if (r.code !== 0 || hwmText === undefined) return null;
      writeFileSync(this.logPath, logText, { mode: 0o600 });
      return { oomPids: oomKilledPids(oomText, this.startUptime), vmHwm: vmHwmBytes(hwmText), running: /^running=1$/m.test(hwmText) };
    };
    // One at a time, in order.
    const value = this.snapshotChain.then(run, run);
    this.snapshotChain = value.catch(() => null);
    this.lastSnapshot = { at: performance.now(), value };
    return value;
  }

  // ---- measurements -----------------------------------------------------

  memoryNow(): Promise<number> {
    return readVmMemory(this.vm.remote());
  }

  monitorMemory(intervalMs: number): MemoryMonitor {
    const monitor = this.streamMemory(intervalMs);
    return {
      stop: async () => {
        const watched = await monitor.stop();
        // The stream's last counters can predate the end of a short upload (it reads every
        // 0.1 s): the reading after it is a fresh one (measured: 0 bytes written for a 4M upload).
        this.countersAt = -Infinity;
        return watched;
      },
    };
  }

  private streamMemory(intervalMs: number): MemoryMonitor {
    return monitorVmMemory(
      {
        remote: () => this.vm.remote(),
        guestDir: this.vm.guestDir,
        streams: this.streams,
        tearingDown: () => this.tearing !== null,
        memoryNow: () => this.memoryNow(),
        picoPid: this.picoPid,
        onCounters: (c) => this.recordCounters(c),
      },
      intervalMs,
    );
  }

  async oomKills(): Promise<number> {
    let snap = await this.snapshot();
    if (snap && !snap.running && this.picoPid && !this.exitInfo) {
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

  /**
   * PicoShare's counters: the memory stream's reading when it is fresh (the
   * end of the upload), else one read now while PicoShare runs (each ssh round
   * trip costs a second or more under TCG), else its last reading.
   */
  async counters(): Promise<Counters | null> {
    const fresh = performance.now() - this.countersAt < 1000;
    if (!fresh && this.picoPid && !this.exitInfo && this.vm.ssh) {
      const r = await this.vm.ssh.exec(`${COUNTERS_FN}\nctr ${this.picoPid}`, { timeoutMs: 15_000 }).catch(() => null);
      const c = r ? parseCountersLine(r.stdout) : null;
      if (c) this.recordCounters(c);
    }
    return this.tracker.total();
  }

  private recordCounters(c: CounterReading): void {
    this.tracker.record(String(this.picoPid), c);
    this.countersAt = performance.now();
  }

  async storage(): Promise<StorageReading | null> {
    if (!this.vm.ssh || !this.vm.guestDir) return null;
    const r = await this.vm.ssh.exec(storageScript(`${this.vm.guestDir}/data`, `${this.vm.guestDir}/tmp`), { timeoutMs: 15_000 }).catch(() => null);
    return r && r.code === 0 ? parseStorage(r.stdout) : null;
  }

  async goRuntimeEnv(): Promise<GoRuntimeEnv | null> {
    if (!this.vm.ssh || !this.picoPid || this.exitInfo || this.tearing) return null;
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
      await this.watcher?.stop();
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
    const keepForReuse = this.reuseVm && this.ready && !this.broken && !interrupted();
    const problems: string[] = [];
    let reachable = false;
    if (this.vm.sshConfigText) {
      try {
        // Not with the interrupt signal: cleaning up after Ctrl-C is the point.
        if (!this.vm.ssh) await this.vm.connect(this.vm.sshConfigText, { retries: 1, signal: AbortSignal.timeout(60_000) });
        else await this.vm.ssh.ensureOpen();
        reachable = true;
      } catch (err) {
        problems.push(`ssh: ${errorMessage(err)}`);
      }
    }
    if (reachable && this.vm.guestDir) {
      const ssh = this.vm.remote();
      try {
        await stopGuestProcesses(ssh, this.vm.guestDir);
        if (this.watcher && !this.exitInfo) await Promise.race([this.exited, new Promise((r) => setTimeout(r, 3000))]);
        await this.watcher?.stop();
        // markExited copied the log when PicoShare ended; else copy it now.
        if (!this.exitInfo) await this.snapshot(true).catch(() => {});
        if (this.hostPort) await ssh.cancelForward(this.hostPort, this.guestPort).catch(() => {});
        if (keepForReuse) {
          await wipeGuest(ssh, this.vm.guestDir);
        } else {
          await ssh.run(`rm -rf ${shq(this.vm.guestDir)}`, { what: "remove the guest folder", timeoutMs: 120_000 });
        }
      } catch (err) {
        problems.push(errorMessage(err));
      }
    }
    await this.watcher?.stop().catch(() => {});
    await this.vm.closeSsh().catch(() => {});
    if (keepForReuse && problems.length === 0) {
      this.vm.saveState("reuse");
      log(`VM kept for the next --reuse-vm test with ${this.spec.ramMiB} MiB (state: ${statePath(this.cfg.folder)})`);
    } else {
      if (keepForReuse) warn(`the VM could not be made ready for reuse (${problems.join("; ")}): destroying it`);
      else if (problems.length > 0 && this.ready) warn(`cleaning the VM up: ${problems.join("; ")}`);
      if (this.vm.vmId) {
        if (await this.vm.destroyVm()) removeVmState(this.cfg.folder);
      }
    }
    rmSync(this.hostDir, { recursive: true, force: true });
  }
}
