// A VM of the project's own image for tests that must run inside a real
// cgroup-v2 systemd host: booted with the qemu backend's machinery (overlay,
// fast kernel pair, ports on 127.0.0.1 only, one shared ssh connection), with
// the project, Bun and PicoShare brought in on a read-only ext4 disk made by
// `mke2fs -d` from a folder (much faster than scp under TCG).
import { chmodSync, copyFileSync, cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../../lib/core/net.ts";
import { BUN, ROOT } from "../../lib/core/paths.ts";
import { stopGroup, type Started } from "../../lib/core/exec.ts";
import { $ } from "../../lib/core/shell.ts";
import { createOverlay, imageSshTarget, sshBanner, startQemu, vmFiles, type Accel } from "../../lib/vm/qemu.ts";
import { SshConnection, shq, type ExecResult } from "../../lib/vm/ssh.ts";
import type { VmImage } from "../../lib/vm/image/index.ts";

/** Where the guest mounts the project disk. */
export const GUEST_MOUNT = "/opt/pperf";

/** What the project disk holds, as guest paths. */
export const GUEST = {
  bun: `${GUEST_MOUNT}/bin/bun`,
  project: `${GUEST_MOUNT}/project`,
  picoshare: `${GUEST_MOUNT}/bin/picoshare`,
  files: `${GUEST_MOUNT}/files`,
  /** test/fixtures/guest-bg-run: a command in the background, its pid, output and exit status in files. */
  bgRun: `${GUEST_MOUNT}/bin/guest-bg-run`,
};

// What a run of the scripts needs; the rest of node_modules (Bun's own
// package, the type checker, the browser driver) stays out.
const LEFT_OUT = new Set(["bun", "@oven", "typescript", "playwright-core", "bun-types", "@types", ".bin", ".cache"]);

/** Makes an ext4 image of the scripts, lib, the runtime node_modules, Bun, PicoShare and the test files. */
export function projectDisk(dir: string, picoshare: string, testFiles: string[]): string {
  const stage = join(dir, "disk");
  const project = join(stage, "project");
  mkdirSync(join(stage, "bin"), { recursive: true });
  mkdirSync(join(stage, "files"), { recursive: true });
  for (const sub of ["lib", "scripts"]) cpSync(join(ROOT, sub), join(project, sub), { recursive: true });
  for (const f of ["package.json", "tsconfig.json", "bunfig.toml"]) copyFileSync(join(ROOT, f), join(project, f));
  cpSync(join(ROOT, "node_modules"), join(project, "node_modules"), {
    recursive: true,
    filter: (src) => !LEFT_OUT.has(src.slice(join(ROOT, "node_modules").length + 1).split("/")[0]),
  });
  copyFileSync(BUN, join(stage, "bin", "bun"));
  copyFileSync(picoshare, join(stage, "bin", "picoshare"));
  copyFileSync(join(ROOT, "test", "fixtures", "guest-bg-run"), join(stage, "bin", "guest-bg-run"));
  for (const f of ["bun", "picoshare", "guest-bg-run"]) chmodSync(join(stage, "bin", f), 0o755);
  for (const f of testFiles) copyFileSync(f, join(stage, "files", f.split("/").pop()!));
  const du = $({ nothrow: true }).sync`du -sb ${stage}`;
  const bytes = Number(du.stdout.split(/\s/)[0]);
  const image = join(dir, "project.ext4");
  // Room for the file system's own metadata (inodes, journal) on top of the files.
  const mib = Math.ceil((bytes * 1.3) / 2 ** 20) + 64;
  const made = $({ nothrow: true }).sync`mke2fs -q -F -t ext4 -L pperf -d ${stage} ${image} ${`${mib}M`}`;
  if (made.exitCode !== 0) throw new Error(`mke2fs -d ${stage}: ${made.stderr.trim()}`);
  return image;
}

export interface Guest {
  ssh: SshConnection;
  /** Seconds from qemu's start to sshd's banner. */
  bootSeconds: number;
  /** Runs a shell command as the image's user; resolves whatever its exit status. */
  sh(command: string, timeoutMs?: number): Promise<ExecResult>;
  /** Runs a shell command as root (sudo). */
  root(command: string, timeoutMs?: number): Promise<ExecResult>;
  /** Powers the VM off. */
  stop(): Promise<void>;
}

/** Boots the image with `disks` attached read-only and the project disk mounted at GUEST_MOUNT. */
export async function bootGuest(o: { image: VmImage; accel: Accel; dir: string; ramMiB: number; disk: string }): Promise<Guest> {
  const files = vmFiles(o.dir);
  await createOverlay(o.image, files.overlay);
  const sshPort = await freePort();
  let httpPort: number;
  do httpPort = await freePort();
  while (httpPort === sshPort);
  const t0 = performance.now();
  const qemu: Started = startQemu(
    { image: o.image, ramMiB: o.ramMiB, accel: o.accel, dir: o.dir, sshPort, httpPort, extraDisks: [o.disk] },
    files,
  );
  const stop = async () => {
    await ssh?.close();
    await stopGroup(qemu, 3000);
  };
  let ssh: SshConnection | null = null;
  try {
    const end = performance.now() + 240_000;
    while (!(await sshBanner(sshPort, 1000))) {
      if (!qemu.running()) throw new Error(`qemu ended during the boot (see ${files.console})`);
      if (performance.now() > end) throw new Error("the guest's sshd did not answer within 240 s");
      await Bun.sleep(200);
    }
    const bootSeconds = (performance.now() - t0) / 1000;
    ssh = SshConnection.create(imageSshTarget(o.image, sshPort));
    await ssh.open({ retries: 5, minDelay: 250 });
    const conn = ssh;
    const sh = (command: string, timeoutMs = 300_000) => conn.exec(command, { timeoutMs });
    const mounted = await sh(`sudo mkdir -p ${GUEST_MOUNT} && sudo mount -o ro /dev/vdb ${GUEST_MOUNT}`, 60_000);
    if (mounted.code !== 0) throw new Error(`mounting the project disk in the guest: ${mounted.stderr.trim()}`);
    return { ssh: conn, bootSeconds, sh, root: (command, timeoutMs) => sh(`sudo sh -c ${shq(command)}`, timeoutMs), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
