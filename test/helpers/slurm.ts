// A throwaway one-node Slurm cluster for the tests: Debian's munged,
// slurmctld and slurmd run as root with everything in a temp folder (key,
// sockets, state, spool, logs, slurm.conf and cgroup.conf, found through
// SLURM_CONF), ports on 127.0.0.1, the cgroup plugin on (proctrack/cgroup,
// task/cgroup with ConstrainRAMSpace). slurmd runs in a mount namespace of
// its own where the cgroup hierarchies it uses are bind mounts of folders
// made beneath this process's own cgroups, so Slurm's /slurm_<node> tree
// lands there and not at the top of the host's hierarchies. stop() ends the
// jobs and the daemons by pid and removes every folder it made.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { cpus, hostname, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { LOOPBACK, freePort } from "../../lib/core/net.ts";
import { start, stopGroup, type Started } from "../../lib/core/exec.ts";
import { $, type ProcessOutput } from "../../lib/core/shell.ts";
import { processRuns } from "../../lib/core/proc.ts";

/** The controllers Slurm's cgroup plugins use here: freezer (proctrack), memory (task, ConstrainRAMSpace). */
const CONTROLLERS = ["memory", "freezer"] as const;
const BINARIES = ["/usr/sbin/munged", "/usr/sbin/mungekey", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch", "/usr/bin/unshare"];

/** This process's folder in a v1 hierarchy, or null (no such hierarchy: cgroup v2 only). */
function ownV1(controller: string): string | null {
  const line = readFileSync("/proc/self/cgroup", "utf8")
    .split("\n")
    .find((l) => l.split(":")[1]?.split(",").includes(controller));
  const dir = line ? join("/sys/fs/cgroup", controller, line.split(":")[2]) : null;
  return dir && existsSync(dir) ? dir : null;
}

/** Why a Slurm cluster cannot run here, or null. */
export function slurmMissing(): string | null {
  const gone = BINARIES.filter((b) => !existsSync(b));
  if (gone.length > 0) return `missing ${gone.join(", ")} (apt-get install slurmctld slurmd slurm-client munge)`;
  const noV1 = CONTROLLERS.filter((c) => ownV1(c) === null);
  if (noV1.length > 0) return `no cgroup v1 ${noV1.join(", ")} hierarchy (the test's Slurm uses cgroup/v1)`;
  return null;
}

export interface TestSlurm {
  dir: string;
  node: string;
  /** SLURM_CONF for the client commands (sbatch, squeue). */
  env: Record<string, string>;
  /** The folder beneath this process's memory cgroup that slurmd sees as its hierarchy's root. */
  memoryRoot: string;
  sbatch(args: string[]): Promise<ProcessOutput>;
  stop(): Promise<void>;
}

function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir, { withFileTypes: true })) if (name.isDirectory()) removeTree(join(dir, name.name));
  rmdirSync(dir);
}

/** Pids in a cgroup folder and below it. */
function pidsBelow(dir: string): number[] {
  if (!existsSync(dir)) return [];
  const here = readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  const below = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).flatMap((d) => pidsBelow(join(dir, d.name)));
  return [...here, ...below];
}

