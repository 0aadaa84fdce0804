// The local backend (the default): PicoShare as a process on this host, in a
// fresh memory cgroup with a hard limit. Starts in milliseconds; the kernel
// accounts the memory exactly.
import { goRuntimeEnvOf, goRuntimeVarsSet } from "../upload/provenance.ts";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Backend, EnvironmentSpec, ExitInfo, MemoryBreakdown, MemoryMonitor, MemoryPoint, StorageReading, TestEnvironment } from "./types.ts";
import { CounterTracker, roundCounter } from "../upload/counters.ts";
import { createMemoryCgroup, type MemoryCgroup } from "./cgroup.ts";
import { NAME_PREFIX, cgroupProcs, memoryCeiling, placeCgroups, type CgroupSupport } from "./cgroup-place.ts";
import { memoryBackedFs, requireFreeSpace } from "../core/files.ts";
import { UsageError } from "../core/errors.ts";
import { LOOPBACK, freePort } from "../core/net.ts";
import { start, stopGroup, type Started } from "../core/exec.ts";
import { peakRss, processEnviron, processRuns, resetPeakRss } from "../core/proc.ts";
import { log, warn } from "../core/log.ts";
import { MiB } from "../core/sizes.ts";

let placed: Promise<CgroupSupport> | null = null;

/** Where this harness makes its test cgroups: found (and organised) once per process, then logged. */
function cgroupSupport(): Promise<CgroupSupport> {
  placed ??= placeCgroups().then((s) => {
    log(`Memory limits: ${s.description}`);
    return s;
  });
  return placed;
}

// PicoShare spills the whole multipart body to a temp file, then copies it
// into SQLite: about twice the upload, plus room for the database's journal.
export function localDiskNeeded(uploadBytes: number): number {
  return 2 * uploadBytes + 64 * MiB;
}

// Names carry the harness's pid, so that what a killed harness left behind
// can be told from what a live one is using.
const STALE = new RegExp(`^${NAME_PREFIX}(\\d+)-`);

/**
 * Removes the cgroups and private folders of harness runs that died without
 * cleaning up (SIGKILL, a crash): leftover multipart temp files and databases
 * would otherwise pile up and skew later runs. A leftover PicoShare still
 * running is not ended here, only reported with the way to stop it.
 */
function reapStale(support: CgroupSupport, workDir: string): void {
  const stale = (name: string) => {
    const m = STALE.exec(name);
    return m !== null && !processRuns(Number(m[1]));
  };
  const stillServing = new Set<string>();
  const reapCgroups = (dir: string, stopHint: (path: string, pids: number[]) => string) => {
    for (const name of readdirSync(dir).filter(stale)) {
      const path = join(dir, name);
      const pids = cgroupProcs(path);
      if (pids.length > 0) {
        stillServing.add(STALE.exec(name)![1]);
        warn(`PicoShare left running by a dead harness (pid ${pids.join(", ")}) in ${path}: stop it with ${stopHint(path, pids)}`);
        continue;
      }
      try {
        rmdirSync(path);
        log(`Removed the cgroup ${name} of a harness run that died`);
      } catch {}
    }
  };
  reapCgroups(support.parent, (path, pids) => `kill -TERM ${pids.join(" ")}; rmdir ${path}`);
  if (support.cpuacctParent) reapCgroups(support.cpuacctParent, (path, pids) => `kill -TERM ${pids.join(" ")}; rmdir ${path}`);
  // A dead harness's own scope stays while its PicoShare runs (systemd removes an empty one).
  if (support.scope) {
    const slice = dirname(support.parent);
    const user = support.scope.manager === "user" ? " --user" : "";
    for (const name of readdirSync(slice).filter((n) => stale(n) && n.endsWith(".scope"))) {
      reapCgroups(join(slice, name), () => `systemctl${user} stop ${name}`);
    }
  }
  // The folder of a PicoShare that still runs stays until it is stopped.
  for (const name of readdirSync(workDir).filter((n) => stale(n) && !stillServing.has(STALE.exec(n)![1]))) {
    rmSync(join(workDir, name), { recursive: true, force: true });
    log(`Removed ${join(workDir, name)}, left by a harness run that died`);
  }
}

