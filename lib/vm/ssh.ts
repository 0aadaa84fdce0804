// Plain OpenSSH to a VM, with one shared connection: the master is opened
// once (ControlMaster, a control socket in a private temp folder,
// ControlPersist as a safety net should this process die), and every later
// command, stream, copy and port forward rides on it. This replaces one
// `vagrant ssh` per command (about a second each) with a few milliseconds.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errorMessage } from "../core/errors.ts";
import { shq, start, type ExitInfo } from "../core/exec.ts";
import { processRuns } from "../core/proc.ts";
import { retry, StopRetrying } from "../core/retry.ts";
import { $, stopReason, type ProcessOutput } from "../core/shell.ts";

/** The name the generated config gives the VM. */
export const SSH_ALIAS = "picoshare-vm";

/** Seconds the master stays up with no client once this process is gone (it is closed explicitly otherwise). */
export const CONTROL_PERSIST_SECONDS = 300;

export { shq };

export interface SshTarget {
  hostName: string;
  port: number;
  user: string;
  /** The host block's option lines as Vagrant printed them (without the Host line). */
  options: string[];
}

/**
 * Reads the output of `vagrant ssh-config`: the block of `Host default` (or
 * the first block). Keeps every option line as it is (paths may be quoted).
 */
export function parseSshConfig(text: string, host = "default"): SshTarget {
  const blocks: { names: string[]; lines: string[] }[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^Host\s+(.+)$/i.exec(line);
    if (m) {
      blocks.push({ names: m[1].split(/\s+/), lines: [] });
    } else if (blocks.length > 0) {
      blocks[blocks.length - 1].lines.push(line);
    }
  }
  const block = blocks.find((b) => b.names.includes(host)) ?? blocks[0];
  if (!block) throw new Error(`no "Host" block in the ssh configuration: ${text.trim().slice(0, 200) || "(empty)"}`);
  const get = (key: string) => {
    for (const l of block.lines) {
      const m = /^(\S+)\s*[= ]\s*(.*)$/.exec(l);
      if (m && m[1].toLowerCase() === key.toLowerCase()) return m[2].replace(/^"(.*)"$/, "$1").trim();
    }
    return undefined;
  };
  const hostName = get("HostName");
  const user = get("User");
  const port = Number(get("Port") ?? "22");
  if (!hostName) throw new Error(`the ssh configuration of host ${block.names[0]} has no HostName`);
  if (!user) throw new Error(`the ssh configuration of host ${block.names[0]} has no User`);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`the ssh configuration has a bad Port: ${get("Port")}`);
  return { hostName, port, user, options: block.lines };
}

/** How a command run through ssh (or scp) ended, with its output. */
export interface ExecResult extends ExitInfo {
  stdout: string;
  stderr: string;
}

/** A remote command that failed; `code` 255 means ssh itself could not get through. */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = "RemoteError";
  }
  get connectionLost(): boolean {
    return this.code === 255 || this.code === null;
  }
}

export interface ExecOptions {
  /** Written to the command's stdin (e.g. a secret: never on a command line). */
  input?: string | Uint8Array;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface RemoteStream {
  /** Resolves when the remote command (or the ssh carrying it) ends. */
  done: Promise<ExecResult>;
  /** Ends the stream (the remote side sees its output closed and stops). */
  stop(): Promise<void>;
}

function tail(s: string, n = 400): string {
  const t = s.trim();
  return t.length > n ? `...${t.slice(-n)}` : t;
}

/** `$` for ssh and scp: in this process's group, as typed at a terminal; C locale (its messages are read); resolves whatever the exit. */
function local(opts: ExecOptions = {}) {
  return $({ env: { LC_ALL: "C" }, group: false, nothrow: true, input: opts.input, timeout: opts.timeoutMs, signal: opts.signal });
}

/** Its result, with why the harness stopped it (a timeout, an abort) added to stderr. */
function ended(program: string, r: { code: number | null; signal: string | null; stdout: string; stderr: string }, why: string | null): ExecResult {
  return { code: r.code, signal: r.signal, stdout: r.stdout, stderr: why ? `${r.stderr}${r.stderr ? "\n" : ""}(${program} ${why})` : r.stderr };
}

function endedOf(program: string, out: ProcessOutput): ExecResult {
  return ended(program, { code: out.exitCode, signal: out.signal, stdout: out.stdout, stderr: out.stderr }, stopReason(out));
}

/** One shared ssh connection to a VM, described by the output of `vagrant ssh-config`. */
export class SshConnection {
  readonly configPath: string;
  readonly controlPath: string;
  private masterPid: number | null = null;
  private closed = false;

