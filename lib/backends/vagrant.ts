// The vagrant backend: PicoShare in a Vagrant VM with VM_MEMORY MiB of RAM
// and one CPU (the Vagrantfile at the project's top). After `vagrant up`,
// `vagrant ssh-config` is read once and everything else goes over one shared
// plain-ssh connection (lib/vm/ssh.ts): the binary is copied once per VM,
// PicoShare is started detached (systemd-run, else setsid), the upload goes
// through a forwarded port, and memory is read by one long-lived stream.
//
// The VM's working set is MemTotal - MemAvailable of the whole VM: the guest
// kernel and the part of the page cache the kernel does not count as
// available are in it (see FLAKINESS.md for how to read it).
import { accessSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import type { Backend, EnvironmentSpec, ExitInfo, MemoryMonitor, TestEnvironment } from "./types.ts";
import { localDiskNeeded } from "./local.ts";
import { interrupted, onCleanup } from "../core/cleanup.ts";
import { oneOf } from "../core/cli.ts";
import { UsageError, errorMessage } from "../core/errors.ts";
import { writeFileAtomic } from "../core/files.ts";
import { log, warn } from "../core/log.ts";
import { freePort, LOOPBACK } from "../core/net.ts";
import { ROOT } from "../core/paths.ts";
import { acquireLock, LockHeldError, type Lock } from "../core/pid-lock.ts";
import { retry, StopRetrying } from "../core/retry.ts";
import { formatBytes } from "../core/sizes.ts";
import { parseSshConfig, shq, SshConnection, type RemoteStream } from "../vm/ssh.ts";
import {
  VagrantCli, VagrantLockedError, lastLines, parseMachineState, parseVagrantVersion, versionAtLeast,
} from "./vagrant-cli.ts";

export const DEFAULT_BOX = "generic/ubuntu2204";
export const PROVIDERS = ["libvirt", "virtualbox"] as const;
export type Provider = (typeof PROVIDERS)[number];
/** libvirt's domain type: kvm, or qemu (TCG: the CPU emulated, for hosts without KVM). */
export const LIBVIRT_DRIVERS = ["kvm", "qemu"] as const;
export type LibvirtDriver = (typeof LIBVIRT_DRIVERS)[number];
export const MIN_VAGRANT_VERSION = [2, 2, 0] as const;
/** In the Vagrant folder's .vagrant/: the VM a run left up, the harness's lock, vagrant's output. */
export const STATE_FILE = "picoshare-perf-state.json";
export const LOCK_FILE = "picoshare-perf.lock";
/** Held by the process that runs a test (create to exit): a matrix holds LOCK_FILE, its run-test this one. */
export const TEST_LOCK_FILE = "picoshare-perf-test.lock";
export const VAGRANT_LOG_FILE = "picoshare-perf-vagrant.log";
/** Every guest folder is named so: one per VM, under PERF_VAGRANT_GUEST_DIR. */
export const GUEST_PREFIX = "picoshare-perf-vm-";
export type StartMethod = "systemd-run" | "setsid";
const SKIP_HOST_CHECKS = "PERF_VAGRANT_SKIP_HOST_CHECKS";

export interface VagrantOptions {
  /** --reuse-vm: keep one VM up across tests with the same RAM (wiped between tests). */
  reuseVm?: boolean;
}

/** Everything the backend reads from the environment, in one place. */
export interface VagrantConfig {
  /** The folder holding the Vagrantfile and .vagrant/ (VAGRANT_CWD, default the project's folder). */
  folder: string;
  provider: Provider;
  box: string;
  /** The libvirt provider's domain type (VM_LIBVIRT_DRIVER, read by the Vagrantfile too). */
  libvirtDriver: LibvirtDriver;
  /** Folder in the guest under which the VM's private folder goes. */
  guestBase: string;
  /** Bound on waiting for the harness's and Vagrant's locks, ms. */
  lockWaitMs: number;
  /** Bound on one `vagrant up`, ms. */
  upTimeoutMs: number;
  /** Tests only: skip the checks of this host's virtualisation (KVM, VirtualBox). */
  skipHostChecks: boolean;
}

function seconds(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === "") return fallback * 1000;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${name} must be a number of seconds, got "${text}"`);
  return n * 1000;
}

export function vagrantConfig(env: NodeJS.ProcessEnv = process.env): VagrantConfig {
  const provider = oneOf("VAGRANT_DEFAULT_PROVIDER", env.VAGRANT_DEFAULT_PROVIDER || "libvirt", PROVIDERS, " for the vagrant backend");
  const driver = oneOf("VM_LIBVIRT_DRIVER", env.VM_LIBVIRT_DRIVER || "kvm", LIBVIRT_DRIVERS);
  const guestBase = env.PERF_VAGRANT_GUEST_DIR || "/var/tmp";
  if (!guestBase.startsWith("/") || /[^\w./-]/.test(guestBase)) {
    throw new UsageError(`PERF_VAGRANT_GUEST_DIR must be an absolute path of letters, digits, . _ - and /, got "${guestBase}"`);
  }
  return {
    folder: resolve(env.VAGRANT_CWD || ROOT),
    provider,
    box: env.VM_BOX || DEFAULT_BOX,
    libvirtDriver: driver,
    guestBase: guestBase.replace(/\/+$/, "") || "/",
    lockWaitMs: seconds(env, "PERF_VAGRANT_LOCK_WAIT", 60),
    upTimeoutMs: seconds(env, "PERF_VAGRANT_UP_TIMEOUT", 900),
    skipHostChecks: env[SKIP_HOST_CHECKS] === "1",
  };
}

// ---------------------------------------------------------------------------
// The state file: which VM a run left up in the Vagrant folder, and why.

export interface VmState {
  version: 1;
  vm_id: string;
  ram_mb: number;
  provider: Provider;
  box: string;
  guest_dir: string;
  /**
   * creating: `vagrant up` under way; in_use: a fresh VM's test under way (a
   * run that died left it so); reuse: kept by --reuse-vm; keep: kept by --keep-vm.
   */
  mode: "creating" | "in_use" | "reuse" | "keep";
  /** The output of `vagrant ssh-config`, read once after `vagrant up`. */
  ssh_config: string | null;
  created: string;
  updated: string;
}

function dotVagrant(folder: string): string {
  return join(folder, ".vagrant");
}

export function statePath(folder: string): string {
  return join(dotVagrant(folder), STATE_FILE);
}

export function readVmState(folder: string): VmState | null {
  try {
    const s = JSON.parse(readFileSync(statePath(folder), "utf8")) as VmState;
    return s && s.version === 1 && typeof s.vm_id === "string" ? s : null;
  } catch {
    return null;
  }
}

function writeVmState(folder: string, s: VmState): void {
  mkdirSync(dotVagrant(folder), { recursive: true });
  writeFileAtomic(statePath(folder), `${JSON.stringify({ ...s, updated: new Date().toISOString() }, null, 2)}\n`);
}

function removeVmState(folder: string): void {
  rmSync(statePath(folder), { force: true });
}

// ---------------------------------------------------------------------------
// Reading the guest's kernel log and exit statuses.

/**
 * Pids of picoshare processes the OOM killer ended, from kernel log text:
 * "Out of memory: Killed process N (picoshare)" (also "Memory cgroup out of
 * memory: ...") and "oom-kill:...,task=picoshare,pid=N,...". One kill logs
 * both lines: pids are counted once. With `sinceSeconds`, lines stamped
 * earlier (the kernel's "[seconds since boot]") are skipped: pids are reused,
 * and an earlier test in the same VM may have lost a PicoShare with this pid.
 */
export function oomKilledPids(kernelLog: string, sinceSeconds: number | null = null): number[] {
  const pids = new Set<number>();
  for (const line of kernelLog.split("\n")) {
    const stamp = /^\[\s*(\d+\.\d+)\]/.exec(line);
    if (sinceSeconds !== null && stamp && Number(stamp[1]) < sinceSeconds) continue;
    const m = /Killed process (\d+) \(picoshare\)/.exec(line) ?? /oom-kill:\S*task=picoshare,pid=(\d+)/.exec(line);
    if (m) pids.add(Number(m[1]));
  }
  return [...pids];
}

// The first name for a number wins (SIGABRT before SIGIOT, SIGIO before SIGPOLL).
const SIGNAL_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(osConstants.signals)) if (!SIGNAL_NAMES.has(n)) SIGNAL_NAMES.set(n, name);

/**
 * How PicoShare ended, from the watcher's last line: "exit-status N" (the
 * wrapper's `wait` status: 128+n is signal n) or "systemd ExecMainCode=C
 * ExecMainStatus=S" (C 1: exited with status S; 2 or 3: killed or dumped by signal S).
 */
export function parseExitLine(line: string): ExitInfo {
  const w = /^exit-status\s+(\d+)?/.exec(line);
  if (w) {
    if (w[1] === undefined) return { code: null, signal: null };
    const n = Number(w[1]);
    return n > 128 && SIGNAL_NAMES.has(n - 128) ? { code: null, signal: SIGNAL_NAMES.get(n - 128)! } : { code: n, signal: null };
  }
  const code = Number(/ExecMainCode=(\d+)/.exec(line)?.[1] ?? NaN);
  const status = Number(/ExecMainStatus=(\d+)/.exec(line)?.[1] ?? NaN);
  if (line.startsWith("systemd") && Number.isInteger(code) && Number.isInteger(status)) {
    if (code === 2 || code === 3) return { code: null, signal: SIGNAL_NAMES.get(status) ?? `signal ${status}` };
    return { code: status, signal: null };
  }
  return { code: null, signal: null };
}

// Shell fragments that run in the guest: plain POSIX sh, since ssh hands every
// command to the remote user's login shell (bash for vagrant, possibly dash).

/** Prints MemTotal - MemAvailable in bytes, reading /proc/meminfo with builtins only. */
const MEM_FN =
  "m() { while read -r k v _; do case $k in MemTotal:) t=$v;; MemAvailable:) a=$v; break;; esac; done < /proc/meminfo; echo $(( (t - a) * 1024 )); }";

/** `alive PID`: true while the process runs and is not a zombie. */
const ALIVE_FN =
  "alive() { [ -r /proc/$1/status ] || return 1; while read -r k v _; do if [ \"$k\" = State: ]; then [ \"$v\" != Z ]; return; fi; done < /proc/$1/status 2>/dev/null; return 1; }";

/**
 * Stops whatever PicoShare a guest folder's unit name or pid files point at:
 * SIGTERM (PicoShare shuts down within 5 s), SIGKILL after 6 s, then the
 * wrapper's whole process group.
 */
function stopScript(dir: string): string {
  return [
    ALIVE_FN,
    'S=; [ "$(id -u)" = 0 ] || S="sudo -n"',
    `cd ${shq(dir)} 2>/dev/null || exit 0`,
    'if [ -s unit ]; then u=$(cat unit); $S systemctl stop "$u" 2>/dev/null; $S systemctl reset-failed "$u" 2>/dev/null; fi',
    "p=$(cat picoshare.pid 2>/dev/null); w=$(cat wrapper.pid 2>/dev/null)",
    'if [ -n "$p" ] && alive "$p"; then kill -TERM "$p" 2>/dev/null; i=0; while alive "$p" && [ $i -lt 60 ]; do sleep 0.1; i=$((i + 1)); done; kill -KILL "$p" 2>/dev/null; fi',
    'if [ -n "$w" ] && alive "$w"; then kill -KILL -- "-$w" 2>/dev/null; fi',
    "true",
  ].join("\n");
}

export interface StartSpec {
  guestDir: string;
  /** "" as root, else "sudo -n ". */
  sudo: string;
  uid: number;
  gid: number;
  /** The systemd unit's name (systemd-run only). */
  unit: string | null;
  /** Ports to try, in order: the first nobody listens on is used. */
  candidatePorts: number[];
}

/**
 * The guest-side script that starts PicoShare, run by the ssh user's shell
 * with the secret on stdin. It writes the secret to a file only this user
 * reads, picks the first candidate port absent from /proc/net/tcp{,6}
 * (candidates lie below the usual ephemeral range, so that no outgoing
 * connection holds one), starts PicoShare detached from the ssh session, and
 * prints "port=N" and "pid=N".
 *   systemd-run: a transient unit (as the ssh user, RemainAfterExit so that
 *     its exit status stays readable, output appended to picoshare.log);
 *   setsid: `setsid -f` runs start.sh in a new session with every stream
 *     redirected; start.sh records both pids and, once PicoShare ends, its
 *     wait status in exit-status.
 */
export function startCommand(method: StartMethod, spec: StartSpec): string {
  const d = shq(spec.guestDir);
  const env = {
    PS_SHARED_SECRET_FILE: `${spec.guestDir}/secret`,
    // Go's multipart parser spills uploads here: one folder, wiped between tests.
    TMPDIR: `${spec.guestDir}/tmp`,
  };
  const argv = [`${spec.guestDir}/bin/picoshare`, "-db", `${spec.guestDir}/data/store.db`].map(shq).join(" ");
  const lines = [
    "set -e",
    `cd ${d}`,
    "rm -f picoshare.pid wrapper.pid exit-status unit",
    "(umask 077 && cat > secret)",
    "port=",
    `for p in ${spec.candidatePorts.join(" ")}; do`,
    `  h=$(printf '%04X' "$p")`,
    '  if ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -Eq "^ *[0-9]+: [0-9A-F]+:$h [0-9A-F]+:0000 0A "; then port=$p; break; fi',
    "done",
    '[ -n "$port" ] || { echo "no free TCP port found in the VM" >&2; exit 1; }',
    // Kernel log lines stamped before this moment are not about this PicoShare.
    "read -r up _ < /proc/uptime",
  ];
  if (method === "systemd-run") {
    if (!spec.unit) throw new Error("systemd-run needs a unit name");
    const unit = shq(spec.unit);
    const log = `${spec.guestDir}/picoshare.log`;
    lines.push(
      `echo ${unit} > unit`,
      `${spec.sudo}systemd-run --quiet --unit=${unit} --uid=${spec.uid} --gid=${spec.gid} --working-directory=${d} ` +
        `-p RemainAfterExit=yes -p TimeoutStopSec=5 -p ${shq(`StandardOutput=append:${log}`)} -p ${shq(`StandardError=append:${log}`)} ` +
        `"--setenv=PORT=$port" ${Object.entries(env).map(([k, v]) => `--setenv=${shq(`${k}=${v}`)}`).join(" ")} ${argv}`,
      `${spec.sudo}systemctl show -p MainPID --value ${unit} > picoshare.pid`,
    );
  } else {
    const script = [
      "#!/bin/sh",
      "# Written by the picoshare-perf harness: runs PicoShare detached and records how it ended.",
      `cd ${d} || exit 1`,
      "echo $$ > wrapper.pid",
      'export PORT="$1"',
      ...Object.entries(env).map(([k, v]) => `export ${k}=${shq(v)}`),
      `${argv} &`,
      "echo $! > picoshare.pid",
      'wait "$!"',
      "echo $? > exit-status",
    ].join("\n");
    lines.push(
      `cat > start.sh <<'PICOSHARE_PERF_EOF'\n${script}\nPICOSHARE_PERF_EOF`,
      // A new session, all of its output to the log: nothing ties it to this ssh session.
      'setsid -f sh ./start.sh "$port" < /dev/null >> picoshare.log 2>&1',
      "i=0; while [ ! -s picoshare.pid ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done",
    );
  }
  lines.push('echo "port=$port"; echo "pid=$(cat picoshare.pid)"; echo "uptime=$up"');
  return lines.join("\n");
}

// ---------------------------------------------------------------------------
// The backend.

let checkedVersion = "";

const which = (cmd: string): string | null => Bun.which(cmd);

/** The prerequisites, each failing with one line (exit 2); returns a one-line summary. */
async function checkPrerequisites(cfg: VagrantConfig, cli: VagrantCli): Promise<string> {
  const vagrant = which("vagrant");
  if (!vagrant) {
    throw new UsageError(
      "vagrant is not on PATH: install Vagrant 2.2 or newer (https://developer.hashicorp.com/vagrant/install), or use --backend local",
    );
  }
  const v = await cli.run(["--version"], { timeoutMs: 60_000 });
  const version = parseVagrantVersion(v.stdout + v.stderr);
  if (v.code !== 0 || !version) {
    throw new UsageError(`\`vagrant --version\` did not say its version (${lastLines(v.stderr || v.stdout) || `exit ${v.code}`}): check the Vagrant install at ${vagrant}`);
  }
  const vtext = version.join(".");
  if (!versionAtLeast(version, MIN_VAGRANT_VERSION)) {
    throw new UsageError(`vagrant ${vtext} (${vagrant}) is too old: the vagrant backend needs Vagrant ${MIN_VAGRANT_VERSION.slice(0, 2).join(".")} or newer`);
  }
  let providerText: string = cfg.provider;
  if (cfg.provider === "libvirt") {
    const p = await cli.run(["plugin", "list"], { timeoutMs: 120_000 });
    const m = /^\s*vagrant-libvirt\s*\(([^,)]+)/m.exec(p.stdout);
    if (p.code !== 0 || !m) {
      throw new UsageError(
        "the libvirt provider's plugin is missing (`vagrant plugin list` shows no vagrant-libvirt): " +
          "install it (vagrant plugin install vagrant-libvirt, or apt-get install vagrant-libvirt), or set VAGRANT_DEFAULT_PROVIDER=virtualbox",
      );
    }
    providerText = `libvirt (vagrant-libvirt ${m[1].trim()})`;
  }
  let hostText = "";
  if (cfg.skipHostChecks) {
    hostText = `host virtualisation not checked (${SKIP_HOST_CHECKS}=1)`;
  } else if (cfg.provider === "libvirt" && cfg.libvirtDriver === "qemu") {
    hostText = "libvirt driver qemu (TCG: the CPU is emulated, KVM not needed)";
  } else if (cfg.provider === "libvirt") {
    const orTcg = "or set VM_LIBVIRT_DRIVER=qemu (an emulated CPU: slow), or use --backend local";
    if (!existsSync("/dev/kvm")) {
      throw new UsageError(`KVM is not available (/dev/kvm is missing): the libvirt provider's kvm driver needs hardware virtualisation; enable it (kvm modules, nested virtualisation), ${orTcg}`);
    }
    try {
      accessSync("/dev/kvm", fsConstants.R_OK | fsConstants.W_OK);
    } catch {
      throw new UsageError(`KVM is not usable: /dev/kvm cannot be opened read-write by this user; add the user to the kvm group (then log in again), ${orTcg}`);
    }
    hostText = "libvirt driver kvm, /dev/kvm usable";
  } else {
    if (!(which("VBoxManage"))) {
      throw new UsageError("VirtualBox is not installed (VBoxManage is not on PATH): install VirtualBox, or use VAGRANT_DEFAULT_PROVIDER=libvirt");
    }
    hostText = "VirtualBox present";
  }
  for (const tool of ["ssh", "scp"]) {
    if (!(which(tool))) {
      throw new UsageError(`${tool} is not on PATH: install the OpenSSH client (apt-get install openssh-client); the vagrant backend talks to the VM with plain ssh and scp`);
    }
  }
  const sshV = Bun.spawnSync(["ssh", "-V"], { stdout: "pipe", stderr: "pipe" });
  const sshText = (sshV.stderr.toString() + sshV.stdout.toString()).trim().split(/[\s,]/)[0] || "ssh";
  checkedVersion = vtext;
  return `vagrant ${vtext}, provider ${providerText}, ${hostText}, ${sshText}`;
}

