// Event counts of PicoShare's processes during a phase, with perf (Debian's
// linux-perf): `perf stat -e EVENTS -p PIDS`, started disabled and enabled
// through its control FIFO (perf acknowledges once the counters run, so the
// count starts when the phase does), disabled the same way at its end, then
// stopped with SIGINT, which makes perf write its counts. perf's counters
// inherit, so threads the processes start later (Go's) are counted too.
// Retired instructions barely vary from run to run where the CPU has
// counters; many hosts (VMs, containers, this kind of machine) have none, and
// then the count is null and the log says why, once per process.
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync } from "node:fs";
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

/** Running counts of several events; stop() gives each (null: not counted), or null when perf gave nothing. */
export interface EventCounts {
  stop(): Promise<Record<string, number | null> | null>;
}

/** How long perf gets to acknowledge an enable or disable before the count is given up. */
const ACK_MS = 5000;

/** The value of `event` in perf stat's CSV output (-x,): null when it says <not supported> or <not counted>. */
export function parsePerfStat(text: string, event: string): number | null {
  return parsePerfStatAll(text, [event])[0];
}

/**
 * The values of `events`, in the order perf was given them (an event may be
 * given several times, each with its own filter, and perf prints each line in
 * that order): null for one that says <not supported> or <not counted>, or is missing.
 */
export function parsePerfStatAll(text: string, events: string[]): (number | null)[] {
  const values: (number | null)[] = [];
  for (const line of text.split("\n")) {
    if (values.length === events.length) break;
    const fields = line.split(",");
    const event = events[values.length];
    // The event, or the event with modifiers (instructions:u); never a longer name (write, writev).
    if (fields[2] === undefined || (fields[2] !== event && !fields[2].startsWith(`${event}:`))) continue;
    const value = Number(fields[0]);
    values.push(fields[0] !== "" && Number.isFinite(value) ? value : null);
  }
  return [...values, ...Array<null>(events.length - values.length).fill(null)];
}

/** An event to count: its name for perf, with a filter where perf should count only some of its hits (a tracepoint's fields). */
export interface PerfEvent {
  key: string;
  event: string;
  filter?: string;
}

/** Starts counting `event` (a perf event name: instructions, task-clock...) over the processes `pids`. */
export async function countEvent(pids: number[], event: string): Promise<EventCount> {
  const counts = await countEvents(pids, [{ key: event, event }]);
  return { stop: async () => (await counts.stop())?.[event] ?? null };
}

/** perf's arguments for `events`: each `-e EVENT`, followed by its `--filter` where it has one. */
export function perfEventArgs(events: PerfEvent[]): string[] {
  return events.flatMap((e) => ["-e", e.event, ...(e.filter ? ["--filter", e.filter] : [])]);
}

/**
 * Starts counting `events` over the processes `pids`: counting when it
 * returns. `under` is a command perf runs through (a private mount
 * namespace for tracepoints), its last word perf's own.
 */
export async function countEvents(pids: number[], events: PerfEvent[], under: string[] = []): Promise<EventCounts> {
  const dir = mkdtempSync(join(tmpdir(), "perf-stat-"));
  const out = join(dir, "stat.csv");
  const [ctl, ack] = [join(dir, "ctl"), join(dir, "ack")];
  await $`mkfifo ${ctl} ${ack}`;
  // Both ends ours before perf starts: perf opens the ack FIFO without waiting for a reader.
  const ctlFd = openSync(ctl, constants.O_RDWR | constants.O_NONBLOCK);
  const ackFd = openSync(ack, constants.O_RDONLY | constants.O_NONBLOCK);
  const perf = start(
    [...under, "perf", "stat", "-x,", "-D", "-1", "--control", `fifo:${ctl},${ack}`, ...perfEventArgs(events), "-o", out, "-p", pids.join(",")],
    { stdout: "ignore" },
  );
  let closed = false;
  const end = async () => {
    await stopGroup(perf, 2000, "SIGINT");
    if (!closed) [ctlFd, ackFd].forEach((fd) => closeSync(fd));
    closed = true;
  };
  const forget = onCleanup("stop perf stat", async () => {
    await end();
    rmSync(dir, { recursive: true, force: true });
  });
  /** Sends perf a control command and waits for its ack: false when perf ended or did not answer. */
  const command = async (word: string): Promise<boolean> => {
    writeSync(ctlFd, `${word}\n`);
    const buf = Buffer.alloc(64);
    for (const until = performance.now() + ACK_MS; performance.now() < until && perf.running(); await Bun.sleep(2)) {
      try {
        if (readSync(ackFd, buf, 0, buf.length, null) > 0 && buf.toString().startsWith("ack")) return true;
      } catch {} // EAGAIN: nothing yet
    }
    return false;
  };
  const counting = await command("enable");
  return {
    async stop() {
      // Disabled before it is stopped: what runs after the phase (reading the counts included) is not in it.
      if (counting) await command("disable");
      await end();
      forget();
      try {
        const text = readFileSync(out, "utf8");
        const values = parsePerfStatAll(text, events.map((e) => e.event));
        return counting ? Object.fromEntries(events.map((e, i) => [e.key, values[i]])) : null;
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