  private constructor(
    readonly target: SshTarget,
    readonly dir: string,
  ) {
    this.configPath = join(dir, "ssh_config");
    this.controlPath = join(dir, "control");
    // Ours first: ssh takes the first value it reads for an option, so these
    // win over Vagrant's lines (its LogLevel FATAL would hide every error).
    const ours = [
      `ControlPath ${this.controlPath}`,
      "ControlMaster no",
      `ControlPersist ${CONTROL_PERSIST_SECONDS}`,
      "BatchMode yes",
      "ConnectTimeout 15",
      "ConnectionAttempts 1",
      "ServerAliveInterval 5",
      "ServerAliveCountMax 6",
      "ExitOnForwardFailure yes",
      "LogLevel ERROR",
    ];
    const theirs = target.options.filter((l) => !/^(Control\w*|LogLevel|BatchMode)\b/i.test(l));
    writeFileSync(this.configPath, [`Host ${SSH_ALIAS}`, ...ours.map((l) => `  ${l}`), ...theirs.map((l) => `  ${l}`), ""].join("\n"), { mode: 0o600 });
  }

  /** Makes the private folder (a short path: a control socket's path is limited to ~100 bytes). */
  static create(target: SshTarget): SshConnection {
    let base = tmpdir();
    if (base.length > 60) base = "/tmp";
    const dir = mkdtempSync(join(base, "picoshare-perf-ssh-"));
    chmodSync(dir, 0o700);
    return new SshConnection(target, dir);
  }

  /** `user@host:port`, for logs and results. */
  get description(): string {
    return `${this.target.user}@${this.target.hostName}:${this.target.port}`;
  }

  private sshArgs(...rest: string[]): string[] {
    return ["ssh", "-F", this.configPath, ...rest];
  }

  /** Opens the master connection, retrying with backoff while the VM's sshd is not yet answering. */
  async open(opts: { signal?: AbortSignal; retries?: number; minDelay?: number } = {}): Promise<void> {
    await retry(
      `ssh to the VM (${this.description})`,
      async () => {
        if (opts.signal?.aborted) throw new StopRetrying(errorMessage(opts.signal.reason));
        await this.startMaster(opts.signal);
      },
      { retries: opts.retries ?? 6, minDelay: opts.minDelay ?? 1000, maxDelay: 8000, signal: opts.signal },
    );
  }

  private async startMaster(signal?: AbortSignal): Promise<void> {
    if (existsSync(this.controlPath)) {
      const pid = await this.checkMaster();
      if (pid !== null) {
        this.masterPid = pid;
        return;
      }
      // A dead master's socket: ssh would not replace it (it would run without multiplexing).
      rmSync(this.controlPath, { force: true });
    }
    // With ControlPersist the master goes into the background once it is
    // connected and the foreground ssh exits 0. Its stderr goes to a file: a
    // pipe would stay open as long as the master lives.
    const logPath = join(this.dir, "master.log");
    const master = start(["ssh", "-F", this.configPath, "-o", "ControlMaster=yes", "-N", SSH_ALIAS], { stdout: { file: logPath } });
    const onAbort = () => master.child.kill("SIGTERM");
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => master.child.kill("SIGTERM"), 30_000);
    const { code } = await master.exited;
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    if (code !== 0) {
      let text = "";
      try {
        text = readFileSync(logPath, "utf8");
        writeFileSync(logPath, "");
      } catch {}
      throw new RemoteError(`ssh exited with ${code}: ${tail(text, 300) || "no message"}`, code, text);
    }
    this.masterPid = await this.checkMaster();
    if (this.masterPid === null) throw new RemoteError("the ssh master connection did not stay up", 255, "");
  }

  /** The master's pid while it runs, else null. */
  async checkMaster(): Promise<number | null> {
    const r = endedOf("ssh", await local({ timeoutMs: 10_000 })`ssh -F ${this.configPath} -O check ${SSH_ALIAS}`);
    const m = /pid=(\d+)/.exec(r.stderr + r.stdout);
    return r.code === 0 && m ? Number(m[1]) : null;
  }

  /** Reopens the master if it has gone (e.g. the VM's network blinked). */
  async ensureOpen(signal?: AbortSignal): Promise<void> {
    if (this.closed) throw new Error("the ssh connection to the VM is closed");
    if ((await this.checkMaster()) !== null) return;
    await this.open({ signal, retries: 3, minDelay: 500 });
  }

