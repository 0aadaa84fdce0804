// A reverse proxy in front of PicoShare, as a typical deployment has one:
// Debian's nginx, run by the harness in the foreground on 127.0.0.1 with its
// configuration, logs, pid file and temp folders in a folder the caller gives
// (the test's own), so that nothing of the host's nginx (/etc/nginx, port 80,
// /var/lib/nginx) is read or touched. What it measures: the memory of its
// processes and the disk its request buffering uses.
import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { onCleanup } from "../core/cleanup.ts";
import { UsageError } from "../core/errors.ts";
import { start, stopGroup, type Started } from "../core/exec.ts";
import { $ } from "../core/shell.ts";
import { readText } from "../core/files.ts";
import { log } from "../core/log.ts";
import { LOOPBACK, canConnect, freePort } from "../core/net.ts";
import { parentPid, processRuns, vmHwmBytes } from "../core/proc.ts";

export const PROXIES = ["nginx"] as const;
export type ProxyKind = (typeof PROXIES)[number];

/** Debian's nginx (package nginx): built with the proxy module. */
export const NGINX = "/usr/sbin/nginx";

type ValueKind = "flag" | "time" | "size" | "offset";

/** The directives --proxy-settings may set, and what kind of value each takes. */
const SETTABLE: Record<string, ValueKind> = {
  proxy_request_buffering: "flag",
  proxy_buffering: "flag",
  client_max_body_size: "offset",
  client_body_buffer_size: "size",
  proxy_connect_timeout: "time",
  proxy_send_timeout: "time",
  proxy_read_timeout: "time",
  client_body_timeout: "time",
  send_timeout: "time",
};

export const PROXY_SETTING_NAMES: readonly string[] = Object.keys(SETTABLE);

/**
 * What the proxy runs with unless overridden: nginx's own defaults, written
 * out so that the configuration and the result say them, except
 * client_max_body_size, whose default (1m) would refuse every test file with
 * a 413; a deployment that takes uploads of any size turns the check off (0).
 */
export const PROXY_DEFAULTS: Readonly<Record<string, string>> = Object.freeze({
  proxy_request_buffering: "on",
  proxy_buffering: "on",
  client_max_body_size: "0",
  // Two memory pages: nginx's default with 4 KiB pages (x86-64).
  client_body_buffer_size: "8k",
  proxy_connect_timeout: "60s",
  proxy_send_timeout: "60s",
  proxy_read_timeout: "60s",
  client_body_timeout: "60s",
  send_timeout: "60s",
});

// Forms nginx takes for each kind: on/off; a buffer size (k/m); a file
// offset (k/m/g: client_max_body_size); a time, possibly
// compound ("1m30s"). Checked here so a typo is a usage error, not a failed start.
const VALUE_FORMS: Record<ValueKind, { re: RegExp; example: string }> = {
  flag: { re: /^(on|off)$/, example: "on or off" },
  size: { re: /^\d+[kKmM]?$/, example: "a size such as 16k or 1m" },
  offset: { re: /^\d+[kKmMgG]?$/, example: "a size such as 10g, 512m or 0 (no limit)" },
  time: { re: /^(\d+(ms|s|m|h|d|w|M|y)?)+$/, example: "a time such as 300s, 5m or 1m30s" },
};

/** Checks one directive and its value; the error names the problem and the fix. */
function checkSetting(name: string, value: string): void {
  const kind = SETTABLE[name];
  if (!kind) {
    throw new UsageError(`--proxy-settings ${name}: not a directive the harness sets; use one of ${PROXY_SETTING_NAMES.join(", ")}`);
  }
  // The general form first: nothing that could end the directive or open a block reaches the file.
  const form = VALUE_FORMS[kind];
  if (!/^[A-Za-z0-9._]+$/.test(value) || !form.re.test(value)) {
    throw new UsageError(`--proxy-settings ${name}=${value}: the value must be ${form.example}`);
  }
}

/** NAME=VALUE of --proxy-settings, checked against the allow-list. */
export function parseProxySetting(text: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0) {
    throw new UsageError(`--proxy-settings ${text}: expected NAME=VALUE, e.g. proxy_read_timeout=300s`);
  }
  const name = text.slice(0, eq).trim();
  const value = text.slice(eq + 1).trim();
  checkSetting(name, value);
  return [name, value];
}

