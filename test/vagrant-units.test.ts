// The vagrant backend's pieces that need no VM and no sshd: reading
// `vagrant ssh-config`, versions, machine states, the kernel's OOM lines,
// exit statuses, the lock file, and the Vagrantfile itself (under Ruby).
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { $ } from "../lib/core/shell.ts";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseExitLine, startCommand, type StartSpec } from "../lib/backends/vagrant/guest-scripts.ts";
import { vagrantConfig } from "../lib/backends/vagrant/config.ts";
import { oomKilledPids } from "../lib/vm/guest.ts";
import { parseSshConfig, shq } from "../lib/vm/ssh.ts";
import { parseMachineState, parseVagrantVersion, versionAtLeast } from "../lib/backends/vagrant/cli.ts";
import { acquireLock, LockHeldError } from "../lib/core/lock.ts";
import { processStart } from "../lib/core/proc.ts";
import { ROOT } from "../lib/core/paths.ts";

const REAL_SSH_CONFIG = `Host default
  HostName 192.168.121.37
  User vagrant
  Port 22
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile "/home/me/perf test/.vagrant/machines/default/libvirt/private_key"
  IdentitiesOnly yes
  LogLevel FATAL
  PubkeyAcceptedKeyTypes +ssh-rsa
  HostKeyAlgorithms +ssh-rsa

`;

describe("vagrant ssh-config", () => {
  test("host, port and user are read; every option line is kept as printed", () => {
    const t = parseSshConfig(REAL_SSH_CONFIG);
    expect(t).toMatchObject({ hostName: "192.168.121.37", port: 22, user: "vagrant" });
    expect(t.options).toContain('IdentityFile "/home/me/perf test/.vagrant/machines/default/libvirt/private_key"');
    expect(t.options).toHaveLength(11);
  });

  test("the default machine's block is chosen among several; Port defaults to 22", () => {
    const t = parseSshConfig("Host other\n  HostName 10.0.0.1\n  User x\nHost default\n  HostName 10.0.0.2\n  User vagrant\n");
    expect(t).toMatchObject({ hostName: "10.0.0.2", port: 22, user: "vagrant" });
  });

  test("output without a host block or a HostName is refused", () => {
    expect(() => parseSshConfig("")).toThrow(/no "Host" block/);
    expect(() => parseSshConfig("Host default\n  User vagrant\n")).toThrow(/no HostName/);
    expect(() => parseSshConfig("Host default\n  HostName h\n  User u\n  Port 99999\n")).toThrow(/bad Port/);
  });

  test("shq quotes for a POSIX shell", () => {
    const out = spawnSync("sh", ["-c", `printf %s ${shq("it's $HOME `x` \\ \"q\"")}`], { encoding: "utf8" }).stdout;
    expect(out).toBe("it's $HOME `x` \\ \"q\"");
  });
});

describe("vagrant's output", () => {
  test("versions", () => {
    expect(parseVagrantVersion("Vagrant 2.4.1\n")).toEqual([2, 4, 1]);
    expect(parseVagrantVersion("Vagrant 2.2")).toEqual([2, 2, 0]);
    expect(parseVagrantVersion("command not found")).toBeNull();
    expect(versionAtLeast([2, 2, 0], [2, 2, 0])).toBe(true);
    expect(versionAtLeast([2, 10, 0], [2, 2, 0])).toBe(true);
    expect(versionAtLeast([2, 1, 9], [2, 2, 0])).toBe(false);
    expect(versionAtLeast([1, 9, 9], [2, 2, 0])).toBe(false);
    expect(versionAtLeast([3, 0, 0], [2, 2, 0])).toBe(true);
  });

  test("machine state from --machine-readable", () => {
    expect(parseMachineState("1700000000,default,metadata,provider,libvirt\n1700000000,default,state,running\n")).toBe("running");
    expect(parseMachineState("1700000000,default,state,not_created\n")).toBe("not_created");
    expect(parseMachineState("garbage")).toBeNull();
  });
});