export const localBackend: Backend = {
  name: "local",
  async preflight(spec: EnvironmentSpec) {
    const fs = memoryBackedFs(spec.workDir);
    if (fs && !spec.allowMemoryBackedWorkDir) {
      throw new UsageError(
        `--work-dir ${spec.workDir} is on ${fs}: the uploaded file would sit in memory and count against PicoShare's limit; ` +
          "give --work-dir a folder on disk (e.g. /var/tmp), or add --allow-memory-backed-work-dir to measure it so",
      );
    }
    const ceiling = memoryCeiling();
    if (spec.ramMiB * MiB > ceiling.bytes) {
      const most = Math.floor(ceiling.bytes / MiB);
      throw new UsageError(
        `--ram ${spec.ramMiB} is more than this harness can have: ${most} MiB (${ceiling.source}); a limit above it limits ` +
          `nothing, and an OOM kill there would be its parent's: use --ram ${most} or less`,
      );
    }
    reapStale(await cgroupSupport(), spec.workDir);
    requireFreeSpace(
      spec.workDir,
      localDiskNeeded(spec.uploadBytes),
      "PicoShare's temp file and database",
      "free some space or choose another folder with --work-dir DIR",
    );
  },
  async create(spec: EnvironmentSpec) {
    return LocalEnvironment.make(spec, await cgroupSupport());
  },
};

class LocalEnvironment implements TestEnvironment {
  readonly settings: TestEnvironment["settings"];
  readonly logPath: string;
  private proc: Started | null = null;
  private exitedResolve!: (e: ExitInfo) => void;
  private exitedNow = new Promise<ExitInfo>((r) => (this.exitedResolve = r));
  /** The PicoShare started last (a restart starts a new one). */
  get exited(): Promise<ExitInfo> {
    return this.exitedNow;
  }
  private torn = false;
  private readonly tracker: CounterTracker;

  private constructor(
    private readonly spec: EnvironmentSpec,
    private readonly dir: string,
    private readonly cgroup: MemoryCgroup,
    support: CgroupSupport,
  ) {
    this.logPath = join(dir, "picoshare.log");
    this.tracker = new CounterTracker(() => cgroup.pids());
    this.settings = {
      cgroup_version: String(cgroup.version),
      cgroup_path: cgroup.path,
      cgroup_placement: support.placement,
      memory_limit_bytes: cgroup.limitBytes,
      swap: "excluded",
      work_dir: spec.workDir,
      // Set only when allowed (--allow-memory-backed-work-dir): the file was charged to the limit.
      work_dir_memory_backed: memoryBackedFs(spec.workDir),
      // Where cpu_user_seconds / cpu_system_seconds come from.
      cpu_source: cgroup.cpuSource === "none" ? "process ticks" : cgroup.cpuSource,
    };
  }

