// Facts about the host that explain a measurement: stored with every result
// so that runs on different machines or settings are never compared blindly.
import { cpus, freemem, hostname, loadavg, release, totalmem } from "node:os";
import { existsSync, readFileSync, statSync } from "node:fs";

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
  };
}