describe("the guest's kernel log and exit statuses", () => {
  test("an OOM kill logs two lines: its pid is counted once; other processes are not counted", () => {
    const log = [
      "[ 2510.863426] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/picoshare-perf-1.service,task=picoshare,pid=16782,uid=1000",
      "[ 2510.863458] Out of memory: Killed process 16782 (picoshare) total-vm:1717276kB, anon-rss:409564kB, file-rss:11332kB, shmem-rss:0kB, UID:1000 pgtables:996kB oom_score_adj:0",
      "[ 2600.000000] Memory cgroup out of memory: Killed process 17000 (picoshare) total-vm:1kB",
      "[ 2700.000000] Out of memory: Killed process 18000 (sshd) total-vm:1kB",
      "[ 2800.000000] oom-kill:constraint=CONSTRAINT_NONE,task=picoshare-other,pid=19000,uid=0",
    ].join("\n");
    expect(oomKilledPids(log).sort()).toEqual([16782, 17000]);
    expect(oomKilledPids("")).toEqual([]);
  });

  test("kills stamped before PicoShare started are not counted: a reused pid is not an OOM kill", () => {
    const log = [
      "[  100.500000] Out of memory: Killed process 4242 (picoshare) total-vm:1kB",
      "[  250.000001] Out of memory: Killed process 4343 (picoshare) total-vm:1kB",
      "Out of memory: Killed process 4444 (picoshare) total-vm:1kB",
    ].join("\n");
    expect(oomKilledPids(log, 250).sort()).toEqual([4343, 4444]);
    expect(oomKilledPids(log, null).sort()).toEqual([4242, 4343, 4444]);
  });

  test("exit statuses: a wrapper's wait status and systemd's ExecMainCode/Status", () => {
    expect(parseExitLine("exit-status 0")).toEqual({ code: 0, signal: null });
    expect(parseExitLine("exit-status 1")).toEqual({ code: 1, signal: null });
    expect(parseExitLine("exit-status 137")).toEqual({ code: null, signal: "SIGKILL" });
    expect(parseExitLine("exit-status 143")).toEqual({ code: null, signal: "SIGTERM" });
    expect(parseExitLine("exit-status ")).toEqual({ code: null, signal: null });
    // `systemctl show -p ExecMainCode -p ExecMainStatus UNIT | tr '\n' ' '`
    expect(parseExitLine("systemd ExecMainCode=1 ExecMainStatus=2 ")).toEqual({ code: 2, signal: null });
    expect(parseExitLine("systemd ExecMainStatus=9 ExecMainCode=2 ")).toEqual({ code: null, signal: "SIGKILL" });
    expect(parseExitLine("systemd ExecMainCode=3 ExecMainStatus=6 ")).toEqual({ code: null, signal: "SIGABRT" });
    expect(parseExitLine("systemd  ")).toEqual({ code: null, signal: null });
  });
});

