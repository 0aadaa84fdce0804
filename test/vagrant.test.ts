// The vagrant backend, end to end, without Vagrant or KVM: a stand-in
// `vagrant` (test/fixtures/fake-vagrant) first on PATH answers for the VM,
// and the "VM" is this host reached through a real sshd started here on
// 127.0.0.1 (test/helpers/sshd.ts). Everything after `vagrant up` is real:
// ssh with a shared connection, scp, a port forward, the detached start
// (setsid here: no systemd), the memory stream, the kernel log, teardown.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, symlinkSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, createServer, type Socket } from "node:net";
import { freePort } from "../lib/core/net.ts";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";
import { BUN, ROOT } from "../lib/core/paths.ts";
import { $ } from "../lib/core/shell.ts";
import { runScript, startScript, waitFor, type Ran } from "./helpers/run.ts";
import { descendants, running, startSshd, type TestSshd } from "./helpers/sshd.ts";
import { hostState, hostStateChanges, type HostState } from "./helpers/host-state.ts";
import { ownMemoryCgroup } from "./helpers/cgroups.ts";

setDefaultTimeout(60_000);

const FAKE = resolve(import.meta.dir, "fixtures", "fake-vagrant");

let sshd: TestSshd;
let root: string;
let files: string;
let bin: string;
let picoshare: string;
let hostBefore: HostState;

beforeAll(async () => {
  hostBefore = hostState();
  picoshare = (await resolvePicoShare()).path;
  root = mkdtempSync(join(tmpdir(), "vagrant-spec-"));
  files = join(root, "files");
  mkdirSync(files);
  await writeTestFile(testFilePath("4M", files), 4 * MiB);
  await writeTestFile(testFilePath("256M", files), 256 * MiB);
  bin = join(root, "bin");
  mkdirSync(bin);
  symlinkSync(FAKE, join(bin, "vagrant"));
  sshd = await startSshd();
}, 300_000);

afterAll(async () => {
  await sshd?.stop();
  rmSync(root, { recursive: true, force: true });
});

interface Case {
  base: string;
  folder: string;
  guest: string;
  results: string;
  work: string;
  tmp: string;
  calls: string;
}

/** A Vagrant folder (with the project's Vagrantfile), a guest base, results and work dirs, private to one test. */
function newCase(): Case {
  const base = mkdtempSync(join(root, "case-"));
  const c = {
    base,
    folder: join(base, "folder"),
    guest: join(base, "guest"),
    results: join(base, "results"),
    work: join(base, "work"),
    tmp: join(base, "tmp"),
    calls: join(base, "vagrant-calls.log"),
  };
  for (const d of [c.folder, c.guest, c.work, c.tmp]) mkdirSync(d);
  copyFileSync(join(ROOT, "Vagrantfile"), join(c.folder, "Vagrantfile"));
  return c;
}

function env(c: Case, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: `${bin}:${process.env.PATH}`,
    VAGRANT_CWD: c.folder,
    FAKE_VAGRANT_SSH_PORT: String(sshd.port),
    FAKE_VAGRANT_KEY: sshd.keyPath,
    FAKE_VAGRANT_LOG: c.calls,
    PERF_VAGRANT_SKIP_HOST_CHECKS: "1",
    PERF_VAGRANT_GUEST_DIR: c.guest,
    // The ssh control socket's private folder goes here: checked empty afterwards.
    TMPDIR: c.tmp,
    ...extra,
  };
}

function args(c: Case, ...extra: string[]): string[] {
  return [
    "--backend", "vagrant", "--test-files", files, "--results-dir", c.results, "--work-dir", c.work,
    "--picoshare", picoshare, ...extra,
  ];
}

/** The stand-in's record of the vagrant commands run, one per line (without the env suffix). */
function calls(c: Case): string[] {
  if (!existsSync(c.calls)) return [];
  return readFileSync(c.calls, "utf8").trim().split("\n").filter(Boolean).map((l) => l.replace(/ VM_MEMORY=.*$/, ""));
}