  /** Runs `command` through the remote user's shell; resolves whatever its exit status. */
  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return endedOf("ssh", await local({ timeoutMs: 60_000, ...opts })`ssh -F ${this.configPath} ${SSH_ALIAS} ${command}`);
  }

  /**
   * Runs `command` and resolves with its stdout; throws a RemoteError when it
   * fails. An idempotent command is retried when ssh itself lost the connection.
   */
  async run(command: string, opts: ExecOptions & { what?: string; idempotent?: boolean } = {}): Promise<string> {
    const what = opts.what ?? command.split("\n")[0].slice(0, 60);
    const once = async () => {
      const r = await this.exec(command, opts);
      if (r.code === 0) return r.stdout;
      const err = new RemoteError(`${what}: exit ${r.code ?? r.signal} in the VM: ${tail(r.stderr) || "no message"}`, r.code, r.stderr);
      if (opts.signal?.aborted || !opts.idempotent || !err.connectionLost) throw new StopRetrying(err);
      await this.ensureOpen(opts.signal).catch(() => {});
      throw err;
    };
    // p-retry hands on the error inside a StopRetrying as it is.
    return retry(`ssh: ${what}`, once, { retries: opts.idempotent ? 3 : 0, minDelay: 500, signal: opts.signal });
  }

  /** Runs a long-lived command, handing each line of its stdout to `onLine`. */
  stream(command: string, onLine: (line: string) => void): RemoteStream {
    // Long-lived: started, its stdout read as it comes and not kept.
    const spawned = start(this.sshArgs(SSH_ALIAS, command), { env: { LC_ALL: "C" }, group: false, stdout: "pipe", stderr: "capture" });
    let rest = "";
    spawned.child.stdout!.setEncoding("utf8");
    spawned.child.stdout!.on("data", (chunk: string) => {
      rest += chunk;
      let i: number;
      while ((i = rest.indexOf("\n")) >= 0) {
        const line = rest.slice(0, i);
        rest = rest.slice(i + 1);
        onLine(line);
      }
    });
    let stopped: string | null = null;
    const done = spawned.exited.then((e) => ended("ssh", { ...e, stdout: "", stderr: spawned.stderr() }, stopped));
    return {
      done,
      stop: async () => {
        if (spawned.running()) {
          stopped = "stopped";
          spawned.child.kill("SIGTERM");
          const timer = setTimeout(() => spawned.child.kill("SIGKILL"), 2000);
          await spawned.exited;
          clearTimeout(timer);
        }
        await done;
      },
    };
  }

  /** Copies a host file into the VM (scp over the shared connection). */
  async copy(localPath: string, remotePath: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    const r = endedOf("scp", await local({ timeoutMs: opts.timeoutMs ?? 600_000, signal: opts.signal })`scp -F ${this.configPath} -q -p ${localPath} ${`${SSH_ALIAS}:${remotePath}`}`);
    if (r.code !== 0) throw new RemoteError(`scp ${localPath} to the VM failed (exit ${r.code ?? r.signal}): ${tail(r.stderr) || "no message"}`, r.code, r.stderr);
  }

  /** Copies files from the VM into the host folder `localDir` (scp; `remotePath` may be a glob, expanded in the guest). */
  async fetch(remotePath: string, localDir: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    const r = endedOf("scp", await local({ timeoutMs: opts.timeoutMs ?? 600_000, signal: opts.signal })`scp -F ${this.configPath} -q -p ${`${SSH_ALIAS}:${remotePath}`} ${localDir}`);
    if (r.code !== 0) throw new RemoteError(`scp ${remotePath} from the VM failed (exit ${r.code ?? r.signal}): ${tail(r.stderr) || "no message"}`, r.code, r.stderr);
  }

  /** Forwards 127.0.0.1:hostPort on this host to 127.0.0.1:guestPort in the VM, through the master. */
  async forward(hostPort: number, guestPort: number): Promise<void> {
    const spec = `127.0.0.1:${hostPort}:127.0.0.1:${guestPort}`;
    const r = endedOf("ssh", await local({ timeoutMs: 15_000 })`ssh -F ${this.configPath} -O forward -L ${spec} ${SSH_ALIAS}`);
    if (r.code !== 0) throw new RemoteError(`could not forward ${spec}: ${tail(r.stderr) || `exit ${r.code}`}`, r.code, r.stderr);
  }

  async cancelForward(hostPort: number, guestPort: number): Promise<void> {
    await local({ timeoutMs: 10_000 })`ssh -F ${this.configPath} -O cancel -L ${`127.0.0.1:${hostPort}:127.0.0.1:${guestPort}`} ${SSH_ALIAS}`;
  }

  /** Closes the master (and with it every forward) and removes the private folder. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pid = (await this.checkMaster().catch(() => null)) ?? this.masterPid;
    await local({ timeoutMs: 10_000 })`ssh -F ${this.configPath} -O exit ${SSH_ALIAS}`.catch(() => {});
    if (pid !== null) {
      // The master is a process this harness started: end it by its pid if it lingers.
      for (let i = 0; i < 50 && processRuns(pid); i++) await Bun.sleep(20);
      if (processRuns(pid)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
