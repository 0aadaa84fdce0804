// Hardware event counts with a real perf: its CSV output, a count over a
// real busy process (task-clock, a software event every host has: the same
// start, SIGINT and parse as for instructions), and what this host says about
// instructions.
import { expect, test } from "bun:test";
import { start, stopGroup } from "../lib/core/exec.ts";
import { $ } from "../lib/core/shell.ts";
import { countEvent, instructionsUnavailable, parsePerfStat, parsePerfStatAll } from "../lib/upload/perf-events.ts";

test("perf stat's CSV: a counted event gives its value; one the host cannot count gives null", async () => {
  const r = await $`perf stat -x, -e task-clock,instructions -- sh -c ${"i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"}`.nothrow();
  expect(r.exitCode).toBe(0);
  expect(parsePerfStat(r.stderr, "task-clock")).toBeGreaterThan(0);
  const why = await instructionsUnavailable();
  if (why === null) expect(parsePerfStat(r.stderr, "instructions")).toBeGreaterThan(0);
  else {
    expect(r.stderr).toContain("<not supported>");
    expect(parsePerfStat(r.stderr, "instructions")).toBeNull();
    expect(why).toMatch(/no hardware performance counters/);
  }
  expect(parsePerfStat("", "instructions")).toBeNull();
});

test("one event given several times, each with its own filter: a real perf's values, in the order given", async () => {
  // dd's fsync (conv=fsync) and its writes, counted apart on the one raw syscall tracepoint.
  const r = await $`unshare --mount --propagation private sh -c ${"mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing; exec \"$@\""} sh perf stat -x, -e raw_syscalls:sys_enter --filter ${"id == 74"} -e raw_syscalls:sys_enter --filter ${"id == 1"} -- dd if=/dev/zero of=/dev/null bs=1k count=7 status=none`.nothrow();
  // The numbers are x86_64's (fsync 74, write 1), as on the machines this suite runs on.
  expect(r.exitCode).toBe(0);
  const [fsyncs, writes] = parsePerfStatAll(r.stderr, ["raw_syscalls:sys_enter", "raw_syscalls:sys_enter"]);
  expect(fsyncs).toBe(0);
  expect(writes).toBe(7);
  expect(parsePerfStatAll("1,,a,1\n", ["a", "a"])).toEqual([1, null]);
});

test("a count over a running process: started, stopped with SIGINT, read back", async () => {
  const busy = start(["sh", "-c", "while :; do :; done"]);
  try {
    const count = await countEvent([busy.pid], "task-clock");
    await Bun.sleep(400);
    const ms = await count.stop();
    // task-clock is in milliseconds of CPU: a busy loop gets most of 400 ms of one core.
    expect(ms).toBeGreaterThan(100);
    expect(ms).toBeLessThan(1000);
  } finally {
    await stopGroup(busy, 1000);
  }
});