/** A string as an nginx configuration token: quoted, so spaces or ';' in a path stay part of it. */
function token(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Where nginx buffers request bodies, inside the proxy's folder. */
export function bodyTempDir(dir: string): string {
  return join(dir, "client_body_temp");
}

export function nginxConfig(o: { listenPort: number; upstream: string; dir: string; settings: Record<string, string> }): string {
  if (!/^http:\/\/[A-Za-z0-9.:[\]-]+(\/[A-Za-z0-9._~\/-]*)?$/.test(o.upstream)) {
    throw new Error(`proxy upstream ${o.upstream}: expected http://HOST:PORT`);
  }
  if (!Number.isInteger(o.listenPort) || o.listenPort < 1 || o.listenPort > 65535) {
    throw new Error(`proxy port ${o.listenPort}: expected 1-65535`);
  }
  const settings = { ...PROXY_DEFAULTS, ...o.settings };
  for (const [name, value] of Object.entries(settings)) checkSetting(name, value);
  const d = (name: string) => token(join(o.dir, name));
  return [
    "# Written by the perf harness for one test; run as nginx -p DIR -c DIR/nginx.conf.",
    // In the foreground: the harness's start() owns it and stops its process group.
    "daemon off;",
    "master_process on;",
    "worker_processes 1;",
    // As root, workers would otherwise run as nobody, who cannot enter the
    // caller's 0700 folder to write the body temp files (every buffered upload a 500).
    ...(process.getuid?.() === 0 ? ["user root;"] : []),
    `pid ${d("nginx.pid")};`,
    `lock_file ${d("nginx.lock")};`,
    // warn: also the "buffered to a temporary file" lines, which show the buffering happened.
    `error_log ${d("error.log")} warn;`,
    "events {",
    "  worker_connections 1024;",
    "}",
    "http {",
    "  access_log off;",
    // Every temp path here: the compiled-in ones are /var/lib/nginx/*, the host's.
    `  client_body_temp_path ${token(bodyTempDir(o.dir))};`,
    `  proxy_temp_path ${d("proxy_temp")};`,
    `  fastcgi_temp_path ${d("fastcgi_temp")};`,
    `  uwsgi_temp_path ${d("uwsgi_temp")};`,
    `  scgi_temp_path ${d("scgi_temp")};`,
    ...Object.entries(settings).map(([name, value]) => `  ${name} ${value};`),
    "  server {",
    `    listen ${LOOPBACK}:${o.listenPort};`,
    "    server_name _;",
    "    location / {",
    `      proxy_pass ${o.upstream};`,
    "      proxy_http_version 1.1;",
    // Host as the client sent it (with the port): links PicoShare makes point back through the proxy.
    "      proxy_set_header Host $http_host;",
    "      proxy_set_header X-Real-IP $remote_addr;",
    "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    // A deployment ends TLS at the proxy and says so; PicoShare redirects a
    // request forwarded as plain http to https. Plain http on loopback here,
    // as if after TLS: the upload's cost is PicoShare's and the proxy's, not a cipher's.
    "      proxy_set_header X-Forwarded-Proto https;",
    "    }",
    "  }",
    "}",
    "",
  ].join("\n");
}

export interface ProxyFacts {
  proxy: ProxyKind;
  version: string;
  /** Every directive PROXY_DEFAULTS names, as the proxy ran with it. */
  settings: Record<string, string>;
  /** The highest sum over master and workers of VmHWM seen by sample(); null when never sampled. */
  peak_rss_bytes: number | null;
  /** The highest total size of the request-body temp files seen by sample(): the request buffering's disk use. */
  body_temp_peak_bytes: number;
}

export interface RunningProxy {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** The master's pid. */
  readonly pid: number;
  /** nginx's error log. */
  readonly logPath: string;
  /** The master and its workers now. */
  pids(): number[];
  /** Cheap (a few /proc reads): the processes' VmHWM and the body temp files' size. */
  sample(): void;
  facts(): ProxyFacts;
  /** Idempotent; stops nginx by its process group and leaves the caller's folder as it is. */
  stop(): Promise<void>;
}

/** Refuses (exit 2) when the proxy's program is missing. */
export function proxyPreflight(kind: ProxyKind): void {
  if (kind !== "nginx") throw new UsageError(`--proxy ${kind}: use one of ${PROXIES.join(", ")}`);
  if (!existsSync(NGINX)) throw new UsageError(`--proxy nginx needs ${NGINX}, which is missing: apt-get install nginx`);
}

/** nginx's version ("1.22.1"), from `nginx -v` (which prints to stderr). */
export async function nginxVersion(): Promise<string> {
  const r = await $({ timeout: 10_000, nothrow: true })`${NGINX} -v`;
  const m = /nginx\/(\S+)/.exec(r.stderr + r.stdout);
  if (!m) throw new Error(`${NGINX} -v said nothing of a version: ${(r.stderr + r.stdout).trim()}`);
  return m[1];
}

/** Children of `pid`: the kernel's list when it keeps one, else a walk of /proc. */
function childPids(pid: number): number[] {
  const list = `/proc/${pid}/task/${pid}/children`;
  if (existsSync(list)) {
    return readText(list)
      .split(" ")
      .filter((s) => s.trim() !== "")
      .map(Number);
  }
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (/^\d+$/.test(name) && parentPid(Number(name)) === pid) out.push(Number(name));
  }
  return out;
}

/**
 * Bytes of the body temp files the processes hold. nginx unlinks a request
 * body's temp file as soon as it has made it (unless client_body_in_file_only),
 * so the folder looks empty: the files are found by their descriptors. Files
 * still in the folder count too; each inode once.
 */
