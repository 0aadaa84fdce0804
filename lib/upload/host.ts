// Facts about the host that explain a measurement: stored with every result
// so that runs on different machines or settings are never compared blindly.
import { cpus, freemem, hostname, loadavg, release, totalmem } from "node:os";
import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";

export interface HostFacts {
  hostname: string;
  kernel: string;
  cpu_model: string;
  cpu_count: number;
  cpu_governor: string | null;
  memory_total_bytes: number;
  memory_available_bytes: number;
  load_average_1m: number;
  /** Whether the disk holding the data dir spins (true), is solid state (false), or unknown (null). */
  data_disk_rotational: boolean | null;
  /** File system type of the data dir's mount (ext4, xfs, tmpfs, overlay, nfs...), or null. */
  data_dir_filesystem: string | null;
  /** Highest CPU clock the frequency driver allows, MHz; null where there is no cpufreq. */
  cpu_max_mhz: number | null;
  /** Whether turbo / boost clocks are enabled; null where the driver does not say. */
  cpu_boost: boolean | null;
}

function readOr(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

function memAvailable(): number {
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readOr("/proc/meminfo") ?? "");
  return m ? Number(m[1]) * 1024 : freemem();
}

/** rotational flag of the block device holding `path` (a partition's disk is its parent). */
export function diskRotational(path: string): boolean | null {
  try {
    const dev = statSync(path).dev;
    const major = Math.floor(dev / 256) & 0xfff;
    const minor = (dev & 0xff) | ((Math.floor(dev / 1048576) & 0xfff00) >>> 0);
    const base = `/sys/dev/block/${major}:${minor}`;
    for (const q of [`${base}/queue/rotational`, `${base}/../queue/rotational`]) {
      if (existsSync(q)) return readOr(q) === "1";
    }
  } catch {
    // unknown device (tmpfs, overlay): no answer
  }
  return null;
}

export function hostFacts(dataDir: string): HostFacts {
  const cpu = cpus();
  return {
    hostname: hostname(),
    kernel: release(),
    cpu_model: cpu[0]?.model?.trim() ?? "unknown",
    cpu_count: cpu.length,
    cpu_governor: readOr("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
    memory_total_bytes: totalmem(),
    memory_available_bytes: memAvailable(),
    load_average_1m: Number(loadavg()[0].toFixed(2)),
    data_disk_rotational: diskRotational(dataDir),
    data_dir_filesystem: filesystemType(dataDir),
    cpu_max_mhz: cpuMaxMhz(),
    cpu_boost: cpuBoost(),
  };
}

/** The file system type of the mount holding `path` (the longest mount point that contains it). */
export function filesystemType(path: string): string | null {
  let target: string;
  try {
    target = realpathSync(path);
  } catch {
    return null;
  }
  let best: { point: string; type: string } | null = null;
  for (const line of (readOr("/proc/self/mountinfo") ?? "").split("\n")) {
    // id parent major:minor root mount-point options [optional...] - type source super-options
    const [left, right] = line.split(" - ");
    if (!right) continue;
    const point = (left.split(" ")[4] ?? "").replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    const inside = point === "/" || target === point || target.startsWith(`${point}/`);
    if (inside && (!best || point.length >= best.point.length)) best = { point, type: right.split(" ")[0] };
  }
  return best?.type ?? null;
}

function cpuMaxMhz(): number | null {
  const khz = Number(readOr("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"));
  return Number.isFinite(khz) && khz > 0 ? Math.round(khz / 1000) : null;
}

function cpuBoost(): boolean | null {
  const boost = readOr("/sys/devices/system/cpu/cpufreq/boost");
  if (boost === "0" || boost === "1") return boost === "1";
  const noTurbo = readOr("/sys/devices/system/cpu/intel_pstate/no_turbo");
  if (noTurbo === "0" || noTurbo === "1") return noTurbo === "0";
  return null;
}