export async function startSlurm(): Promise<TestSlurm> {
  const missing = slurmMissing();
  if (missing) throw new Error(missing);
  const dir = mkdtempSync(join(tmpdir(), "slurm-spec-"));
  // munged wants every folder on the way to its socket searchable by all, and the socket's own not writable by others.
  chmodSync(dir, 0o711);
  const munge = join(dir, "munge");
  mkdirSync(munge, { mode: 0o755 });
  for (const d of ["state", "spool", "log", "cgroup"]) mkdirSync(join(dir, d), { mode: 0o700 });
  const node = hostname();
  mkdirSync(join(dir, "spool", node));
  const key = join(dir, "munge.key");
  const socket = join(munge, "munge.sock");
  const made: string[] = [];
  const daemons: Started[] = [];
  const env = { SLURM_CONF: join(dir, "slurm.conf") };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Jobs first (scancel asks slurmd to end their steps), then the daemons, slurmd last of all.
    if (daemons.length === 3) {
      $({ env, nothrow: true }).sync`scancel --full --quiet --user=root`;
      const end = Date.now() + 15_000;
      while (Date.now() < end && pidsBelow(made[0] ?? "").length > 0) await Bun.sleep(100);
    }
    for (const d of [...daemons].reverse()) await stopGroup(d, 5000);
    // A job step slurmd could not end (slurmstepd runs in a session of its own): by pid, from Slurm's cgroups.
    for (const root of made) {
      for (const pid of pidsBelow(root)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    }
    const end = Date.now() + 10_000;
    while (Date.now() < end && made.some((root) => pidsBelow(root).some((p) => processRuns(p)))) await Bun.sleep(50);
    for (const root of made) removeTree(root);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const k = $({ nothrow: true }).sync`mungekey --create ${`--keyfile=${key}`}`;
    if (k.exitCode !== 0) throw new Error(`mungekey failed: ${k.stderr}`);
    const [ctldPort, slurmdPort] = [await freePort(), await freePort()];
    const mem = Math.min(4096, Math.floor((totalmem() / 1048576) * 0.8));
    writeFileSync(
      env.SLURM_CONF,
      [
        "ClusterName=picoshare-perf-test",
        `SlurmctldHost=${node}(${LOOPBACK})`,
        `SlurmctldPort=${ctldPort}`,
        `SlurmdPort=${slurmdPort}`,
        "AuthType=auth/munge",
        `AuthInfo=socket=${socket}`,
        "CredType=cred/munge",
        "SlurmUser=root",
        "SlurmdUser=root",
        `StateSaveLocation=${join(dir, "state")}`,
        `SlurmdSpoolDir=${join(dir, "spool", "%n")}`,
        `SlurmctldPidFile=${join(dir, "slurmctld.pid")}`,
        `SlurmdPidFile=${join(dir, "slurmd.pid")}`,
        `SlurmctldLogFile=${join(dir, "log", "slurmctld.log")}`,
        `SlurmdLogFile=${join(dir, "log", "slurmd.log")}`,
        "ProctrackType=proctrack/cgroup",
        "TaskPlugin=task/cgroup",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "MpiDefault=none",
        "ReturnToService=2",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SchedulerType=sched/backfill",
        `NodeName=${node} NodeAddr=${LOOPBACK} CPUs=${cpus().length} RealMemory=${mem} State=UNKNOWN`,
        "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        "",
      ].join("\n"),
    );
    writeFileSync(join(dir, "cgroup.conf"), ["CgroupPlugin=cgroup/v1", `CgroupMountpoint=${join(dir, "cgroup")}`, "ConstrainRAMSpace=yes", ""].join("\n"));

    const binds: string[] = [];
    for (const c of CONTROLLERS) {
      const root = join(ownV1(c)!, `slurm-spec-${process.pid}`);
      mkdirSync(root);
      made.push(root);
      mkdirSync(join(dir, "cgroup", c));
      binds.push(`mount --bind '${root}' '${join(dir, "cgroup", c)}'`);
    }
    const log = (name: string) => ({ file: join(dir, "log", `${name}.out`) });
    daemons.push(
      start(["munged", "-F", `--socket=${socket}`, `--key-file=${key}`, `--pid-file=${join(munge, "munged.pid")}`, `--log-file=${join(dir, "log", "munged.log")}`, `--seed-file=${join(dir, "munged.seed")}`], { stdout: log("munged") }),
    );
    const deadline = Date.now() + 10_000;
    while (!existsSync(socket)) {
      if (!daemons[0].running() || Date.now() > deadline) throw new Error(`munged did not start: ${readFileSync(join(dir, "log", "munged.out"), "utf8")}`);
      await Bun.sleep(20);
    }
    daemons.push(start(["slurmctld", "-D", "-i"], { env, stdout: log("slurmctld") }));
    daemons.push(start(["unshare", "--mount", "--propagation", "private", "sh", "-c", `${binds.join(" && ")} && exec slurmd -D`], { env, stdout: log("slurmd") }));
    const ready = Date.now() + 30_000;
    for (;;) {
      const s = $({ env, nothrow: true }).sync`sinfo --noheader --format=%T`;
      if (s.exitCode === 0 && s.stdout.trim() === "idle") break;
      if (daemons.some((d) => !d.running()) || Date.now() > ready) {
        const logs = ["slurmctld", "slurmd"].map((n) => readFileSync(join(dir, "log", `${n}.out`), "utf8").trim().split("\n").slice(-5).join("\n"));
        throw new Error(`Slurm did not come up (sinfo: ${s.stdout.trim() || s.stderr.trim()}):\n${logs.join("\n")}`);
      }
      await Bun.sleep(200);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    dir, node, env, memoryRoot: made[0], stop,
    sbatch: (args) => $({ env, nothrow: true })`sbatch ${args}`,
  };
}