describe("the start script run in the guest", () => {
  const SECRET = "s3cret-never-on-a-command-line";

  function guest(): { dir: string; fakeBin: string; spec: StartSpec } {
    const base = mkdtempSync(join(tmpdir(), "start-spec-"));
    const dir = join(base, "guest");
    mkdirSync(dir);
    const fakeBin = join(base, "bin");
    mkdirSync(fakeBin);
    return { dir: base, fakeBin, spec: { guestDir: dir, sudo: "", uid: 1000, gid: 1000, unit: "picoshare-perf-abc-123", candidatePorts: [] } };
  }

  /** A port something listens on (a listener of this test's own, on 127.0.0.1). */
  function withListener<T>(fn: (port: number) => T): T {
    const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      return fn(server.port);
    } finally {
      server.stop(true);
    }
  }

  test("systemd-run: a transient unit as the ssh user, output to the log, the port a free one, the secret only in a 0600 file", () => {
    const g = guest();
    try {
      writeFileSync(join(g.fakeBin, "systemd-run"), `#!/bin/sh\nprintf '%s\\n' "$@" > ${g.dir}/systemd-run.args\n`);
      writeFileSync(join(g.fakeBin, "systemctl"), "#!/bin/sh\necho 4242\n");
      chmodSync(join(g.fakeBin, "systemd-run"), 0o755);
      chmodSync(join(g.fakeBin, "systemctl"), 0o755);
      const r = withListener((busy) => {
        const cmd = startCommand("systemd-run", { ...g.spec, candidatePorts: [busy, 23456] });
        expect(cmd).not.toContain(SECRET);
        expect($({ nothrow: true }).sync`sh -n -c ${cmd}`.exitCode).toBe(0);
        return $({ input: SECRET, env: { PATH: `${g.fakeBin}:${process.env.PATH}` }, nothrow: true }).sync`sh -c ${cmd}`;
      });
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      // The guest's uptime before the start, to date its kernel log lines by.
      const up = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
      const m = /^port=23456\npid=4242\nuptime=(\d+\.\d+)\n$/.exec(r.stdout);
      expect(m).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(0);
      expect(Number(m![1])).toBeLessThanOrEqual(up);
      const secretFile = join(g.spec.guestDir, "secret");
      expect(readFileSync(secretFile, "utf8")).toBe(SECRET);
      expect(statSync(secretFile).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(g.spec.guestDir, "unit"), "utf8").trim()).toBe("picoshare-perf-abc-123");
      const argv = readFileSync(join(g.dir, "systemd-run.args"), "utf8").trim().split("\n");
      expect(argv).toEqual([
        "--quiet", "--unit=picoshare-perf-abc-123", "--uid=1000", "--gid=1000", `--working-directory=${g.spec.guestDir}`,
        "-p", "RemainAfterExit=yes", "-p", "TimeoutStopSec=5",
        "-p", `StandardOutput=append:${g.spec.guestDir}/picoshare.log`, "-p", `StandardError=append:${g.spec.guestDir}/picoshare.log`,
        "--setenv=PORT=23456", `--setenv=PS_SHARED_SECRET_FILE=${g.spec.guestDir}/secret`, `--setenv=TMPDIR=${g.spec.guestDir}/tmp`,
        `${g.spec.guestDir}/bin/picoshare`, "-db", `${g.spec.guestDir}/data/store.db`,
      ]);
      // Not root: through sudo -n.
      expect(startCommand("systemd-run", { ...g.spec, sudo: "sudo -n ", candidatePorts: [1] })).toMatch(/sudo -n systemd-run .*\nsudo -n systemctl show -p MainPID/);
    } finally {
      rmSync(g.dir, { recursive: true, force: true });
    }
  });

  test("setsid: no free candidate port is a clear failure", () => {
    const g = guest();
    try {
      const r = withListener((busy) => {
        const cmd = startCommand("setsid", { ...g.spec, unit: null, candidatePorts: [busy] });
        expect($({ nothrow: true }).sync`sh -n -c ${cmd}`.exitCode).toBe(0);
        return $({ input: SECRET, nothrow: true }).sync`sh -c ${cmd}`;
      });
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toContain("no free TCP port found in the VM");
    } finally {
      rmSync(g.dir, { recursive: true, force: true });
    }
  });
});

describe("configuration from the environment", () => {
  test("defaults and overrides", () => {
    const d = vagrantConfig({});
    expect(d).toMatchObject({ folder: ROOT, provider: "libvirt", box: "generic/ubuntu2204", guestBase: "/var/tmp", lockWaitMs: 60_000, skipHostChecks: false });
    const o = vagrantConfig({ VAGRANT_CWD: "/tmp/x", VAGRANT_DEFAULT_PROVIDER: "virtualbox", VM_BOX: "debian/bookworm64", PERF_VAGRANT_GUEST_DIR: "/srv/t/", PERF_VAGRANT_LOCK_WAIT: "2.5", PERF_VAGRANT_SKIP_HOST_CHECKS: "1" });
    expect(o).toMatchObject({ folder: "/tmp/x", provider: "virtualbox", box: "debian/bookworm64", guestBase: "/srv/t", lockWaitMs: 2500, skipHostChecks: true });
    expect(() => vagrantConfig({ PERF_VAGRANT_GUEST_DIR: "relative" })).toThrow(/absolute path/);
    expect(() => vagrantConfig({ PERF_VAGRANT_LOCK_WAIT: "soon" })).toThrow(/seconds/);
  });
});

