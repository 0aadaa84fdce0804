// Hardware event counts of PicoShare's processes during the upload, with
// perf (Debian's linux-perf): `perf stat -e instructions -p PIDS`, stopped
// with SIGINT at the response, which makes perf write its count. Retired
// instructions barely vary from run to run where the CPU has counters; many
// hosts (VMs, containers, this kind of machine) have none, and then the count
// is null and the log says why, once per process.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { start, stopGroup } from "../core/exec.ts";
import { $ } from "../core/shell.ts";
import { onCleanup } from "../core/cleanup.ts";
import { log } from "../core/log.ts";

/** A running count; stop() ends it and gives the count, or null when perf could not count. */
export interface EventCount {
  stop(): Promise<number | null>;
}

/** The value of `event` in perf stat's CSV output (-x,): null when it says <not supported> or <not counted>. */
export function parsePerfStat(text: string, event: string): number | null {
  for (const line of text.split("\n")) {
    const fields = line.split(",");
    if (fields[2] === undefined || !fields[2].startsWith(event)) continue;
    const value = Number(fields[0]);
    return fields[0] !== "" && Number.isFinite(value) ? value : null;
  }
  return null;
}

/** Starts counting `event` (a perf event name: instructions, task-clock...) over the processes `pids`. */
export function countEvent(pids: number[], event: string): EventCount {
  const dir = mkdtempSync(join(tmpdir(), "perf-stat-"));
  const out = join(dir, "stat.csv");
  const perf = start(["perf", "stat", "-x,", "-e", event, "-o", out, "-p", pids.join(",")], { stdout: "ignore" });
  const forget = onCleanup("stop perf stat", async () => {
    await stopGroup(perf, 2000, "SIGINT");
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    async stop() {
      await stopGroup(perf, 2000, "SIGINT");
      forget();
      try {
        return parsePerfStat(readFileSync(out, "utf8"), event);
      } catch {
        return null;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

let support: Promise<string | null> | null = null;

/**
 * Why instructions cannot be counted on this host (perf missing, no
 * hardware counters), or null when they can: asked once per process, by
 * counting a short command's instructions.
 */
export function instructionsUnavailable(): Promise<string | null> {
  support ??= (async () => {
    const r = await $`perf stat -x, -e instructions -- true`.nothrow();
    if (r.exitCode === 127 || (r.exitCode !== 0 && /not found|No such file/i.test(r.stderr))) {
      return "perf is not installed (apt-get install linux-perf)";
    }
    if (/<not supported>/.test(r.stderr)) return "this host has no hardware performance counters (perf stat -e instructions: not supported)";
    if (parsePerfStat(r.stderr, "instructions") === null) {
      return `perf cannot count instructions here (${r.stderr.trim().split("\n").pop() ?? `exit ${r.exitCode}`})`;
    }
    return null;
  })();
  return support;
}

let said = false;

/** An instructions count over `pids`, or null (said once in the log) where the host cannot count them. */
export async function countInstructions(pids: number[]): Promise<EventCount | null> {
  if (pids.length === 0) return null;
  const why = await instructionsUnavailable();
  if (why !== null) {
    if (!said) log(`Instructions: not counted: ${why}; the results' instructions is null`);
    said = true;
    return null;
  }
  return countEvent(pids, "instructions");
}