function callLines(c: Case): string[] {
  return existsSync(c.calls) ? readFileSync(c.calls, "utf8").trim().split("\n") : [];
}

function readResult(ran: Ran) {
  return JSON.parse(readFileSync(ran.stdout.trim(), "utf8"));
}

function errorLines(ran: Ran): string[] {
  return ran.stderr.split("\n").filter((l) => l.includes("ERROR:"));
}

function guestDirs(c: Case): string[] {
  return readdirSync(c.guest).filter((n) => n.startsWith("picoshare-perf-vm-"));
}

/** Once a run is over, none of its ssh connections is left at the sshd (the shared master was closed). */
async function noSshSessions(): Promise<void> {
  await waitFor("the ssh connections to close", () => descendants(sshd.pid).length === 0, 5_000);
}

function expectPassed(ran: Ran) {
  if (ran.code !== 0) console.error(ran.stderr);
  expect(ran.code).toBe(0);
  return readResult(ran);
}

describe("a real upload through ssh", () => {
  test("passes: sane result, setsid start, one ssh-config, no vagrant ssh, everything removed", async () => {
    const c = newCase();
    const ran = await runScript("run-test", args(c, "--ram", "512", "--file-size", "4M", "--verify"), env(c, { GODEBUG: "madvdontneed=1" }));
    const r = expectPassed(ran);
    expect(r).toMatchObject({ backend: "vagrant", ram_mb: 512, file_size: "4M", http_status: "200", exit_reason: "success", success: true, verified: true });
    // The Go runtime variables as PicoShare's process in the guest got them (its /proc/PID/environ over ssh).
    expect(r.go_runtime_env).toEqual({ GOGC: null, GOMEMLIMIT: null, GODEBUG: "madvdontneed=1", GOMAXPROCS: null });
    expect(r.initial_memory_bytes).toBeGreaterThan(0);
    expect(r.peak_memory_bytes).toBeGreaterThanOrEqual(r.initial_memory_bytes);
    expect(r.memory_samples).toBeGreaterThan(0);
    expect(r.kernel_peak_memory_bytes).toBeNull();
    expect(r.picoshare_peak_rss_bytes).toBeGreaterThan(1 * MiB);
    expect(r.oom_kills).toBe(0);
    // PicoShare's counters, read over ssh with the memory samples; its data folder after the response.
    expect(r.backend_settings.cpu_source).toBe("process ticks");
    expect(r.disk_write_bytes).toBeGreaterThanOrEqual(4 * MiB);
    expect(r.write_amplification).toBeGreaterThan(1);
    expect(r.write_amplification).toBeLessThan(10);
    expect(r.write_syscalls).toBeGreaterThan(4);
    expect(r.read_syscalls).toBeGreaterThan(4);
    expect(r.data_dir_bytes).toBeGreaterThanOrEqual(4 * MiB);
    expect(r.test_counters.read_syscalls).toBeGreaterThan(r.read_syscalls);
    // The requests phase through the forwarded port; the download's own peak RSS is not read here (no reset of the mark).
    expect(r.requests_per_kind).toBe(20);
    for (const v of [r.list_page_seconds, r.info_page_seconds, r.download_first_byte_seconds]) expect(v).toBeGreaterThan(0);
    expect(r.download_peak_rss_bytes).toBeNull();
    expect(r.backend_settings).toMatchObject({
      provider: "libvirt", box: "generic/ubuntu2204", vm_memory_mib: 512, vm_cpus: 1, vm_reused: false,
      start_method: "setsid", ssh_target: `root@127.0.0.1:${sshd.port}`, oom_source: "dmesg",
    });
    expect(r.backend_settings.guest_port).not.toBe(4001);
    expect(r.backend_settings.host_port).toBeGreaterThan(0);
    expect(r.backend_settings.guest_mem_total_bytes % 1024).toBe(0);
    expect(ran.stderr).toContain("PicoShare started in the VM by setsid");
    expect(ran.stderr).toContain("TEST PASSED");
    // PicoShare's own log came back to the host.
    expect(readFileSync(r.log_file, "utf8")).toContain(`listening on ${r.backend_settings.guest_port}`);
    // The vagrant commands: up with the RAM, ssh-config once, destroy at the end; never `vagrant ssh`.
    expect(calls(c)).toEqual(["--version", "plugin list", "status --machine-readable", "up --provider libvirt", "ssh-config", "destroy -f"]);
    expect(callLines(c).find((l) => l.startsWith("up "))).toContain("VM_MEMORY=512 VM_BOX=generic/ubuntu2204");
    // Nothing left: guest folder, host work dir, ssh control folder, ssh sessions, state file, locks.
    expect(guestDirs(c)).toEqual([]);
    expect(readdirSync(c.work)).toEqual([]);
    expect(readdirSync(c.tmp)).toEqual([]);
    expect(readdirSync(join(c.folder, ".vagrant")).filter((n) => n.startsWith("picoshare-perf") && n !== "picoshare-perf-vagrant.log")).toEqual([]);
    await noSshSessions();
  });

  test("--reuse-vm keeps one VM per RAM: wiped and restarted between tests; a fresh-VM run destroys it", async () => {
    const c = newCase();
    const first = expectPassed(await runScript("run-test", args(c, "--ram", "512", "--file-size", "4M", "--reuse-vm"), env(c)));
    expect(calls(c)).toEqual(["--version", "plugin list", "status --machine-readable", "up --provider libvirt", "ssh-config"]);
    const state = JSON.parse(readFileSync(join(c.folder, ".vagrant", "picoshare-perf-state.json"), "utf8"));
    expect(state).toMatchObject({ mode: "reuse", ram_mb: 512, vm_id: first.backend_settings.vm_id });
    const [dir] = guestDirs(c);
    expect(readdirSync(join(c.guest, dir)).sort()).toEqual(["bin", "data", "tmp", "vm-id"]);
    expect(readdirSync(join(c.guest, dir, "data"))).toEqual([]);
    expect(readdirSync(join(c.guest, dir, "tmp"))).toEqual([]);
    await noSshSessions();

    const before = calls(c).length;
    const again = await runScript("run-test", args(c, "--ram", "512", "--file-size", "4M", "--reuse-vm"), env(c));
    const second = expectPassed(again);
    expect(second.backend_settings).toMatchObject({ vm_reused: true, vm_id: first.backend_settings.vm_id });
    expect(calls(c).slice(before)).toEqual(["--version", "plugin list"]);
    expect(again.stderr).toContain("Reusing the VM kept by an earlier --reuse-vm run");
    expect(again.stderr).toContain("PicoShare binary already in the VM");
    expect(second.entry_id).not.toBe(first.entry_id);
    await noSshSessions();

    // Another RAM: that VM goes, a new one comes up with the new VM_MEMORY.
    const other = expectPassed(await runScript("run-test", args(c, "--ram", "256", "--file-size", "4M", "--reuse-vm"), env(c)));
    expect(other.backend_settings.vm_reused).toBe(false);
    expect(callLines(c).slice(-3).map((l) => l.replace(/ VM_BOX=.*$/, ""))).toEqual([
      "destroy -f VM_MEMORY=256", "up --provider libvirt VM_MEMORY=256", "ssh-config VM_MEMORY=256",
    ]);
    expect(guestDirs(c)).toEqual([`picoshare-perf-vm-${other.backend_settings.vm_id}`]);

    // Without --reuse-vm: the kept VM is destroyed first, the test gets its own, nothing stays.
    const fresh = await runScript("run-test", args(c, "--ram", "256", "--file-size", "4M"), env(c));
    expectPassed(fresh);
    expect(fresh.stderr).toMatch(/Destroying the VM left in .*kept by an earlier --reuse-vm run/);
    expect(calls(c).slice(-4)).toEqual(["destroy -f", "up --provider libvirt", "ssh-config", "destroy -f"]);
    expect(guestDirs(c)).toEqual([]);
    expect(existsSync(join(c.folder, ".vagrant", "picoshare-perf-state.json"))).toBe(false);
    await noSshSessions();
    // Several run-tests in a row: about 45 s on an idle machine, more on a busy one.
  }, 180_000);

  test("a matrix with --reuse-vm boots one VM per RAM limit and destroys the last when it ends", async () => {
    const c = newCase();
    const ran = await runScript(
      "run-test-matrix",
      ["--backend", "vagrant", "--reuse-vm", "--memory-limits", "512,256", "--file-sizes", "4M", "--iterations", "2",
        "--test-files", files, "--results-dir", c.results, "--work-dir", c.work, "--picoshare", picoshare],
      env(c),
    );
    if (ran.code !== 0) console.error(ran.stderr);
    expect(ran.code).toBe(0);
    const [dir] = readdirSync(c.results).filter((n) => n.startsWith("matrix-"));
    const results = readdirSync(join(c.results, dir))
      .filter((n) => n.startsWith("result-"))
      .map((n) => JSON.parse(readFileSync(join(c.results, dir, n), "utf8")))
      .sort((a, b) => b.ram_mb - a.ram_mb || a.iteration - b.iteration);
    expect(results.map((r) => [r.ram_mb, r.iteration, r.backend_settings.vm_reused])).toEqual([
      [512, 1, false], [512, 2, true], [256, 1, false], [256, 2, true],
    ]);
    expect(calls(c).filter((l) => l.startsWith("up "))).toHaveLength(2);
    expect(calls(c).at(-1)).toBe("destroy -f");
    expect(ran.stderr).toContain("Destroyed the VM kept by --reuse-vm");
    expect(guestDirs(c)).toEqual([]);
    expect(existsSync(join(c.folder, ".vagrant", "picoshare-perf-state.json"))).toBe(false);
    await noSshSessions();
  }, 120_000);

  test("destroyKeptVm ends a VM kept by --reuse-vm (the end of a matrix)", async () => {
    const c = newCase();
    expectPassed(await runScript("run-test", args(c, "--ram", "512", "--file-size", "4M", "--reuse-vm"), env(c)));
    expect(guestDirs(c)).toHaveLength(1);
    const code = `import { destroyKeptVm } from ${JSON.stringify(join(ROOT, "lib/backends/vagrant/index.ts"))}; console.log(await destroyKeptVm(), await destroyKeptVm());`;
    const proc = await $({ env: env(c), nothrow: true })`${BUN} -e ${code}`;
    expect(proc.stdout.trim()).toBe("true false");
    expect(proc.exitCode).toBe(0);
    expect(calls(c).at(-1)).toBe("destroy -f");
    expect(guestDirs(c)).toEqual([]);
    expect(existsSync(join(c.folder, ".vagrant", "picoshare-perf-state.json"))).toBe(false);
  });

  test("--keep-vm leaves the VM with PicoShare running; the next fresh-VM run stops and destroys it", async () => {
    const c = newCase();
    const ran = await runScript("run-test", args(c, "--ram", "512", "--file-size", "4M", "--keep-vm"), env(c));
    const r = expectPassed(ran);
    expect(calls(c)).not.toContain("destroy -f");
    expect(ran.stderr).toContain("VM kept with PicoShare running in it");
    expect(ran.stderr).toMatch(/Stop it: +cd .* && vagrant destroy -f && rm -f .*picoshare-perf-state\.json/);
    const state = JSON.parse(readFileSync(join(c.folder, ".vagrant", "picoshare-perf-state.json"), "utf8"));
    expect(state).toMatchObject({ mode: "keep", vm_id: r.backend_settings.vm_id });
    const dir = join(c.guest, `picoshare-perf-vm-${r.backend_settings.vm_id}`);
    const pid = Number(readFileSync(join(dir, "picoshare.pid"), "utf8"));
    // Truly detached: it outlived the ssh connection that started it.
    await noSshSessions();
    expect(running(pid)).toBe(true);
    expect(readFileSync(join(dir, "secret"), "utf8").length).toBeGreaterThan(20);
    expect(readdirSync(c.work)).toEqual([]);

    const next = await runScript("run-test", args(c, "--ram", "512", "--file-size", "4M"), env(c));
    expectPassed(next);
    expect(next.stderr).toMatch(/Destroying the VM left in .*kept by an earlier --keep-vm run/);
    expect(running(pid)).toBe(false);
    expect(guestDirs(c)).toEqual([]);
  });

  test("a failing `vagrant up` is destroyed and retried", async () => {
    const c = newCase();
    const ran = await runScript("run-test", args(c, "--ram", "512", "--file-size", "4M"), env(c, { FAKE_VAGRANT_UP_FAILS: "1" }));
    expectPassed(ran);
    expect(ran.stderr).toMatch(/vagrant up: attempt 1 failed .*virDomainCreateWithFlags.*retrying in/);
    expect(calls(c)).toEqual([
      "--version", "plugin list", "status --machine-readable", "up --provider libvirt", "destroy -f", "up --provider libvirt", "ssh-config", "destroy -f",
    ]);
  });

  test("the VM's sshd not answering yet after `vagrant up`: the connection is retried with backoff", async () => {
    const c = newCase();
    // A port where nothing listens for the first 1.5 s, then a relay to the sshd.
    const port = await freePort();
    const sockets = new Set<Socket>();
    const relay = createServer((client) => {
      const upstream = connect(sshd.port, "127.0.0.1");
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("error", () => {});
        s.on("close", () => sockets.delete(s));
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    const opened = Bun.sleep(1500).then(() => new Promise<void>((r) => relay.listen(port, "127.0.0.1", () => r())));
    try {
      const ran = await runScript("run-test", args(c, "--ram", "512", "--file-size", "4M"), env(c, { FAKE_VAGRANT_SSH_PORT: String(port) }));
      const r = expectPassed(ran);
      expect(ran.stderr).toMatch(/ssh to the VM \(root@127\.0\.0\.1:\d+\): attempt 1 failed \(ssh exited with 255: .*Connection refused.*\); retrying in \d+ ms/);
      expect(r.backend_settings.ssh_target).toBe(`root@127.0.0.1:${port}`);
    } finally {
      await opened;
      for (const s of sockets) s.destroy();
      await new Promise((r) => relay.close(r));
    }
  });

  test("PicoShare killed in the VM mid-upload: process_died, SIGKILL, from the detached wrapper's status", async () => {
    const c = newCase();
    const run = startScript("run-test", args(c, "--ram", "512", "--file-size", "256M"), env(c));
    const pid = await waitForUpload(c);
    process.kill(pid, "SIGKILL");
    const ran = await run.done;
    expect(ran.code).toBe(1);
    const r = readResult(ran);
    expect(r.exit_reason).toBe("process_died");
    expect(r.error).toContain("SIGKILL");
    expect(r.oom_kills).toBe(0);
    // Then PicoShare started again in the VM on the same data: the database
    // copied back over scp and checked, the small entry read back whole, and
    // the killed upload's multipart spill left in the guest's TMPDIR.
    if (r.recovery?.error) console.error(ran.stderr);
    expect(r.recovery).toMatchObject({ started: true, integrity_check: "ok", earlier_entry_intact: true, error: null });
    expect(r.recovery.restart_seconds).toBeGreaterThan(0);
    expect(r.recovery.temp_files_left).toBe(1);
    expect(r.recovery.temp_bytes_left).toBeGreaterThan(0);
    expect(r.recovery.temp_bytes_left).toBeLessThan(256 * MiB);
    expect(ran.stderr).toMatch(/Recovery: restart answered in [\d.]+ s, integrity_check ok, earlier entry served whole/);
    expect(guestDirs(c)).toEqual([]);
    expect(calls(c).at(-1)).toBe("destroy -f");
    await noSshSessions();
  });
});

/** A folder with only the tools a run needs before its preflight (bun, go, a shell, the stand-in's coreutils): no ssh, no scp. */
/** A folder of links to the tools a run needs, for a PATH that lacks the others (vagrant, ssh, ...). */
function toolsOnly(name: string, tools: string[]): string {
  const dir = join(root, name);
  if (!existsSync(dir)) {
    mkdirSync(dir);
    for (const tool of ["bun", "go", "bash", "sh", "env", "cat", "mkdir", "date", "sleep", ...tools]) {
      const path = Bun.which(tool);
      if (path) symlinkSync(path, join(dir, tool));
    }
  }
  return dir;
}

/** Waits for the upload to be under way (Go's multipart spill file in the guest's TMPDIR); resolves with PicoShare's pid. */
async function waitForUpload(c: Case): Promise<number> {
  return waitFor(
    "the upload to start in the VM",
    () => {
      const [dir] = guestDirs(c);
      if (!dir) return null;
      const tmp = join(c.guest, dir, "tmp");
      const pidFile = join(c.guest, dir, "picoshare.pid");
      if (!existsSync(tmp) || !existsSync(pidFile)) return null;
      if (!readdirSync(tmp).some((n) => n.startsWith("multipart-"))) return null;
      return Number(readFileSync(pidFile, "utf8").trim()) || null;
    },
    30_000,
  );
}

/** A v1 memory cgroup of this test process's own, where the host allows one (null otherwise). */
function memoryCgroup(name: string, limitBytes: number): string | null {
  try {
    const dir = join(ownMemoryCgroup(), name);
    mkdirSync(dir);
    writeFileSync(join(dir, "memory.limit_in_bytes"), String(limitBytes));
    return dir;
  } catch {
    return null;
  }
}

const probe = memoryCgroup(`vagrant-spec-probe-${process.pid}`, 64 * MiB);
if (probe) rmdirSync(probe);

describe("the OOM killer in the VM", () => {
  // The "VM" has plenty of memory: PicoShare is put into a tiny memory cgroup
  // mid-upload, so that the kernel really kills it.
  test.skipIf(!probe)("PicoShare OOM-killed mid-upload: oom_killed, read from the kernel log by its pid", async () => {
    const c = newCase();
    const cg = memoryCgroup(`vagrant-spec-oom-${process.pid}`, 2 * MiB)!;
    try {
      const run = startScript("run-test", args(c, "--ram", "512", "--file-size", "256M"), env(c));
      // Once the upload is under way, PicoShare's next allocations are charged to the small cgroup.
      const pid = await waitForUpload(c);
      writeFileSync(join(cg, "cgroup.procs"), String(pid));
      const ran = await run.done;
      const r = readResult(ran);
      expect(ran.code).toBe(1);
      expect(r.exit_reason).toBe("oom_killed");
      expect(r.oom_kills).toBe(1);
      expect(r.error).toContain("OOM killer");
      const kernelLog = $.sync`dmesg`.stdout;
      expect(kernelLog).toMatch(new RegExp(`Killed process ${pid} \\(picoshare\\)`));
      expect(guestDirs(c)).toEqual([]);
    } finally {
      await waitFor("the test cgroup to empty", () => readFileSync(join(cg, "cgroup.procs"), "utf8").trim() === "", 10_000).catch(() => {});
      rmdirSync(cg);
    }
  });
});

describe("prerequisites: exit 2, one line, nothing made", () => {
  const cases: [string, (c: Case) => Record<string, string>, RegExp][] = [
    ["no vagrant on PATH", (c) => ({ ...env(c), PATH: toolsOnly("tools-without-vagrant", ["ssh", "scp"]) }), /vagrant is not on PATH: install Vagrant 2\.2 or newer/],
    ["vagrant too old", (c) => env(c, { FAKE_VAGRANT_VERSION: "2.1.5" }), /vagrant 2\.1\.5 .* is too old: the vagrant backend needs Vagrant 2\.2 or newer/],
    ["no vagrant-libvirt plugin", (c) => env(c, { FAKE_VAGRANT_PLUGINS: "vagrant-share (2.0.0, global)" }), /plugin is missing \(`vagrant plugin list` shows no vagrant-libvirt\)/],
    ["an unknown provider", (c) => env(c, { VAGRANT_DEFAULT_PROVIDER: "docker" }), /VAGRANT_DEFAULT_PROVIDER must be one of libvirt, virtualbox/],
    ["an unknown libvirt driver", (c) => env(c, { VM_LIBVIRT_DRIVER: "xen" }), /VM_LIBVIRT_DRIVER must be one of kvm, qemu, got "xen"/],
  ];
  const withHostChecks = (c: Case) => {
    const e: Record<string, string> = env(c);
    delete e.PERF_VAGRANT_SKIP_HOST_CHECKS;
    return e;
  };
  if (!existsSync("/dev/kvm")) {
    cases.push(["no KVM (host checks on)", withHostChecks, /KVM is not available \(\/dev\/kvm is missing\)/]);
  } else {
    test("KVM usable (host checks on): checked and said so", async () => {
      const c = newCase();
      const ran = await runScript("run-test", args(c, "--ram", "512", "--file-size", "4M"), withHostChecks(c));
      expectPassed(ran);
      expect(ran.stderr).toMatch(/Vagrant: vagrant 2\.4\.1, provider libvirt \(vagrant-libvirt 0\.12\.2\), libvirt driver kvm, \/dev\/kvm usable, OpenSSH_/);
    });
  }
  cases.push(["no ssh or scp on PATH", (c) => ({ ...env(c), PATH: `${bin}:${toolsOnly("tools-without-ssh", [])}` }), /ssh is not on PATH: install the OpenSSH client/]);
  for (const [name, makeEnv, message] of cases) {
    test(name, async () => {
      const c = newCase();
      const ran = await runScript("run-test", args(c, "--ram", "512", "--file-size", "4M"), makeEnv(c));
      expect(ran.code).toBe(2);
      expect(ran.stdout).toBe("");
      const errors = errorLines(ran);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(message);
      expect(calls(c).filter((l) => !["--version", "plugin list"].includes(l))).toEqual([]);
      expect(existsSync(c.results) ? readdirSync(c.results) : []).toEqual([]);
      expect(readdirSync(c.work)).toEqual([]);
    });
  }
});

describe("locks", () => {
  test("a second harness on the same Vagrant folder is refused after a bounded wait, naming the first", async () => {
    const c = newCase();
    const first = startScript("run-test", args(c, "--ram", "512", "--file-size", "4M"), env(c, { FAKE_VAGRANT_UP_SECONDS: "4" }));
    await waitFor("the first harness's vagrant up", () => calls(c).includes("up --provider libvirt"), 20_000);
    const t0 = Date.now();
    const second = await runScript("run-test", args(c, "--ram", "512", "--file-size", "4M"), env(c, { PERF_VAGRANT_LOCK_WAIT: "1" }));
    expect(Date.now() - t0).toBeLessThan(4_000);
    expect(second.code).toBe(2);
    const errors = errorLines(second);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(new RegExp(`the Vagrant folder .* is in use by another harness \\(pid ${first.pid}, since `));
    expect(second.stderr).toContain(`is in use by another harness (pid ${first.pid}): waiting up to 1 s`);
    expectPassed(await first.done);
    // The second touched nothing: one up, one destroy, both the first's.
    expect(calls(c).filter((l) => l.startsWith("up") || l.startsWith("destroy"))).toEqual(["up --provider libvirt", "destroy -f"]);
  });

  test("a stale lock (its pid gone) is taken over", async () => {
    const c = newCase();
    mkdirSync(join(c.folder, ".vagrant"));
    const gone = $`true`;
    const dead = gone.pid!;
    await gone;
    writeFileSync(
      join(c.folder, ".vagrant", "picoshare-perf.lock"),
      JSON.stringify({ pid: dead, start: "1", host: hostname(), since: "2026-01-01T00:00:00Z", command: "scripts/run-test.ts" }),
    );
    const ran = await runScript("run-test", args(c, "--ram", "512", "--file-size", "4M"), env(c));
    expectPassed(ran);
    expect(ran.stderr).toContain(`Removing a stale lock on the Vagrant folder ${c.folder} (pid ${dead} is gone or is another process now)`);
    expect(existsSync(join(c.folder, ".vagrant", "picoshare-perf.lock"))).toBe(false);
  });

  test("Vagrant's own lock is waited for, then the test goes on", async () => {
    const c = newCase();
    const flag = join(c.base, "vagrant-locked");
    writeFileSync(flag, "");
    const run = startScript("run-test", args(c, "--ram", "512", "--file-size", "4M"), env(c, { FAKE_VAGRANT_LOCKED: flag, PERF_VAGRANT_LOCK_WAIT: "30" }));
    await waitFor("the refused vagrant up", () => calls(c).filter((l) => l.startsWith("up")).length >= 2, 20_000);
    rmSync(flag);
    const ran = await run.done;
    expectPassed(ran);
    expect(ran.stderr).toMatch(/Vagrant's machine lock in .* is held by another vagrant process: waiting up to 30 s/);
  });

  test("Vagrant's lock held throughout: the test fails within the bound with a clear message", async () => {
    const c = newCase();
    const flag = join(c.base, "vagrant-locked");
    writeFileSync(flag, "");
    const t0 = Date.now();
    const ran = await runScript("run-test", args(c, "--ram", "512", "--file-size", "4M"), env(c, { FAKE_VAGRANT_LOCKED: flag, PERF_VAGRANT_LOCK_WAIT: "2" }));
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(ran.code).toBe(1);
    const r = readResult(ran);
    expect(r.success).toBe(false);
    expect(r.error).toMatch(/Vagrant's own lock on the machine in .* stayed held by another vagrant process for 2 s \("vagrant up" was refused\)/);
    expect(ran.stderr).toMatch(/WARNING: the VM was not destroyed: .*destroy it by hand: cd .* && vagrant destroy -f/);
  });
});

describe("interrupted", () => {
  test("SIGINT mid-upload: PicoShare ended, guest folder removed, VM destroyed, no result", async () => {
    const c = newCase();
    const run = startScript("run-test", args(c, "--ram", "512", "--file-size", "256M"), env(c));
    const pid = await waitForUpload(c);
    const [dir] = guestDirs(c);
    const wrapper = Number(readFileSync(join(c.guest, dir, "wrapper.pid"), "utf8"));
    expect(running(pid)).toBe(true);
    process.kill(run.pid, "SIGINT");
    const ran = await run.done;
    expect(ran.code).toBe(130);
    expect(ran.stderr).toContain("Caught SIGINT");
    expect(running(pid)).toBe(false);
    expect(running(wrapper)).toBe(false);
    expect(guestDirs(c)).toEqual([]);
    expect(calls(c).at(-1)).toBe("destroy -f");
    expect(ran.stdout).toBe("");
    expect(existsSync(c.results) ? readdirSync(c.results).filter((n) => n.endsWith(".json")) : []).toEqual([]);
    expect(readdirSync(c.work)).toEqual([]);
    expect(readdirSync(c.tmp)).toEqual([]);
    expect(existsSync(join(c.folder, ".vagrant", "picoshare-perf-state.json"))).toBe(false);
    await noSshSessions();
  });

  test("SIGINT during `vagrant up`: vagrant is stopped and the VM destroyed at once", async () => {
    const c = newCase();
    const run = startScript("run-test", args(c, "--ram", "512", "--file-size", "4M"), env(c, { FAKE_VAGRANT_UP_SECONDS: "30" }));
    await waitFor("vagrant up", () => calls(c).includes("up --provider libvirt"), 20_000);
    await Bun.sleep(200);
    const t0 = Date.now();
    process.kill(run.pid, "SIGINT");
    const ran = await run.done;
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(ran.code).toBe(130);
    expect(calls(c).slice(-2)).toEqual(["up --provider libvirt", "destroy -f"]);
    expect(existsSync(join(c.folder, ".vagrant", "picoshare-perf-state.json"))).toBe(false);
    expect(readdirSync(c.work)).toEqual([]);
  });
});

test("the stand-in VM's sshd goes, and the host is as these tests found it (no /run/sshd left where there was none)", async () => {
  await sshd.stop();
  expect(hostStateChanges(hostBefore, hostState())).toEqual([]);
});