class VagrantBackend implements Backend {
  readonly name = "vagrant" as const;
  private lock: Lock | null = null;
  private testLock: Lock | null = null;
  private summary: string | null = null;

  constructor(private readonly opts: VagrantOptions) {}

  async endRun(): Promise<void> {
    if (this.opts.reuseVm && (await destroyKeptVm())) log("Destroyed the VM kept by --reuse-vm");
  }

  async preflight(_spec: EnvironmentSpec): Promise<void> {
    const cfg = vagrantConfig();
    const cli = new VagrantCli(cfg.folder, {}, null);
    this.summary ??= await checkPrerequisites(cfg, cli);
    if (!existsSync(join(cfg.folder, "Vagrantfile"))) {
      throw new UsageError(`no Vagrantfile in ${cfg.folder}: run from the project's folder or point VAGRANT_CWD at the folder holding it`);
    }
    await this.takeLock(cfg, false);
    log(`Vagrant: ${this.summary}; folder ${cfg.folder}${this.opts.reuseVm ? "; --reuse-vm" : ""}`);
  }

  /**
   * The harness's own lock on the Vagrant folder, held until this process
   * ends: a matrix takes it in its preflight and shares it with the run-test
   * processes it starts (its descendants); the process that makes a VM also
   * takes the test lock, so that a run-test orphaned by a killed matrix still
   * keeps others out.
   */
  private async takeLock(cfg: VagrantConfig, forTest: boolean): Promise<void> {
    mkdirSync(dotVagrant(cfg.folder), { recursive: true });
    const what = `the Vagrant folder ${cfg.folder}`;
    try {
      if (!this.lock) {
        const lock = await acquireLock(join(dotVagrant(cfg.folder), LOCK_FILE), what, cfg.lockWaitMs, { shareWithAncestors: true });
        this.lock = lock;
        onCleanup("release the Vagrant folder's lock", () => lock.release());
      }
      if (forTest && !this.testLock) {
        const lock = await acquireLock(join(dotVagrant(cfg.folder), TEST_LOCK_FILE), what, cfg.lockWaitMs);
        this.testLock = lock;
        onCleanup("release the Vagrant folder's test lock", () => lock.release());
      }
    } catch (err) {
      if (err instanceof LockHeldError) throw new UsageError(err.message);
      throw err;
    }
  }