function bodyTempBytes(pids: number[], folder: string): number {
  const seen = new Map<string, number>();
  const prefix = `${folder}/`;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone meanwhile
    }
    for (const fd of fds) {
      const path = `/proc/${pid}/fd/${fd}`;
      try {
        if (!readlinkSync(path).startsWith(prefix)) continue;
        const st = statSync(path);
        seen.set(`${st.dev}:${st.ino}`, st.size);
      } catch {
        // closed meanwhile
      }
    }
  }
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      try {
        const st = lstatSync(join(dir, name));
        if (st.isDirectory()) walk(join(dir, name));
        else if (st.isFile()) seen.set(`${st.dev}:${st.ino}`, st.size);
      } catch {
        // removed meanwhile
      }
    }
  };
  walk(folder);
  let total = 0;
  for (const size of seen.values()) total += size;
  return total;
}

function tail(text: string, lines = 20): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

const START_DEADLINE_MS = 10_000;

/** nginx could not bind the port it was given. */
class PortTaken extends Error {
  constructor(
    readonly port: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Starts the proxy in `dir` (made when missing) in front of `upstream`
 * (http://127.0.0.1:PORT) and waits until it accepts connections; throws with
 * the error log's tail when it does not. An abort of `signal` stops it.
 */
export async function startProxy(
  kind: ProxyKind,
  o: { upstream: string; dir: string; settings?: Record<string, string>; signal?: AbortSignal },
): Promise<RunningProxy> {
  proxyPreflight(kind);
  o.signal?.throwIfAborted();
  const settings = { ...PROXY_DEFAULTS, ...o.settings };
  const version = await nginxVersion();
  // A port freePort() gave can be taken by someone else before nginx binds it: a new one then.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNginx({ ...o, settings, version });
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt >= 3) throw err;
      log(`nginx: port ${err.port} was taken meanwhile; trying another`);
    }
  }
}

async function startNginx(o: {
  upstream: string;
  dir: string;
  settings: Record<string, string>;
  version: string;
  signal?: AbortSignal;
}): Promise<RunningProxy> {
  const port = await freePort();
  const logPath = join(o.dir, "error.log");
  const confPath = join(o.dir, "nginx.conf");
  const bodyTemp = bodyTempDir(o.dir);
  // nginx makes each temp folder itself, but not the folder it is in.
  mkdirSync(o.dir, { recursive: true });
  writeFileSync(confPath, nginxConfig({ listenPort: port, upstream: o.upstream, dir: o.dir, settings: o.settings }), { mode: 0o600 });
  const logStart = existsSync(logPath) ? readText(logPath).length : 0;
  // stderr kept: its startup complaints are in the error log too (-e), but not its exec failure.
  const child: Started = start([NGINX, "-p", o.dir, "-c", confPath, "-e", logPath], { stdout: "ignore", stderr: "capture" });
  const master = child.pid;

  let workers: number[] = [];
  let peakRss: number | null = null;
  let bodyPeak = 0;
  let stopping: Promise<void> | null = null;

  const pids = (): number[] => {
    if (!child.running()) return [];
    // The worker list changes only when a worker ends (it is then restarted): /proc is walked again then.
    if (workers.length === 0 || !workers.every((p) => processRuns(p))) workers = childPids(master);
    return [master, ...workers];
  };
  const sample = () => {
    const now = pids();
    if (now.length === 0) return;
    let rss = 0;
    let read = false;
    for (const p of now) {
      const hwm = vmHwmBytes(readText(`/proc/${p}/status`));
      if (hwm !== null) {
        rss += hwm;
        read = true;
      }
    }
    // VmHWM only grows while a process lives; a restarted worker's replaces its predecessor's.
    if (read) peakRss = Math.max(peakRss ?? 0, rss);
    bodyPeak = Math.max(bodyPeak, bodyTempBytes(now, bodyTemp));
  };
  const onAbort = () => void stop();
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      o.signal?.removeEventListener("abort", onAbort);
      forget();
      if (child.running()) sample(); // the last reading before it goes
      await stopGroup(child, 3000);
    })();
    return stopping;
  };
  const forget = onCleanup("stop nginx", () => stop());
  o.signal?.addEventListener("abort", onAbort, { once: true });

  const deadline = Date.now() + START_DEADLINE_MS;
  while (!(await canConnect(port))) {
    const failed = !child.running() || Date.now() > deadline || o.signal?.aborted;
    if (failed) {
      const why = o.signal?.aborted ? "aborted" : child.running() ? `not listening after ${START_DEADLINE_MS / 1000} s` : "exited";
      await stop();
      const said = tail(readText(logPath).slice(logStart)) || tail(child.stderr()) || "(nothing in its log)";
      const message = `nginx did not start on ${LOOPBACK}:${port} (${why}); ${logPath}:\n${said}`;
      if (/Address already in use/.test(said)) throw new PortTaken(port, message);
      throw new Error(message);
    }
    await Bun.sleep(20);
  }
  sample();
  return {
    url: `http://${LOOPBACK}:${port}`,
    pid: master,
    logPath,
    pids,
    sample,
    facts: (): ProxyFacts => {
      if (child.running()) sample();
      return { proxy: "nginx", version: o.version, settings: { ...o.settings }, peak_rss_bytes: peakRss, body_temp_peak_bytes: bodyPeak };
    },
    stop,
  };
}