  static make(spec: EnvironmentSpec, support: CgroupSupport): LocalEnvironment {
    // Private to this user: the secret file and the data live here.
    const dir = mkdtempSync(join(spec.workDir, `${NAME_PREFIX}${process.pid}-`));
    chmodSync(dir, 0o700);
    try {
      mkdirSync(join(dir, "data"));
      mkdirSync(join(dir, "tmp"));
      const name = `${NAME_PREFIX}${process.pid}-${randomBytes(4).toString("hex")}`;
      return new LocalEnvironment(spec, dir, createMemoryCgroup(support, name, spec.ramMiB), support);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  async startPicoShare(secret: string): Promise<string> {
    const port = await freePort();
    const secretFile = join(this.dir, "secret");
    writeFileSync(secretFile, secret, { mode: 0o600 });
    const argv = this.cgroup.launch([...(this.spec.wrapper ?? []), this.spec.picoshare.path, "-db", this.dbPath]);
    this.proc = start(argv, {
      cwd: this.dir,
      stdout: { file: this.logPath },
      cleanEnv: true,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        PORT: String(port),
        PS_SHARED_SECRET_FILE: secretFile,
        // Go's multipart parser spills uploads here: one folder per test.
        TMPDIR: join(this.dir, "tmp"),
        ...goRuntimeVarsSet(),
      },
    });
    void this.proc.exited.then(this.exitedResolve);
    return `http://${LOOPBACK}:${port}`;
  }

  async restartPicoShare(secret: string): Promise<string> {
    if (this.proc?.running()) await stopGroup(this.proc);
    this.exitedNow = new Promise<ExitInfo>((r) => (this.exitedResolve = r));
    return this.startPicoShare(secret);
  }

  private get dbPath(): string {
    return join(this.dir, "data", "store.db");
  }

  async copyDatabase(dest: string): Promise<string> {
    // SQLite's files together: the WAL holds what was committed since the last checkpoint.
    for (const suffix of ["", "-wal", "-shm"]) {
      if (existsSync(this.dbPath + suffix)) copyFileSync(this.dbPath + suffix, join(dest, `store.db${suffix}`));
    }
    return join(dest, "store.db");
  }

  spillBytes(): number {
    return this.spill().bytes;
  }

  /** Go's multipart parser's spill files (multipart-NNN) in the test's TMPDIR: how many, and their bytes. */
  private spill(): { files: number; bytes: number } {
    const tmp = join(this.dir, "tmp");
    const names = safe(() => readdirSync(tmp), [] as string[]).filter((f) => f.startsWith("multipart-"));
    return { files: names.length, bytes: names.reduce((sum, f) => sum + safe(() => statSync(join(tmp, f)).size, 0), 0) };
  }

  processIds(): number[] {
    return this.cgroup.pids();
  }

  async memoryNow() {
    return this.cgroup.workingSet();
  }

  monitorMemory(intervalMs: number): MemoryMonitor {
    let peak = 0;
    let samples = 0;
    let anonPeak = 0;
    let atPeak: MemoryBreakdown | null = null;
    const points: MemoryPoint[] = [];
    const sample = () => {
      try {
        const { workingSet, breakdown } = this.cgroup.snapshot();
        points.push({ at: performance.now(), workingSet, anon: breakdown.anon, file: breakdown.file });
        if (workingSet >= peak || atPeak === null) {
          peak = workingSet;
          atPeak = breakdown;
        }
        anonPeak = Math.max(anonPeak, breakdown.anon);
        samples++;
      } catch {
        // the cgroup is being removed
      }
      // Read while PicoShare runs: what a process had done is lost once the kernel reaps it.
      this.tracker.sample();
    };
    sample();
    const timer = setInterval(sample, intervalMs);
    return {
      stop: async () => {
        clearInterval(timer);
        sample();
        return { peakBytes: peak, samples, anonPeakBytes: samples > 0 ? anonPeak : null, atPeak, points, intervalMs };
      },
    };
  }

  async oomKills() {
    return this.cgroup.oomKills();
  }

  async kernelPeakBytes() {
    return this.cgroup.kernelPeak();
  }

  async picosharePeakRss() {
    return this.proc ? peakRss(this.proc.pid) : null;
  }

  async resetPeakRss() {
    return this.proc ? resetPeakRss(this.proc.pid) : null;
  }

  async goRuntimeEnv() {
    // The launcher execs PicoShare in its own process: the pid is PicoShare's.
    const environ = this.proc ? processEnviron(this.proc.pid) : null;
    return environ === null ? null : goRuntimeEnvOf(environ);
  }

  async counters() {
    const counters = this.tracker.total();
    // The cgroup's own CPU account (nanoseconds or microseconds) over the processes' 10 ms ticks.
    const cpu = safe(() => this.cgroup.cpuSeconds(), null);
    if (!cpu || !counters) return counters;
    return {
      ...counters,
      cpu_user_seconds: roundCounter("cpu_user_seconds", cpu.user),
      cpu_system_seconds: roundCounter("cpu_system_seconds", cpu.system),
      cpu_seconds: roundCounter("cpu_seconds", cpu.total),
    };
  }

  async memoryPressure() {
    return safe(() => this.cgroup.pressure(), null);
  }

  async storage(): Promise<StorageReading> {
    const data = join(this.dir, "data");
    const dataDirBytes = readdirSync(data).reduce((sum, f) => sum + safe(() => statSync(join(data, f)).size, 0), 0);
    const { files, bytes } = this.spill();
    return { facts: { data_dir_bytes: dataDirBytes, temp_files_left: files }, tempBytes: bytes };
  }

  keepInstructions(baseUrl: string): string[] {
    const pid = this.proc?.pid;
    return [
      `PicoShare kept running at ${baseUrl} (pid ${pid}, process group ${pid})`,
      `  secret:  ${join(this.dir, "secret")} (log in at ${baseUrl}/login)`,
      `  log:     ${this.logPath}`,
      `  cgroup:  ${this.cgroup.path}`,
      `Stop it:   kill -TERM -- -${pid}; sleep 1; rmdir ${this.cgroup.path}; rm -rf ${this.dir}`,
    ];
  }

  async teardown() {
    if (this.torn) return;
    this.torn = true;
    if (this.proc) await stopGroup(this.proc);
    // Anything else still inside the cgroup was started by this test.
    for (const pid of safe(() => this.cgroup.pids(), [])) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    this.cgroup.remove();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}
