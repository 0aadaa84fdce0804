// One qemu VM booted from the test image: a copy-on-write overlay over the
// image's disk, direct kernel boot of the fast pair, user-mode networking
// with ssh and PicoShare forwarded from 127.0.0.1 only (the guest reaches
// nothing: restrict=on), the serial console written to a file, qemu in its
// own process group. KVM when /dev/kvm really runs a guest, TCG otherwise.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, accessSync, constants } from "node:fs";
import { tmpdir } from "node:os";
import { connect } from "node:net";
import { join } from "node:path";
import { onCleanup } from "../core/cleanup.ts";
import { log } from "../core/log.ts";
import { LOOPBACK } from "../core/net.ts";
import * as exec from "../core/exec.ts";
import type { Started } from "../core/exec.ts";
import { $, stopReason } from "../core/shell.ts";
import { vmCacheRoot, type VmImage } from "./image/index.ts";
import type { SshTarget } from "./ssh.ts";

export const QEMU = "qemu-system-x86_64";
export const QEMU_IMG = "qemu-img";
/** The guest port PicoShare listens on. */
export const GUEST_HTTP_PORT = 4001;
/** qboot: a minimal firmware that starts a -kernel boot sooner than SeaBIOS (qemu-system-data). */
const QBOOT = "/usr/share/qemu/qboot.rom";

export type Accel = "kvm" | "tcg";

export interface AccelChoice {
  accel: Accel;
  /** Why, in a sentence (for the log and the result). */
  reason: string;
}

/**
 * `$` for a short qemu or qemu-img command: its group killed at once at the
 * timeout or on a Ctrl-C (e.g. during the KVM probe); resolves whatever the exit.
 */
const quick = (timeoutMs: number) => $({ timeout: timeoutMs, grace: 0, nothrow: true });

export function onPath(cmd: string): boolean {
  return (process.env.PATH ?? "").split(":").some((p) => p && existsSync(join(p, cmd)));
}

export async function qemuVersion(): Promise<string> {
  const r = await quick(10_000)`${QEMU} --version`;
  return /version (\S+)/.exec(r.stdout + r.stderr)?.[1] ?? "unknown";
}

let accelChoice: Promise<AccelChoice> | null = null;

/**
 * KVM when /dev/kvm can be opened and really runs a guest, else TCG.
 * PERF_QEMU_ACCEL=kvm|tcg decides instead. A /dev/kvm that opens but runs no
 * guest (seen under some nested hypervisors) is caught by booting the
 * image's kernel for a few seconds; the answer is kept per host boot.
 */
export function chooseAccel(image: VmImage): Promise<AccelChoice> {
  accelChoice ??= decideAccel(image);
  return accelChoice;
}

async function decideAccel(image: VmImage): Promise<AccelChoice> {
  const forced = process.env.PERF_QEMU_ACCEL;
  if (forced === "kvm" || forced === "tcg") return { accel: forced, reason: `PERF_QEMU_ACCEL=${forced}` };
  if (!existsSync("/dev/kvm")) return { accel: "tcg", reason: "no /dev/kvm on this host" };
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    return { accel: "tcg", reason: "/dev/kvm is not readable and writable by this user (add it to group kvm)" };
  }
  const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  const key = createHash("sha256").update(`${bootId} ${await qemuVersion()} ${image.key}`).digest("hex").slice(0, 16);
  const cacheFile = join(vmCacheRoot(), `kvm-probe-${key}.json`);
  try {
    const cached = JSON.parse(readFileSync(cacheFile, "utf8")) as AccelChoice;
    if (cached.accel === "kvm" || cached.accel === "tcg") return cached;
  } catch {}
  const choice = await probeKvm(image);
  try {
    mkdirSync(vmCacheRoot(), { recursive: true });
    writeFileSync(cacheFile, JSON.stringify(choice));
  } catch {}
  return choice;
}

