// lib/core/shell.ts: the project's zx `$` quotes each value as one argument,
// reports exit codes when asked to, and ends a command's whole process group
// on a timeout, an abort and the trap's cleanup (checked by the pid of a
// `sleep` the command started in the background).
import { describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { processRuns } from "../lib/core/proc.ts";
import { $, stopReason } from "../lib/core/shell.ts";
import { BUN } from "../lib/core/paths.ts";

const CHILD = resolve(import.meta.dir, "fixtures", "shell-child.ts");
/** Starts a sleep in the command's group and prints its pid; the command itself waits for it. */
const SLEEPER = "sleep 60 & echo $!; wait";

async function gone(pid: number, withinMs = 3000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (processRuns(pid)) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(20);
  }
  return true;
}

describe("$", () => {
  test("values with spaces, quotes and $ reach the program unsplit; an array is one argument per element", async () => {
    const values = ["a b", "it's", 'say "hi"', "$HOME `id` $(id)", "back\\slash", "", "*"];
    const out = await $`printf ${"[%s]\n"} ${values} ${"tail end"}`;
    expect(out.stdout.split("\n").filter(Boolean)).toEqual([...values, "tail end"].map((v) => `[${v}]`));
    expect(out.exitCode).toBe(0);
  });

  test("cwd, env on top of this process's, and cleanEnv", async () => {
    expect((await $({ cwd: "/tmp" })`pwd`).stdout.trim()).toBe("/tmp");
    const env = await $({ env: { PERF_SHELL_TEST: "x y" } })`sh -c ${'printf %s "$PERF_SHELL_TEST:$PATH"'}`;
    expect(env.stdout).toBe(`x y:${process.env.PATH}`);
    const clean = await $({ env: { PATH: "/usr/bin:/bin", ONLY: "1" }, cleanEnv: true })`env`;
    // (sh exports PWD itself)
    expect(clean.stdout.split("\n").filter((l) => l && !l.startsWith("PWD=")).sort()).toEqual(["ONLY=1", "PATH=/usr/bin:/bin"]);
  });

  test("input goes to stdin; without it stdin is at its end at once", async () => {
    expect((await $({ input: "line one\n" })`cat`).stdout).toBe("line one\n");
    expect((await $({ timeout: 5000 })`cat`).stdout).toBe("");
  });

  test("a non-zero exit throws, and with nothrow is returned with its stderr", async () => {
    const failing = $`sh -c ${"echo why >&2; exit 3"}`;
    await expect(failing).rejects.toMatchObject({ exitCode: 3 });
    const r = await $({ nothrow: true })`sh -c ${"echo why >&2; exit 3"}`;
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toBe("why\n");
    expect(r.ok).toBe(false);
    expect(stopReason(r)).toBeNull();
    expect((await $`sh -c ${"exit 5"}`.nothrow()).exitCode).toBe(5);
  });

  test("the sync form runs the same settings", () => {
    const r = $({ nothrow: true }).sync`sh -c ${"printf %s \"$1\"; exit 2"} sh ${"x y"}`;
    expect(r.stdout).toBe("x y");
    expect(r.exitCode).toBe(2);
  });

  test("a timeout ends the command's whole process group", async () => {
    const t0 = performance.now();
    const r = await $({ timeout: 300, nothrow: true })`sh -c ${SLEEPER}`;
    const sleeper = Number(r.stdout.trim());
    expect(sleeper).toBeGreaterThan(0);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(r.signal).toBe("SIGTERM");
    expect(stopReason(r)).toBe("timed out after 300 ms");
    expect(await gone(sleeper)).toBe(true);
  });

  test("a program that ignores SIGTERM gets SIGKILL after the grace time", async () => {
    const r = await $({ timeout: 200, grace: 300, nothrow: true })`sh -c ${"trap '' TERM; sleep 60 & echo $!; wait; wait"}`;
    expect(r.signal).toBe("SIGKILL");
    expect(await gone(Number(r.stdout.trim()))).toBe(true);
  });

  test("an abort signal ends the command's whole process group", async () => {
    const ac = new AbortController();
    const p = $({ signal: ac.signal, nothrow: true })`sh -c ${SLEEPER}`;
    let pid = "";
    p.stdout.on("data", (d: Buffer) => {
      pid += d.toString();
      if (pid.endsWith("\n")) ac.abort();
    });
    const r = await p;
    expect(stopReason(r)).toBe("aborted");
    expect(await gone(Number(pid.trim()))).toBe(true);
  });

  test("an interrupt (the trap's cleanup) ends a running command's process group", async () => {
    const child = Bun.spawn([BUN, CHILD], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const reader = child.stdout.getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    const sleeper = Number(out.trim());
    expect(sleeper).toBeGreaterThan(0);
    expect(processRuns(sleeper)).toBe(true);
    child.kill("SIGINT");
    expect(await child.exited).toBe(130);
    expect(await gone(sleeper)).toBe(true);
  });
});