describe("the harness's lock file", () => {
  test("held by a live process: waited for, then refused naming it; re-entrant for its holder", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lock-spec-"));
    try {
      const path = join(dir, "x.lock");
      const sleeper = Bun.spawn(["sleep", "30"]);
      try {
        writeFileSync(path, JSON.stringify({ pid: sleeper.pid, start: processStart(sleeper.pid), host: hostname(), since: "now", command: "sleep 30" }));
        const t0 = Date.now();
        const err = await acquireLock(path, "the thing", 300).catch((e) => e);
        expect(err).toBeInstanceOf(LockHeldError);
        expect(err.message).toContain(`the thing is in use by another harness (pid ${sleeper.pid}, since now: sleep 30)`);
        expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
      } finally {
        sleeper.kill();
        await sleeper.exited;
      }
      // Its holder gone (a zombie counts as gone too): taken over.
      const lock = await acquireLock(path, "the thing", 0);
      expect(JSON.parse(readFileSync(path, "utf8")).pid).toBe(process.pid);
      const again = await acquireLock(path, "the thing", 0);
      again.release();
      expect(JSON.parse(readFileSync(path, "utf8")).pid).toBe(process.pid);
      lock.release();
      expect(() => readFileSync(path)).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a pid reused by another process does not keep a lock held", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lock-spec-"));
    try {
      const path = join(dir, "x.lock");
      writeFileSync(path, JSON.stringify({ pid: process.pid, start: "1", host: hostname(), since: "then", command: "old" }));
      const lock = await acquireLock(path, "the thing", 0);
      expect(JSON.parse(readFileSync(path, "utf8")).start).toBe(processStart(process.pid));
      lock.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the Vagrantfile", () => {
  const vagrantfile = join(ROOT, "Vagrantfile");
  const probe = resolve(import.meta.dir, "fixtures", "fake-vagrant-vagrantfile-probe.rb");
  const evaluate = (env: Record<string, string>) =>
    $({ env: { PATH: process.env.PATH!, ...env }, cleanEnv: true, nothrow: true }).sync`ruby ${probe} ${vagrantfile}`;

  test("parses (ruby -c)", () => {
    const r = $({ nothrow: true }).sync`ruby -c ${vagrantfile}`;
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("Syntax OK");
  });

  test("RAM from VM_MEMORY, one CPU, both providers, no synced folder, the box from VM_BOX", () => {
    const r = evaluate({ VM_MEMORY: "777" });
    expect(r.exitCode).toBe(0);
    const c = JSON.parse(r.stdout);
    expect(c.box).toBe("generic/ubuntu2204");
    expect(c.providers).toEqual({ libvirt: { memory: 777, cpus: 1, driver: "kvm" }, virtualbox: { memory: 777, cpus: 1 } });
    expect(c.synced).toEqual([{ src: ".", dst: "/vagrant", disabled: true }]);
    expect(c.provisions).toHaveLength(1);
    expect(c.provisions[0].inline).toContain("swapoff -a");
    // The provisioning script is valid shell.
    const sh = $({ input: c.provisions[0].inline, nothrow: true }).sync`sh -n`;
    expect(sh.exitCode).toBe(0);
    expect(JSON.parse(evaluate({ VM_MEMORY: "256", VM_BOX: "debian/bookworm64" }).stdout).box).toBe("debian/bookworm64");
    expect(JSON.parse(evaluate({}).stdout).providers.libvirt.memory).toBe(2048);
  });

  test("a VM_MEMORY that is not a number stops Vagrant", () => {
    const r = evaluate({ VM_MEMORY: "lots" });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain("invalid value for Integer");
  });

  test("the libvirt driver from VM_LIBVIRT_DRIVER: qemu (TCG) or kvm, nothing else", () => {
    expect(JSON.parse(evaluate({ VM_LIBVIRT_DRIVER: "qemu" }).stdout).providers.libvirt.driver).toBe("qemu");
    const r = evaluate({ VM_LIBVIRT_DRIVER: "xen" });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain("VM_LIBVIRT_DRIVER must be kvm or qemu, got xen");
  });
});