  async create(spec: EnvironmentSpec): Promise<TestEnvironment> {
    const cfg = vagrantConfig();
    await this.takeLock(cfg, true);
    const env = new VagrantEnvironment(spec, cfg, Boolean(this.opts.reuseVm));
    // Until the environment is handed over, an interrupt destroys what is being made.
    const forget = onCleanup("destroy the VM being made", () => env.teardown());
    try {
      await env.prepare();
    } catch (err) {
      forget();
      if (!interrupted()) await env.teardown();
      throw err;
    }
    forget();
    env.registerExitCleanup();
    return env;
  }
}

export function vagrantBackend(opts: VagrantOptions = {}): Backend {
  return new VagrantBackend(opts);
}

// ---------------------------------------------------------------------------
// One test's environment.

interface Snapshot {
  oomPids: number[];
  vmHwm: number | null;
  /** PicoShare was still running when the snapshot was taken. */
  running: boolean;
}

class VagrantEnvironment implements TestEnvironment {
  readonly settings: TestEnvironment["settings"];
  readonly logPath: string;
  readonly exited: Promise<ExitInfo>;
  private exitedResolve!: (e: ExitInfo) => void;
  private exitInfo: ExitInfo | null = null;

  private readonly cli: VagrantCli;
  private readonly hostDir: string;
  private ssh: SshConnection | null = null;
  private sshConfigText: string | null = null;
  private vmId = "";
  private guestDir = "";
  private reused = false;
  private ready = false;
  private broken = false;
  private sudo = "";
  private uid = 0;
  private gid = 0;
  private method: StartMethod = "setsid";
  private unit: string | null = null;
  private oomSource: "dmesg" | "journalctl" | null = null;
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
    this.exited = new Promise<ExitInfo>((r) => (this.exitedResolve = r));
    this.cli = new VagrantCli(
      cfg.folder,
      { VM_MEMORY: String(spec.ramMiB), VM_BOX: cfg.box, VM_LIBVIRT_DRIVER: cfg.libvirtDriver },
      join(dotVagrant(cfg.folder), VAGRANT_LOG_FILE),
    );
    this.hostDir = mkdtempSync(join(spec.workDir, "picoshare-perf-vagrant-"));
    this.logPath = join(this.hostDir, "picoshare.log");
    writeFileSync(this.logPath, "", { mode: 0o600 });
    this.settings = {
      vagrant_folder: cfg.folder,
      vagrant_version: checkedVersion || null,
      provider: cfg.provider,
      libvirt_driver: cfg.provider === "libvirt" ? cfg.libvirtDriver : null,
      box: cfg.box,
      vm_memory_mib: spec.ramMiB,
      vm_cpus: 1,
      vm_reused: false,
      vm_boot_seconds: null,
      memory_metric: "MemTotal - MemAvailable of the whole VM",
    };
  }

  private get signal(): AbortSignal {
    return this.spec.signal;
  }

  private q(name: string): string {
    return shq(`${this.guestDir}/${name}`);
  }

  private remote(): SshConnection {
    if (!this.ssh) throw new Error("no ssh connection to the VM");
    return this.ssh;
  }

  // ---- making the VM ----------------------------------------------------

  async prepare(): Promise<void> {
    const state = readVmState(this.cfg.folder);
    if (state) await this.tryReuse(state);
    if (!this.reused) await this.bootFresh(state !== null);
    await this.prepareGuest();
    this.ready = true;
  }

  private async tryReuse(state: VmState): Promise<void> {
    const same = state.ram_mb === this.spec.ramMiB && state.provider === this.cfg.provider && state.box === this.cfg.box;
    if (this.reuseVm && same && state.mode === "reuse" && state.ssh_config) {
      try {
        this.vmId = state.vm_id;
        this.guestDir = state.guest_dir;
        await this.connect(state.ssh_config, { retries: 1 });
        const id = (await this.remote().exec(`cat ${this.q("vm-id")} 2>/dev/null`, { timeoutMs: 15_000, signal: this.signal })).stdout.trim();
        if (id !== state.vm_id) throw new Error(`its folder ${state.guest_dir} is not there (found id "${id}")`);
        this.reused = true;
        this.settings.vm_reused = true;
        log(`Reusing the VM kept by an earlier --reuse-vm run (id ${state.vm_id}, ${state.ram_mb} MiB, up since ${state.created})`);
        return;
      } catch (err) {
        if (this.signal.aborted) throw err;
        log(`The VM kept by an earlier run does not answer (${errorMessage(err)}): destroying it and making a new one`);
        await this.closeSsh();
      }
    } else {
      const why =
        state.mode === "creating" || state.mode === "in_use"
          ? `an earlier run (${state.mode === "creating" ? "making it" : "using it"}) stopped without cleaning up`
          : !this.reuseVm
            ? `kept by an earlier ${state.mode === "keep" ? "--keep-vm" : "--reuse-vm"} run; this test wants a fresh VM`
            : !same
              ? `it has ${state.ram_mb} MiB (${state.provider}, ${state.box}); this test needs ${this.spec.ramMiB} MiB (${this.cfg.provider}, ${this.cfg.box})`
              : `kept by an earlier --keep-vm run`;
      log(`Destroying the VM left in ${this.cfg.folder} (${why})`);
      // Its guest folder too, where the "VM" outlives `vagrant destroy` (tests).
      if (state.ssh_config && state.guest_dir.startsWith(`${this.cfg.guestBase}/${GUEST_PREFIX}`)) {
        await this.removeGuestDirVia(state.ssh_config, state.guest_dir);
      }
    }
    // `vagrant up` on a machine that is still there would bring back the old one.
    if (!(await this.destroyVm())) throw new Error(`could not destroy the VM left in ${this.cfg.folder} (see the warning above)`);
    removeVmState(this.cfg.folder);
  }

  /** Best effort: removes a guest folder through a short-lived connection (before a destroy). */
  private async removeGuestDirVia(sshConfig: string, dir: string): Promise<void> {
    let conn: SshConnection | null = null;
    try {
      conn = SshConnection.create(parseSshConfig(sshConfig));
      await conn.open({ retries: 0, signal: this.signal });
      await this.stopGuestProcesses(conn, dir);
      await conn.run(`rm -rf ${shq(dir)}`, { timeoutMs: 60_000, what: "remove the old guest folder" });
    } catch {
      // the VM is gone or unreachable: destroying it is enough
    } finally {
      await conn?.close();
    }
  }

  private async bootFresh(stateWasThere: boolean): Promise<void> {
    if (!stateWasThere) {
      const st = await this.cli.run(["status", "--machine-readable"], { timeoutMs: 120_000, signal: this.signal });
      const machine = parseMachineState(st.stdout);
      if (machine && machine !== "not_created") {
        log(`The Vagrant folder ${this.cfg.folder} already has a VM (${machine}) that no run recorded: destroying it first`);
        if (!(await this.destroyVm())) throw new Error(`could not destroy the VM already in ${this.cfg.folder} (see the warning above)`);
      }
    }
    this.vmId = randomBytes(6).toString("hex");
    this.guestDir = `${this.cfg.guestBase}/${GUEST_PREFIX}${this.vmId}`;
    this.saveState("creating");
    const t0 = performance.now();
    log(`Starting a VM: vagrant up --provider ${this.cfg.provider} (${this.spec.ramMiB} MiB, 1 CPU, box ${this.cfg.box})`);
    await retry(
      "vagrant up",
      async (attempt) => {
        if (attempt > 1) await this.destroyVm();
        try {
          await this.cli.check(["up", "--provider", this.cfg.provider], {
            timeoutMs: this.cfg.upTimeoutMs,
            signal: this.signal,
            lockWaitMs: this.cfg.lockWaitMs,
          });
        } catch (err) {
          if (err instanceof VagrantLockedError || this.signal.aborted) throw new StopRetrying(err as Error);
          throw err;
        }
      },
      { retries: 2, minDelay: 5000, maxDelay: 20_000, signal: this.signal },
    );
    // Read once; every later command goes through plain ssh.
    const sc = await this.cli.check(["ssh-config"], { timeoutMs: 120_000, signal: this.signal, lockWaitMs: this.cfg.lockWaitMs });
    await this.connect(sc.stdout, { retries: 6 });
    this.settings.vm_boot_seconds = Math.round((performance.now() - t0) / 10) / 100;
    log(`VM up in ${this.settings.vm_boot_seconds} s; ssh ${this.remote().description}`);
  }

  private async connect(sshConfig: string, opts: { retries: number; signal?: AbortSignal }): Promise<void> {
    const target = parseSshConfig(sshConfig);
    this.sshConfigText = sshConfig;
    this.ssh = SshConnection.create(target);
    await this.ssh.open({ signal: opts.signal ?? this.signal, retries: opts.retries });
    this.settings.ssh_target = this.ssh.description;
  }

  private async closeSsh(): Promise<void> {
    const s = this.ssh;
    this.ssh = null;
    await s?.close();
  }

  private saveState(mode: VmState["mode"]): void {
    const now = new Date().toISOString();
    const old = readVmState(this.cfg.folder);
    writeVmState(this.cfg.folder, {
      version: 1,
      vm_id: this.vmId,
      ram_mb: this.spec.ramMiB,
      provider: this.cfg.provider,
      box: this.cfg.box,
      guest_dir: this.guestDir,
      mode,
      ssh_config: this.sshConfigText,
      created: old?.vm_id === this.vmId ? old.created : now,
      updated: now,
    });
  }

  /** `vagrant destroy -f`, retried; a failure is reported, not thrown (teardown goes on). */
  private async destroyVm(): Promise<boolean> {
    await this.cli.idle();
    try {
      await retry(
        "vagrant destroy",
        async () => {
          try {
            await this.cli.check(["destroy", "-f"], { timeoutMs: 300_000, lockWaitMs: this.cfg.lockWaitMs });
          } catch (err) {
            if (err instanceof VagrantLockedError) throw new StopRetrying(err);
            throw err;
          }
        },
        { retries: 2, minDelay: 2000 },
      );
      return true;
    } catch (err) {
      warn(`the VM was not destroyed: ${errorMessage(err)}; destroy it by hand: cd ${this.cfg.folder} && vagrant destroy -f`);
      return false;
    }
  }

  /** The guest's private folder, facts, the binary (once per VM) and a clean data dir. */
  private async prepareGuest(): Promise<void> {
    const ssh = this.remote();
    const d = shq(this.guestDir);
    const out = await ssh.run(
      [
        `umask 077; mkdir -p ${d}/bin ${d}/data ${d}/tmp && chmod 700 ${d}`,
        `[ -s ${d}/vm-id ] || echo ${shq(this.vmId)} > ${d}/vm-id`,
        'echo "uid=$(id -u)"; echo "gid=$(id -g)"',
        'if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then echo systemd=yes; else echo systemd=no; fi',
        'if command -v setsid >/dev/null 2>&1; then echo setsid=yes; else echo setsid=no; fi',
        'echo "kernel=$(uname -r)"',
        // Shell arithmetic: awk would print big numbers rounded (%.6g).
        "echo \"memtotal=$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) * 1024 ))\"",
        `echo "free=$(( $(df -Pk ${d} | awk 'NR == 2 { print $4 }') * 1024 ))"`,
        `echo "binary=$(sha256sum ${d}/bin/picoshare 2>/dev/null | cut -d ' ' -f 1)"`,
        // Where the OOM killer's lines can be read (root only on Ubuntu: kernel.dmesg_restrict).
        'S=; [ "$(id -u)" = 0 ] || S="sudo -n"',
        "if $S dmesg >/dev/null 2>&1; then echo oom=dmesg; elif $S journalctl -k -q -n 1 --no-pager >/dev/null 2>&1; then echo oom=journalctl; else echo oom=none; fi",
      ].join("\n"),
      { what: "prepare the guest folder", idempotent: true, timeoutMs: 60_000, signal: this.signal },
    );
    const facts = Object.fromEntries(out.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1).trim()]));
    this.uid = Number(facts.uid);
    this.gid = Number(facts.gid);
    this.sudo = this.uid === 0 ? "" : "sudo -n ";
    if (facts.systemd === "yes") {
      this.method = "systemd-run";
    } else if (facts.setsid === "yes") {
      this.method = "setsid";
    } else {
      throw new Error("the VM has neither systemd (systemd-run) nor setsid: PicoShare cannot be started detached there");
    }
    this.settings.guest_dir = this.guestDir;
    this.settings.vm_id = this.vmId;
    this.settings.guest_kernel = facts.kernel || null;
    this.settings.guest_mem_total_bytes = Number(facts.memtotal) || null;
    this.settings.start_method = this.method;

    // A reused VM: nothing of the last test stays (data, multipart temp files, log).
    if (this.reused) await this.wipeGuest(ssh);

    const need = localDiskNeeded(this.spec.uploadBytes);
    const free = Number(facts.free);
    if (Number.isFinite(free) && free < need) {
      throw new Error(
        `not enough disk space in the VM for PicoShare's temp file and database: needs ${formatBytes(need)}, ` +
          `${formatBytes(free)} free in ${this.guestDir}; use a box with a bigger disk`,
      );
    }

    if (facts.binary === this.spec.picoshare.sha256) {
      log(`PicoShare binary already in the VM (sha256 ${facts.binary.slice(0, 12)})`);
    } else {
      const t0 = performance.now();
      await ssh.copy(this.spec.picoshare.path, `${this.guestDir}/bin/picoshare.partial`, { signal: this.signal });
      const sum = await ssh.run(
        `cd ${d}/bin && chmod 755 picoshare.partial && mv -f picoshare.partial picoshare && sha256sum picoshare | cut -d ' ' -f 1`,
        { what: "install the binary", signal: this.signal },
      );
      if (sum.trim() !== this.spec.picoshare.sha256) {
        throw new Error(`the PicoShare binary copied into the VM has sha256 ${sum.trim().slice(0, 12)}, expected ${this.spec.picoshare.sha256.slice(0, 12)}`);
      }
      log(`Copied PicoShare into the VM in ${((performance.now() - t0) / 1000).toFixed(2)} s (scp)`);
    }

    this.oomSource = facts.oom === "dmesg" || facts.oom === "journalctl" ? facts.oom : null;
    this.settings.oom_source = this.oomSource ?? "unavailable";
    if (!this.oomSource) warn("the VM's kernel log cannot be read (dmesg, journalctl -k): OOM kills will not be detected");

    this.saveState(this.reuseVm ? "reuse" : "in_use");
  }

  private async wipeGuest(ssh: SshConnection): Promise<void> {
    const d = shq(this.guestDir);
    await this.stopGuestProcesses(ssh, this.guestDir);
    await ssh.run(
      `cd ${d} && rm -rf data tmp secret start.sh picoshare.log picoshare.pid wrapper.pid exit-status unit && mkdir -m 700 data tmp && sync`,
      { what: "wipe the data dir and temp files", idempotent: true, timeoutMs: 120_000 },
    );
  }

  private async stopGuestProcesses(ssh: SshConnection, dir: string): Promise<void> {
    await ssh.exec(stopScript(dir), { timeoutMs: 30_000 });
  }

  // ---- PicoShare --------------------------------------------------------

  /**
   * Starts PicoShare detached, in one ssh round trip (see startCommand): the
   * secret arrives on ssh's stdin, never on a command line.
   */
  async startPicoShare(secret: string): Promise<string> {
    const spec: StartSpec = {
      guestDir: this.guestDir,
      sudo: this.sudo,
      uid: this.uid,
      gid: this.gid,
      unit: this.method === "systemd-run" ? `picoshare-perf-${this.vmId}-${randomBytes(3).toString("hex")}` : null,
      candidatePorts: Array.from({ length: 40 }, () => 10000 + Math.floor(Math.random() * 22000)),
    };
    this.unit = spec.unit;
    const out = await this.remote().run(startCommand(this.method, spec), {
      input: secret,
      what: `start PicoShare with ${this.method}`,
      signal: this.signal,
      timeoutMs: 60_000,
    });
    log(
      this.method === "systemd-run"
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
        await this.remote().forward(port, this.guestPort);
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
    const pid = this.picoPid ?? 0;
    const tail =
      this.method === "systemd-run"
        ? `echo "systemd $(${this.sudo}systemctl show -p ExecMainCode -p ExecMainStatus ${shq(this.unit!)} | tr '\\n' ' ')"`
        : `i=0; while [ ! -s ${this.q("exit-status")} ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done; echo "exit-status $(cat ${this.q("exit-status")} 2>/dev/null)"`;
    let seen = false;
    // The heartbeat dots end the loop (SIGPIPE) once nobody reads them, e.g.
    // after --keep-vm, where PicoShare outlives this process.
    const stream = this.remote().stream(`${ALIVE_FN}\nwhile alive ${pid}; do sleep 0.05; echo .; done\n${tail}`, (line) => {
      if (/^(exit-status|systemd)\b/.test(line)) {
        seen = true;
        void this.markExited(parseExitLine(line));
      }
    });
    this.watcher = stream;
    void stream.done.then(async () => {
      if (seen || this.exitInfo || this.tearing) return;
      // The stream broke (not PicoShare): reconnect and watch again, a few times.
      if (restarts >= 3 || interrupted()) {
        warn("lost track of PicoShare in the VM (the ssh stream that watches it kept breaking)");
        this.broken = true;
        return;
      }
      await new Promise((r) => setTimeout(r, 500 * 2 ** restarts));
      if (this.tearing || this.exitInfo) return;
      try {
        await this.ssh?.ensureOpen(this.signal);
        this.watchExit(restarts + 1);
      } catch (err) {
        this.broken = true;
        warn(`lost the ssh connection to the VM: ${errorMessage(err)}`);
      }
    });
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
      if (!this.ssh || !this.guestDir) return null;
      const mark = `--picoshare-perf-${randomBytes(6).toString("hex")}--`;
      const parts = [`tail -c 4194304 ${this.q("picoshare.log")} 2>/dev/null`];
      if (this.unit && this.exitInfo) {
        parts.push(`echo "--- journal of ${this.unit} ---"`, `${this.sudo}journalctl -u ${shq(this.unit)} -q --no-pager -o short-precise 2>/dev/null | tail -n 50`);
      }
      parts.push(`printf '\\n%s\\n' ${mark}`);
      if (this.oomSource) {
        // Both print the kernel's "[seconds since boot]" stamp.
        const read = this.oomSource === "dmesg" ? `${this.sudo}dmesg` : `${this.sudo}journalctl -k -q --no-pager -o short-monotonic`;
        parts.push(`${read} 2>/dev/null | grep -E 'Killed process [0-9]+ \\(picoshare\\)|oom-kill:.*task=picoshare,'`);
      }
      parts.push(`printf '\\n%s\\n' ${mark}`);
      if (this.picoPid && !this.exitInfo) {
        parts.push(`grep '^VmHWM:' /proc/${this.picoPid}/status 2>/dev/null`, ALIVE_FN, `alive ${this.picoPid} && echo running=1`);
      }
      const r = await this.ssh.exec(`${parts.join("; ")}; true`, { timeoutMs: 30_000 });
      const [logText, oomText, hwmText] = r.stdout.split(`\n${mark}\n`);
      if (r.code !== 0 || hwmText === undefined) return null;
      writeFileSync(this.logPath, logText, { mode: 0o600 });
      const m = /^VmHWM:\s+(\d+) kB/m.exec(hwmText);
      return { oomPids: oomKilledPids(oomText, this.startUptime), vmHwm: m ? Number(m[1]) * 1024 : null, running: /^running=1$/m.test(hwmText) };
    };
    // One at a time, in order.
    const value = this.snapshotChain.then(run, run);
    this.snapshotChain = value.catch(() => null);
    this.lastSnapshot = { at: performance.now(), value };
    return value;
  }

  // ---- measurements -----------------------------------------------------

  async memoryNow(): Promise<number> {
    const out = await this.remote().run(`${MEM_FN}; m`, { what: "read /proc/meminfo", idempotent: true, timeoutMs: 15_000 });
    const n = Number(out.trim());
    if (!Number.isFinite(n) || n <= 0) throw new Error(`could not read the VM's memory (got "${out.trim()}")`);
    return n;
  }

  monitorMemory(intervalMs: number): MemoryMonitor {
    let peak = 0;
    let samples = 0;
    let stopped = false;
    const sleep = (Math.min(Math.max(intervalMs, 10), 100) / 1000).toFixed(3);
    // Runs until its output is closed, or its folder goes (teardown).
    const cmd = `${MEM_FN}\nwhile [ -d ${shq(this.guestDir)} ]; do m; sleep ${sleep}; done`;
    const onLine = (line: string) => {
      const n = Number(line);
      if (Number.isFinite(n) && n > 0) {
        peak = Math.max(peak, n);
        samples++;
      }
    };
    let current: RemoteStream;
    const begin = (restarts: number) => {
      current = this.remote().stream(cmd, onLine);
      this.streams.add(current);
      const mine = current;
      void mine.done.then(() => {
        this.streams.delete(mine);
        if (stopped || this.tearing || interrupted()) return;
        if (restarts >= 3) {
          warn("the memory stream from the VM kept breaking: the peak covers only part of the upload");
          return;
        }
        warn("the memory stream from the VM broke: restarting it");
        setTimeout(() => {
          if (stopped || this.tearing) return;
          try {
            begin(restarts + 1);
          } catch (err) {
            warn(`could not restart the memory stream: ${errorMessage(err)}`);
          }
        }, 200);
      });
    };
    begin(0);
    return {
      stop: async () => {
        stopped = true;
        await current.stop();
        try {
          onLine(String(await this.memoryNow()));
        } catch {
          // the VM is going away
        }
        return { peakBytes: peak, samples };
      },
    };
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

  keepInstructions(baseUrl: string): string[] {
    const f = this.cfg.folder;
    const cd = f === process.cwd() ? "" : `cd ${f} && `;
    return [
      `VM kept with PicoShare running in it (id ${this.vmId}, ${this.spec.ramMiB} MiB, ${this.cfg.provider}); ${baseUrl} ends with this run`,
      `  shell:   ${cd}vagrant ssh`,
      `  reach:   ${cd}vagrant ssh -- -N -L ${this.hostPort}:127.0.0.1:${this.guestPort}   then ${baseUrl}/login`,
      `  secret:  ${this.guestDir}/secret in the VM`,
      `  log:     ${this.guestDir}/picoshare.log in the VM` + (this.unit ? ` (journalctl -u ${this.unit})` : ""),
      `Stop it:   ${cd}vagrant destroy -f && rm -f ${statePath(f)}`,
    ];
  }

  // ---- ending -----------------------------------------------------------

  /** At this process's end: --keep-vm leaves the VM (only the ssh connection goes); an interrupt destroys it. */
  registerExitCleanup(): void {
    onCleanup("close the ssh connection to the VM", async () => {
      if (this.tearing) return this.tearing;
      if (interrupted()) return this.teardown();
      this.saveState("keep");
      for (const s of [...this.streams]) await s.stop();
      await this.watcher?.stop();
      await this.closeSsh();
      rmSync(this.hostDir, { recursive: true, force: true });
    });
  }

  teardown(): Promise<void> {
    this.tearing ??= this.doTeardown();
    return this.tearing;
  }

  private async doTeardown(): Promise<void> {
    // Whatever vagrant command was under way (interrupted) ends first.
    await this.cli.idle();
    for (const s of [...this.streams]) await s.stop().catch(() => {});
    const keepForReuse = this.reuseVm && this.ready && !this.broken && !interrupted();
    const problems: string[] = [];
    let reachable = false;
    if (this.sshConfigText) {
      try {
        // Not with the interrupt signal: cleaning up after Ctrl-C is the point.
        if (!this.ssh) await this.connect(this.sshConfigText, { retries: 1, signal: AbortSignal.timeout(60_000) });
        else await this.ssh.ensureOpen();
        reachable = true;
      } catch (err) {
        problems.push(`ssh: ${errorMessage(err)}`);
      }
    }
    if (reachable && this.guestDir) {
      const ssh = this.remote();
      try {
        await this.stopGuestProcesses(ssh, this.guestDir);
        if (this.watcher && !this.exitInfo) await Promise.race([this.exited, new Promise((r) => setTimeout(r, 3000))]);
        await this.watcher?.stop();
        // markExited copied the log when PicoShare ended; else copy it now.
        if (!this.exitInfo) await this.snapshot(true).catch(() => {});
        if (this.hostPort) await ssh.cancelForward(this.hostPort, this.guestPort).catch(() => {});
        if (keepForReuse) {
          await this.wipeGuest(ssh);
        } else {
          await ssh.run(`rm -rf ${shq(this.guestDir)}`, { what: "remove the guest folder", timeoutMs: 120_000 });
        }
      } catch (err) {
        problems.push(errorMessage(err));
      }
    }
    await this.watcher?.stop().catch(() => {});
    await this.closeSsh().catch(() => {});
    if (keepForReuse && problems.length === 0) {
      this.saveState("reuse");
      log(`VM kept for the next --reuse-vm test with ${this.spec.ramMiB} MiB (state: ${statePath(this.cfg.folder)})`);
    } else {
      if (keepForReuse) warn(`the VM could not be made ready for reuse (${problems.join("; ")}): destroying it`);
      else if (problems.length > 0 && this.ready) warn(`cleaning the VM up: ${problems.join("; ")}`);
      if (this.vmId) {
        if (await this.destroyVm()) removeVmState(this.cfg.folder);
      }
    }
    rmSync(this.hostDir, { recursive: true, force: true });
  }
}

