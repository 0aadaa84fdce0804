// The local backend on cgroup v2, for real: this host is cgroup v1, so the
// suite boots the project's own image (Debian 12, systemd, cgroup2 at
// /sys/fs/cgroup with nsdelegate) with the qemu machinery, brings the
// project, Bun and PicoShare in on a read-only disk, and runs run-test and
// the matrix inside the guest in each set-up the backend supports: root over
// ssh (a service cgroup, ssh.service), root in a login-like scope, a user
// with a systemd user manager, a container with its own cgroup namespace,
// the matrix's nested run-test children; then an OOM kill, Ctrl-C
// mid-upload and a SIGKILLed harness's leftovers. One VM for all of them;
// after each case nothing of the harness is left in the guest.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chooseAccel } from "../lib/vm/qemu.ts";
import { findImage, type VmImage } from "../lib/vm/image/index.ts";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import { runScript, waitFor } from "./helpers/run.ts";
import { GUEST, bootGuest, projectDisk, type Guest } from "./helpers/guest-vm.ts";

setDefaultTimeout(300_000);

let root: string;
let image: VmImage;
let guest: Guest | null = null;
const timings: string[] = [];
/** What run-test said in each set-up: the cgroup it chose and its TEST PASSED block (printed at the end). */
const outputs: string[] = [];
/** The guest user's uid (the image's user, with a user manager in the user case). */
const UID = 1000;

beforeAll(async () => {
  const t0 = performance.now();
  const built = await runScript("build-vm-image", []);
  if (built.code !== 0) console.error(built.stderr);
  expect(built.code).toBe(0);
  image = findImage()!;
  const picoshare = (await resolvePicoShare()).path;
  root = mkdtempSync(join(tmpdir(), "cgroup-v2-spec-"));
  const files = join(root, "files");
  mkdirSync(files);
  for (const [label, bytes] of [["8M", 8 * MiB], ["32M", 32 * MiB]] as const) await writeTestFile(testFilePath(label, files), bytes);
  const t1 = performance.now();
  const disk = projectDisk(root, picoshare, [testFilePath("8M", files), testFilePath("32M", files)]);
  const diskSeconds = (performance.now() - t1) / 1000;
  const accel = (await chooseAccel(image)).accel;
  guest = await bootGuest({ image, accel, dir: root, ramMiB: 1024, disk });
  timings.push(`image ${((t1 - t0) / 1000).toFixed(1)} s, project disk ${diskSeconds.toFixed(1)} s, boot ${guest.bootSeconds.toFixed(1)} s (${accel})`);
}, 900_000);

afterAll(async () => {
  await guest?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
  if (timings.length) console.log(`cgroup v2 tests: ${timings.join("; ")}`);
  if (outputs.length) console.log(`run-test in the cgroup-v2 guest:\n${outputs.join("\n")}`);
});

/** Environment and arguments of a run-test in the guest; `tag` names its folders under /tmp/pperf. */
function runTest(tag: string, ...extra: string[]): string {
  return [
    "env", "NO_COLOR=1", `PATH=${GUEST.bun.replace(/\/bun$/, "")}:/usr/sbin:/usr/bin:/sbin:/bin`,
    GUEST.bun, `${GUEST.project}/scripts/run-test.ts`,
    "--test-files", GUEST.files, "--picoshare", GUEST.picoshare,
    "--results-dir", `/tmp/pperf/${tag}/results`, "--work-dir", `/tmp/pperf/${tag}/work`,
    ...extra,
  ].join(" ");
}

async function prepare(tag: string, owner = "root"): Promise<void> {
  const r = await guest!.root(`mkdir -p /tmp/pperf/${tag}/results /tmp/pperf/${tag}/work && chown -R ${owner} /tmp/pperf/${tag}`);
  expect(r.code).toBe(0);
}