/** Boots the kernel alone under KVM: a working KVM prints its banner within a second. */
async function probeKvm(image: VmImage): Promise<AccelChoice> {
  const dir = mkdtempSync(join(tmpdir(), "picoshare-perf-kvm-probe-"));
  const forget = onCleanup("remove the KVM probe's folder", () => rmSync(dir, { recursive: true, force: true }));
  const console = join(dir, "console.log");
  try {
    const append = "console=ttyS0 panic=-1 root=/dev/nonexistent";
    const r = await quick(10_000)`${QEMU} -nodefaults -no-user-config -machine pc,accel=kvm -cpu host -m 256 -display none -kernel ${image.fastKernel} -append ${append} -serial ${`file:${console}`} -no-reboot`;
    const text = existsSync(console) ? readFileSync(console, "utf8") : "";
    if (/Linux version/.test(text)) return { accel: "kvm", reason: "/dev/kvm runs a test guest" };
    // Stopped at the timeout: qemu may exit 0 on the SIGTERM that comes first.
    const why =
      stopReason(r) || r.exitCode === null || r.exitCode === 137 ? "a test guest made no progress in 10 s" : `qemu said: ${(r.stdout + r.stderr).trim().split("\n").pop()}`;
    return { accel: "tcg", reason: `/dev/kvm is present but unusable (${why})` };
  } finally {
    forget();
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface VmOptions {
  image: VmImage;
  ramMiB: number;
  accel: Accel;
  /** Private folder for the overlay, console and logs (removed by the caller). */
  dir: string;
  sshPort: number;
  httpPort: number;
  /** Added to the image's fast command line. */
  extraCmdline?: string;
  /** Raw disk images attached read-only after the root disk (/dev/vdb, /dev/vdc, ...). */
  extraDisks?: string[];
}

/** Host files of one VM. */
export interface VmFiles {
  overlay: string;
  console: string;
  /** What the guest writes to its "picoshare" virtio serial port (PicoShare's output). */
  guestLog: string;
  qemuLog: string;
}

export function vmFiles(dir: string): VmFiles {
  return {
    overlay: join(dir, "overlay.qcow2"),
    console: join(dir, "console.log"),
    guestLog: join(dir, "picoshare.log"),
    qemuLog: join(dir, "qemu.log"),
  };
}

/** A copy-on-write overlay over the image's disk: the base is never written to. */
export async function createOverlay(image: VmImage, overlay: string): Promise<void> {
  const r = await quick(30_000)`${QEMU_IMG} create -q -f qcow2 -b ${image.disk} -F ${image.diskFormat} ${overlay}`;
  if (r.exitCode !== 0) throw new Error(`qemu-img create failed: ${(r.stdout + r.stderr).trim()}`);
}

export function qemuArgv(o: VmOptions, files: VmFiles): string[] {
  const kvm = o.accel === "kvm";
  return [
    QEMU,
    "-name", `picoshare-perf-${process.pid}`,
    "-nodefaults", "-no-user-config",
    "-machine", `pc,accel=${o.accel}`,
    "-cpu", kvm ? "host" : "max",
    "-m", String(o.ramMiB),
    "-smp", "1",
    "-display", "none",
    ...(existsSync(QBOOT) ? ["-bios", QBOOT] : []),
    "-kernel", o.image.fastKernel,
    "-initrd", o.image.fastInitrd,
    "-append", o.extraCmdline ? `${o.image.fastCmdline} ${o.extraCmdline}` : o.image.fastCmdline,
    "-drive", `file=${files.overlay},if=virtio,format=qcow2,cache=writeback,discard=unmap`,
    ...(o.extraDisks ?? []).flatMap((d) => ["-drive", `file=${d},if=virtio,format=raw,readonly=on`]),
    "-netdev",
    `user,id=net0,restrict=on,hostfwd=tcp:${LOOPBACK}:${o.sshPort}-:22,hostfwd=tcp:${LOOPBACK}:${o.httpPort}-:${GUEST_HTTP_PORT}`,
    "-device", "virtio-net-pci,netdev=net0",
    "-device", "virtio-rng-pci",
    "-device", "virtio-serial-pci",
    "-chardev", `file,id=pslog,path=${files.guestLog}`,
    "-device", "virtserialport,chardev=pslog,name=picoshare",
    "-serial", `file:${files.console}`,
    "-no-reboot",
  ];
}

/** How the host reaches the image's user over a forwarded ssh port: its own key and host key, nothing else. */
export function imageSshTarget(image: VmImage, port: number): SshTarget {
  return {
    hostName: LOOPBACK,
    port,
    user: image.user,
    options: [
      `HostName ${LOOPBACK}`,
      `Port ${port}`,
      `User ${image.user}`,
      `IdentityFile ${image.sshKey}`,
      "IdentitiesOnly yes",
      `UserKnownHostsFile ${image.knownHosts}`,
      "GlobalKnownHostsFile /dev/null",
      `HostKeyAlias ${image.hostKeyAlias}`,
      "StrictHostKeyChecking yes",
      "ForwardAgent no",
      "ForwardX11 no",
    ],
  };
}

export function startQemu(o: VmOptions, files: VmFiles): Started {
  return exec.start(qemuArgv(o, files), {
    cwd: o.dir,
    stdout: { file: files.qemuLog },
    cleanEnv: true,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  });
}

export async function stopQemu(q: Started): Promise<void> {
  // qemu ends at once on SIGTERM (the guest is powered off, not shut down:
  // its disk is a throwaway overlay).
  await exec.stopGroup(q, 3000);
}

/** Resolves true once something at 127.0.0.1:port greets with an SSH banner. */
export function sshBanner(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: LOOPBACK, port });
    let got = "";
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on("data", (d) => {
      got += d.toString("latin1");
      if (got.startsWith("SSH-")) done(true);
      else if (got.length >= 4) done(false);
    });
    sock.on("error", () => done(false));
    sock.on("close", () => done(got.startsWith("SSH-")));
  });
}

/** The last lines of a file, one string (for error messages). */
export function fileTail(path: string, lines = 6): string {
  try {
    return readFileSync(path, "utf8")
      .replace(/\r/g, "")
      .split("\n")
      .map((l) => l.trimEnd())
      .filter(Boolean)
      .slice(-lines)
      .join(" | ");
  } catch {
    return "";
  }
}

/** Signs in the console that the guest will not come up (kernel panic, init killed). */
export function bootFailureInConsole(text: string): string | null {
  const m = /(Kernel panic[^\n]*|initramfs: [^\n]*)/.exec(text);
  return m ? m[1].trim() : null;
}

export function logAccel(choice: AccelChoice): void {
  log(`qemu: ${choice.accel === "kvm" ? "KVM" : "TCG (software emulation, no KVM)"}: ${choice.reason}`);
}