/**
 * Destroys the VM a --reuse-vm (or --keep-vm) run left in the Vagrant folder,
 * e.g. after a matrix's last cell. Resolves false when there was none.
 */
export async function destroyKeptVm(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const cfg = vagrantConfig(env);
  const state = readVmState(cfg.folder);
  if (!state) return false;
  mkdirSync(dotVagrant(cfg.folder), { recursive: true });
  const what = `the Vagrant folder ${cfg.folder}`;
  const lock = await acquireLock(join(dotVagrant(cfg.folder), LOCK_FILE), what, cfg.lockWaitMs, { shareWithAncestors: true });
  let testLock: Lock | null = null;
  try {
    testLock = await acquireLock(join(dotVagrant(cfg.folder), TEST_LOCK_FILE), what, cfg.lockWaitMs);
    if (state.ssh_config && state.guest_dir.startsWith(`${cfg.guestBase}/${GUEST_PREFIX}`)) {
      let conn: SshConnection | null = null;
      try {
        conn = SshConnection.create(parseSshConfig(state.ssh_config));
        await conn.open({ retries: 0 });
        await conn.exec(stopScript(state.guest_dir), { timeoutMs: 30_000 });
        await conn.run(`rm -rf ${shq(state.guest_dir)}`, { timeoutMs: 60_000 });
      } catch {
        // unreachable: the destroy below is what matters
      } finally {
        await conn?.close();
      }
    }
    const cli = new VagrantCli(cfg.folder, {}, join(dotVagrant(cfg.folder), VAGRANT_LOG_FILE));
    await cli.check(["destroy", "-f"], { timeoutMs: 300_000, lockWaitMs: cfg.lockWaitMs });
    removeVmState(cfg.folder);
    return true;
  } finally {
    testLock?.release();
    lock.release();
  }
}