/** The result file run-test printed, read in the guest. */
async function guestResult(stdout: string) {
  const path = stdout.trim().split("\n").pop()!;
  const r = await guest!.root(`cat ${path}`);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

/** Every cgroup, unit and process the harness could leave behind in the guest: none may remain. */
async function expectNothingLeft(): Promise<void> {
  const listing = [
    "find /sys/fs/cgroup -name 'picoshare-perf-*' 2>/dev/null",
    "systemctl list-units --all --plain --no-legend 'picoshare-perf-*'",
    `[ -S /run/user/${UID}/systemd/private ] && runuser -u perf -- env XDG_RUNTIME_DIR=/run/user/${UID} systemctl --user list-units --all --plain --no-legend 'picoshare-perf-*'`,
    "ps -eo comm= | grep -x -e picoshare -e bun",
    "true",
  ].join("; ");
  let left = "";
  // A scope is stopped and removed by systemd a moment after its last process ends.
  await waitFor("the guest to be clean", async () => {
    left = (await guest!.root(listing)).stdout.trim();
    return left === "";
  }, 10_000).catch(() => {});
  expect(left).toBe("");
}

/** Keeps the lines of run-test's output that say where the limit went and how the test went. */
function keepOutput(setUp: string, stderr: string): void {
  const kept = stderr.split("\n").filter((l) => /Memory limits:|TEST (PASSED|FAILED)|Throughput:|Peak Memory:|Phases:|\] (PASS|FAIL) \(took/.test(l));
  outputs.push(`  ${setUp}:`, ...kept.map((l) => `    ${l.replace(/^\[[^\]]+\] /, "")}`));
}

function expectV2Result(r: any, placement: string) {
  expect(r).toMatchObject({ backend: "local", exit_reason: "success", success: true, ram_mb: 256, http_status: "200" });
  expect(r.backend_settings).toMatchObject({ cgroup_version: "2", cgroup_placement: placement, memory_limit_bytes: 256 * MiB, swap: "excluded" });
  // memory.peak (kernel 5.19+; the guest runs 6.1), memory.events and memory.stat were read.
  expect(r.kernel_peak_memory_bytes).toBeGreaterThan(r.peak_memory_bytes * 0.5);
  expect(r.peak_memory_bytes).toBeGreaterThan(1 * MiB);
  expect(r.peak_memory_bytes).toBeLessThan(256 * MiB);
  expect(r.oom_kills).toBe(0);
  // CPU from the test cgroup's cpu.stat (there without the cpu controller); the processes' own counters too.
  expect(r.backend_settings.cpu_source).toBe("cpu.stat");
  expect(r.cpu_user_seconds + r.cpu_system_seconds).toBeGreaterThan(0);
  expect(r.test_counters.cpu_user_seconds + r.test_counters.cpu_system_seconds).toBeGreaterThanOrEqual(r.cpu_user_seconds + r.cpu_system_seconds);
  // The exact total (usage_usec): the kernel scales the user/system split to it, so they agree within rounding.
  expect(r.cpu_seconds).toBeGreaterThan(0);
  expect(Math.abs(r.cpu_seconds - (r.cpu_user_seconds + r.cpu_system_seconds))).toBeLessThan(0.001 + 0.01 * r.cpu_seconds);
  expect(r.test_counters.cpu_seconds).toBeGreaterThanOrEqual(r.cpu_seconds);
  expect(r.write_syscalls).toBeGreaterThan(8);
  expect(r.read_syscalls).toBeGreaterThan(8);
  // memory.stat's v2 keys and the cgroup's memory.pressure (PSI) totals.
  expect(r.anon_peak_bytes).toBeGreaterThan(0);
  expect(r.memory_at_peak.anon).toBeGreaterThan(0);
  expect(r.memory_at_peak.kernel).toBeGreaterThan(0);
  expect(r.memory_pressure.some_seconds).toBeGreaterThanOrEqual(r.memory_pressure.full_seconds);
  expect(r.memory_pressure.full_seconds).toBeGreaterThanOrEqual(0);
}

test("the guest is cgroup v2 with systemd, and Bun runs there", async () => {
  const t0 = performance.now();
  const r = await guest!.sh(`stat -fc %T /sys/fs/cgroup; cat /proc/self/cgroup; ${GUEST.bun} --version; grep -o nsdelegate /proc/mounts | head -1`);
  const [fs, cgroup, version, nsdelegate] = r.stdout.trim().split("\n");
  expect(fs).toBe("cgroup2fs");
  // An ssh login without logind stays in sshd's own service cgroup: not delegated, not a leaf.
  expect(cgroup).toBe("0::/system.slice/ssh.service");
  expect(version).toBe(Bun.version);
  expect(nsdelegate).toBe("nsdelegate");
  const t1 = performance.now();
  expect((await guest!.sh(`${GUEST.bun} -e 'console.log(1)'`)).stdout.trim()).toBe("1");
  timings.push(`Bun in the guest: first start with checks ${((t1 - t0) / 1000).toFixed(1)} s, a second ${((performance.now() - t1) / 1000).toFixed(1)} s`);
});

describe("set-ups that pass", () => {
  test("root over ssh (harness in ssh.service): systemd's system manager delegates a scope", async () => {
    await prepare("ssh");
    const t0 = performance.now();
    const ran = await guest!.root(runTest("ssh", "--ram", "256", "--file-size", "8M", "--verify"));
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    expect(ran.stderr).toMatch(/Memory limits: cgroup v2, a delegated scope from systemd's system manager: \/sys\/fs\/cgroup\/system\.slice\/picoshare-perf-\d+-[0-9a-f]+\.scope \(the harness started in \/system\.slice\/ssh\.service\)/);
    const r = await guestResult(ran.stdout);
    expectV2Result(r, "systemd-system");
    expect(r.verified).toBe(true);
    keepOutput("root over ssh (ssh.service)", ran.stderr);
    expect(r.backend_settings.cgroup_path).toMatch(/^\/sys\/fs\/cgroup\/system\.slice\/picoshare-perf-\d+-[0-9a-f]+\.scope\/picoshare-perf-\d+-[0-9a-f]+$/);
    await expectNothingLeft();
    timings.push(`root over ssh ${((performance.now() - t0) / 1000).toFixed(1)} s (upload ${r.phases.upload.toFixed(1)} s)`);
  });

  test("root in a login-like scope (systemd-run --scope, not delegated)", async () => {
    await prepare("scope");
    const ran = await guest!.root(`systemd-run --scope --quiet --unit=pperf-login.scope -- ${runTest("scope", "--ram", "256", "--file-size", "8M")}`);
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    expect(ran.stderr).toContain("a delegated scope from systemd's system manager");
    expect(ran.stderr).toContain("(the harness started in /system.slice/pperf-login.scope)");
    expectV2Result(await guestResult(ran.stdout), "systemd-system");
    keepOutput("root in a login-like scope", ran.stderr);
    await expectNothingLeft();
  });

  test("a user with a systemd user manager (user@UID.service): the user's manager delegates a scope", async () => {
    // The image masks logind (not needed to run PicoShare); lingering has it start the user's manager.
    // Its socket comes before the unit is active (CI saw "activating" once): wait for both, 10 s at most.
    const started = await guest!.root(
      `systemctl unmask --quiet systemd-logind.service && systemctl start systemd-logind.service && loginctl enable-linger perf && ` +
        `for i in $(seq 100); do [ -S /run/user/${UID}/systemd/private ] && [ "$(systemctl is-active user@${UID}.service)" = active ] && break; sleep 0.1; done; ` +
        `systemctl is-active user@${UID}.service`,
    );
    if (started.stdout.trim() !== "active") console.error(started.stderr);
    expect(started.stdout.trim()).toBe("active");
    await prepare("user", "perf");
    // The harness as a service of the user's own manager (systemd-run over the manager's private
    // socket: the image has no user bus), as a desktop session's programs run inside it.
    const out = "/tmp/pperf/user";
    const start = await guest!.sh(
      `XDG_RUNTIME_DIR=/run/user/${UID} systemd-run --user --quiet --collect --unit=pperf-user.service -- ` +
        `sh -c "${runTest("user", "--ram", "256", "--file-size", "8M")} >${out}/stdout 2>${out}/stderr; echo \\$? >${out}/rc"`,
    );
    expect(start.code).toBe(0);
    await waitFor("the run in the user's manager", async () => (await guest!.sh(`cat ${out}/rc`)).code === 0, 120_000);
    const ran = { code: Number((await guest!.sh(`cat ${out}/rc`)).stdout), stdout: (await guest!.sh(`cat ${out}/stdout`)).stdout, stderr: (await guest!.sh(`cat ${out}/stderr`)).stdout };
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    expect(ran.stderr).toMatch(new RegExp(`a delegated scope from systemd's user manager: /sys/fs/cgroup/user\\.slice/user-${UID}\\.slice/user@${UID}\\.service/\\S+/picoshare-perf-\\d+-[0-9a-f]+\\.scope`));
    expect(ran.stderr).toContain(`(the harness started in /user.slice/user-${UID}.slice/user@${UID}.service/app.slice/pperf-user.service)`);
    const r = await guestResult(ran.stdout);
    expectV2Result(r, "systemd-user");
    keepOutput("perf under its user manager", ran.stderr);
    await expectNothingLeft();
  });

  test("a container with its own cgroup namespace and no systemd to ask: the namespace root is reorganised", async () => {
    await prepare("container");
    // The "container": a delegated scope as its cgroup, a cgroup namespace rooted there, cgroup2
    // mounted afresh inside its own mount namespace, and no systemd socket in sight.
    const inner = ["umount -l /sys/fs/cgroup", "mount -t cgroup2 cgroup2 /sys/fs/cgroup", "mount -t tmpfs tmpfs /run/systemd", `exec ${runTest("container", "--ram", "256", "--file-size", "8M")}`].join(" && ");
    const ran = await guest!.root(`systemd-run --scope --quiet -p Delegate=yes --unit=pperf-container.scope -- unshare --cgroup --mount --propagation private sh -c "${inner}"`);
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    expect(ran.stderr).toMatch(/Memory limits: cgroup v2, the cgroup-namespace root \/sys\/fs\/cgroup \(its processes moved into picoshare-perf-harness; no systemd to ask for a delegated cgroup \(\/run\/systemd\/private is missing\)\) \(the harness started in \/\)/);
    const r = await guestResult(ran.stdout);
    expectV2Result(r, "namespace-root");
    keepOutput("a container (own cgroup namespace, no systemd)", ran.stderr);
    expect(r.backend_settings.cgroup_path).toMatch(/^\/sys\/fs\/cgroup\/picoshare-perf-\d+-[0-9a-f]+$/);
    await expectNothingLeft();
  });

  test("nested, as the matrix runs it: the matrix's scope, each run-test child inside it, PicoShare below", async () => {
    await prepare("matrix");
    const ran = await guest!.root(
      [
        "env", "NO_COLOR=1", GUEST.bun, `${GUEST.project}/scripts/run-test-matrix.ts`,
        "--memory-limits", "256,128", "--file-sizes", "8M", "--test-files", GUEST.files, "--picoshare", GUEST.picoshare,
        "--results-dir", "/tmp/pperf/matrix/results", "--work-dir", "/tmp/pperf/matrix/work",
      ].join(" "),
      600_000,
    );
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    const scope = /a delegated scope from systemd's system manager: (\S+\.scope)/.exec(ran.stderr)?.[1];
    expect(scope).toBeTruthy();
    keepOutput("the matrix (its children nested)", ran.stderr);
    const listed = await guest!.root("cat /tmp/pperf/matrix/results/matrix-*/result-*.json");
    const results = listed.stdout.trim().split(/\n(?=\{)/).map((t) => JSON.parse(t));
    expect(results.map((r) => r.ram_mb).sort()).toEqual([128, 256]);
    for (const r of results) {
      expect(r.success).toBe(true);
      expect(r.backend_settings.cgroup_placement).toBe("nested");
      expect(r.backend_settings.cgroup_path.startsWith(`${scope}/picoshare-perf-`)).toBe(true);
    }
    await expectNothingLeft();
  });
});

describe("where memory cannot be limited: exit 2, one line naming what failed and the fix, nothing written", () => {
  /**
   * run-test as root inside a mount namespace; with `cgroup`, also in a cgroup namespace rooted
   * at a scope that delegates everything ("delegated"), or at a cgroup given no controller ("bare").
   */
  async function refused(tag: string, setup: string[], cgroup?: "delegated" | "bare") {
    await prepare(tag);
    const inner = [...setup, `exec ${runTest(tag, "--ram", "256", "--file-size", "8M")}`].join(" && ");
    const ns = `unshare ${cgroup ? "--cgroup " : ""}--mount --propagation private sh -c "${inner}"`;
    const bare = "/sys/fs/cgroup/pperf-bare/container";
    const command =
      cgroup === "delegated" ? `systemd-run --scope --quiet -p Delegate=yes -- ${ns}`
      : cgroup === "bare" ? `mkdir -p ${bare} && sh -c 'echo $$ > ${bare}/cgroup.procs && exec ${ns}'`
      : ns;
    const ran = await guest!.root(command);
    if (cgroup === "bare") await guest!.root(`rmdir ${bare} /sys/fs/cgroup/pperf-bare`);
    expect(ran.code).toBe(2);
    const errors = ran.stderr.split("\n").filter((l) => l.includes("ERROR:"));
    expect(errors).toHaveLength(1);
    expect(ran.stdout).toBe("");
    expect((await guest!.root(`ls -A /tmp/pperf/${tag}/results /tmp/pperf/${tag}/work`)).stdout.replace(/\S+:/g, "").trim()).toBe("");
    await expectNothingLeft();
    return errors[0];
  }
  const hideSystemd = "mount -t tmpfs tmpfs /run/systemd";
  const ownCgroupfs = (opts = "") => ["umount -l /sys/fs/cgroup", `mount -t cgroup2 ${opts} cgroup2 /sys/fs/cgroup`];

  test("no systemd to ask, in a cgroup that holds other processes (ssh.service)", async () => {
    const line = await refused("no-systemd", [hideSystemd]);
    expect(line).toContain("ERROR: cannot limit memory here: no systemd to ask for a delegated cgroup (/run/systemd/private is missing), and the harness's cgroup /system.slice/ssh.service is not one it may reorganise");
    expect(line).toContain("run under systemd, as root or with a user manager, or in a container with its own cgroup namespace");
  });

  test("a container whose cgroup file system is read-only", async () => {
    const line = await refused("read-only", [...ownCgroupfs("-o ro"), hideSystemd], "delegated");
    expect(line).toMatch(/ERROR: the cgroup \/sys\/fs\/cgroup is not writable by this user \(EROFS\): run as root, or where systemd delegates a cgroup to you/);
  });

  test("a container given no memory controller", async () => {
    const line = await refused("no-memory", [...ownCgroupfs(), hideSystemd], "bare");
    expect(line).toMatch(/ERROR: cgroup v2 offers no memory controller here \(\/sys\/fs\/cgroup\/cgroup\.controllers: empty\): .*in a container, have it made with the memory controller delegated/);
  });
});

describe("failures and interruptions", () => {
  test("too little RAM: PicoShare is OOM-killed, counted from memory.events", async () => {
    await prepare("oom");
    const ran = await guest!.root(runTest("oom", "--ram", "10", "--file-size", "32M"));
    expect(ran.code).toBe(1);
    const r = await guestResult(ran.stdout);
    if (r.exit_reason !== "oom_killed") console.error(ran.stderr);
    expect(r.exit_reason).toBe("oom_killed");
    expect(r.oom_kills).toBeGreaterThan(0);
    expect(r.backend_settings.cgroup_version).toBe("2");
    keepOutput("OOM at 10 MiB", ran.stderr);
    await expectNothingLeft();
  });

  /** Starts a 32M run-test in the background in the guest; resolves once the upload is under way. */
  async function startUpload(tag: string): Promise<string> {
    await prepare(tag);
    const dir = `/tmp/pperf/${tag}/bg`;
    const started = await guest!.root(`${GUEST.bgRun} ${dir} ${runTest(tag, "--ram", "256", "--file-size", "32M")}`);
    expect(started.code).toBe(0);
    // Under way once Go's multipart reader has spilled to PicoShare's temp folder.
    await waitFor("the upload in the guest", async () => (await guest!.root(`ls /tmp/pperf/${tag}/work/picoshare-perf-*/tmp/`)).stdout.trim() !== "", 120_000);
    return dir;
  }

  test("Ctrl-C mid-upload: exit 130, no cgroup, scope or process left, no result", async () => {
    const dir = await startUpload("sigint");
    expect((await guest!.root(`kill -INT $(cat ${dir}/pid)`)).code).toBe(0);
    await waitFor("run-test to end", async () => (await guest!.root(`cat ${dir}/rc`)).code === 0, 60_000);
    expect((await guest!.root(`cat ${dir}/rc`)).stdout.trim()).toBe("130");
    expect((await guest!.root(`cat ${dir}/stderr`)).stdout).toContain("Caught SIGINT");
    expect((await guest!.root(`cat ${dir}/stdout; ls /tmp/pperf/sigint/results`)).stdout.trim()).toBe("");
    await expectNothingLeft();
  });

  test("a SIGKILLed harness: its PicoShare is reported by the next run with the command that stops it; then nothing is left", async () => {
    const dir = await startUpload("sigkill");
    const scope = /(picoshare-perf-\d+-[0-9a-f]+\.scope)/.exec((await guest!.root(`cat ${dir}/stderr`)).stdout)?.[1] ?? "";
    expect(scope).not.toBe("");
    expect((await guest!.root(`kill -KILL $(cat ${dir}/pid)`)).code).toBe(0);
    await waitFor("the harness to be gone", async () => (await guest!.root(`cat ${dir}/rc`)).code === 0, 30_000);
    // Its PicoShare goes on in the dead harness's scope.
    expect((await guest!.root(`systemctl is-active ${scope}`)).stdout.trim()).toBe("active");
    await prepare("after-kill");
    const next = await guest!.root(runTest("sigkill", "--ram", "256", "--file-size", "8M"));
    expect(next.code).toBe(0);
    expect(next.stderr).toMatch(new RegExp(`PicoShare left running by a dead harness \\(pid \\d+\\) in /sys/fs/cgroup/system\\.slice/${scope.replace(/\./g, "\\.")}/picoshare-perf-\\S+: stop it with systemctl stop ${scope.replace(/\./g, "\\.")}`));
    // The dead run's folder stays while its PicoShare runs.
    expect((await guest!.root("ls /tmp/pperf/sigkill/work")).stdout.trim()).toMatch(/^picoshare-perf-\d+-/);
    expect((await guest!.root(`systemctl stop ${scope}`)).code).toBe(0);
    const after = await guest!.root(runTest("sigkill", "--ram", "256", "--file-size", "8M"));
    expect(after.code).toBe(0);
    expect(after.stderr).toMatch(/Removed \/tmp\/pperf\/sigkill\/work\/picoshare-perf-\d+-\S+, left by a harness run that died/);
    expect((await guest!.root("ls -A /tmp/pperf/sigkill/work")).stdout.trim()).toBe("");
    await expectNothingLeft();
  });
});
