// The reverse proxy (--proxy nginx): Debian's real nginx in front of a small
// upstream on 127.0.0.1 made here with Bun.serve, standing in for PicoShare.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "bun";
import { UsageError } from "../lib/core/errors.ts";
import { readText } from "../lib/core/files.ts";
import { MiB } from "../lib/core/sizes.ts";
import { parentPid, peakRss, processRuns } from "../lib/core/proc.ts";
import { NGINX, PROXY_DEFAULTS, nginxConfig, parseProxySetting, startProxy, type RunningProxy } from "../lib/upload/proxy.ts";

setDefaultTimeout(30_000);

let root: string;
let upstream: Server<undefined>;
const proxies: RunningProxy[] = [];

/** What the upstream saw of the last request to /count. */
let seen: { bytes: number; sha256: string; host: string | null; forwardedFor: string | null } | null = null;

beforeAll(() => {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} is missing: apt-get install -y nginx`);
  root = mkdtempSync(join(tmpdir(), "proxy-spec-"));
  upstream = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 30,
    async fetch(req) {
      const url = new URL(req.url);
      // A slow upstream: it waits before it reads the body (as PicoShare would while busy).
      await Bun.sleep(Number(url.searchParams.get("wait") ?? 0));
      const body = new Uint8Array(await req.arrayBuffer());
      seen = {
        bytes: body.byteLength,
        sha256: createHash("sha256").update(body).digest("hex"),
        host: req.headers.get("host"),
        forwardedFor: req.headers.get("x-forwarded-for"),
      };
      return Response.json({ bytes: body.byteLength });
    },
  });
});

afterAll(async () => {
  for (const p of proxies) await p.stop();
  upstream?.stop(true);
  if (root) rmSync(root, { recursive: true, force: true });
});

/** A proxy of its own for one test, in a fresh folder (mode 0700, root's, as mkdtemp makes it). */
async function proxy(settings: Record<string, string> = {}): Promise<RunningProxy> {
  const dir = mkdtempSync(join(root, "nginx-"));
  const p = await startProxy("nginx", { upstream: `http://127.0.0.1:${upstream.port}`, dir, settings });
  proxies.push(p);
  return p;
}

/** Random bytes (getRandomValues fills at most 64 KiB a call). */
function randomBody(bytes: number): Uint8Array {
  const b = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 65536) crypto.getRandomValues(b.subarray(at, Math.min(bytes, at + 65536)));
  return b;
}

/** Pids of every process in process group `pgid`, from /proc. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readText(`/proc/${name}/stat`);
    if (stat && Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) === pgid && processRuns(Number(name))) out.push(Number(name));
  }
  return out;
}

describe("through the proxy", () => {
  test("a POST of a few MiB arrives whole, with the Host and X-Forwarded-For a deployment passes, and its answer comes back", async () => {
    const p = await proxy();
    const body = randomBody(5 * MiB + 123);
    seen = null;
    const res = await fetch(`${p.url}/count`, { method: "POST", body });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ bytes: body.byteLength });
    expect(seen!.bytes).toBe(body.byteLength);
    expect(seen!.sha256).toBe(createHash("sha256").update(body).digest("hex"));
    expect(seen!.host).toBe(new URL(p.url).host);
    expect(seen!.forwardedFor).toBe("127.0.0.1");
  });

  test("request buffering: a body larger than client_body_buffer_size is on disk while the upstream has not read it", async () => {
    const p = await proxy();
    expect(p.facts().body_temp_peak_bytes).toBe(0);
    const body = randomBody(4 * MiB);
    const timer = setInterval(() => p.sample(), 50);
    try {
      // nginx reads the whole body into its temp file before it passes the request on;
      // the upstream's 500 ms wait keeps the file there across several samples.
      const res = await fetch(`${p.url}/count?wait=500`, { method: "POST", body });
      expect(res.status).toBe(200);
    } finally {
      clearInterval(timer);
    }
    expect(p.facts().body_temp_peak_bytes).toBe(body.byteLength);
    expect(readText(p.logPath)).toContain("a client request body is buffered to a temporary file");
  });

  test("a body within client_body_buffer_size stays in memory: no disk use", async () => {
    const p = await proxy();
    const timer = setInterval(() => p.sample(), 50);
    try {
      const res = await fetch(`${p.url}/count?wait=300`, { method: "POST", body: randomBody(4096) });
      expect(res.status).toBe(200);
    } finally {
      clearInterval(timer);
    }
    expect(p.facts().body_temp_peak_bytes).toBe(0);
  });

  test("peak RSS: the master's and its worker's together", async () => {
    const p = await proxy();
    const pids = p.pids();
    expect(pids).toHaveLength(2); // worker_processes 1
    expect(pids[0]).toBe(p.pid);
    expect(parentPid(pids[1])).toBe(p.pid);
    const masterOnly = peakRss(p.pid)!;
    const peak = p.facts().peak_rss_bytes;
    expect(typeof peak).toBe("number");
    expect(peak!).toBeGreaterThan(masterOnly);
  });

  test("an upstream slower than proxy_read_timeout: HTTP 504 after the timeout, and the setting recorded", async () => {
    const p = await proxy({ proxy_read_timeout: "1s" });
    const t0 = performance.now();
    const res = await fetch(`${p.url}/count?wait=3000`, { method: "POST", body: "x" });
    const seconds = (performance.now() - t0) / 1000;
    expect(res.status).toBe(504);
    expect(seconds).toBeGreaterThanOrEqual(0.9);
    expect(seconds).toBeLessThan(2.9);
    expect(p.facts().settings).toEqual({ ...PROXY_DEFAULTS, proxy_read_timeout: "1s" });
    expect(readText(p.logPath)).toContain("upstream timed out");
  });
});

describe("stop()", () => {
  test("ends the master and its workers, is safe twice, and leaves the folder's files", async () => {
    const p = await proxy();
    const pids = p.pids();
    expect(pids.length).toBeGreaterThanOrEqual(2);
    expect(groupMembers(p.pid).sort()).toEqual([...pids].sort());
    await p.stop();
    await p.stop();
    for (const pid of pids) expect(processRuns(pid)).toBe(false);
    expect(groupMembers(p.pid)).toEqual([]);
    expect(p.pids()).toEqual([]);
    expect(existsSync(p.logPath)).toBe(true);
    expect(p.facts().peak_rss_bytes).toBeGreaterThan(0); // kept after the stop
  });
});

describe("a proxy that cannot start", () => {
  test("throws with nginx's own complaint from its error log, and leaves no process", async () => {
    const dir = mkdtempSync(join(root, "bad-"));
    // Of the accepted form, but more than nginx can hold: nginx itself refuses it.
    const settings = { client_max_body_size: "99999999999999999999999g" };
    let err: unknown = null;
    try {
      proxies.push(await startProxy("nginx", { upstream: `http://127.0.0.1:${upstream.port}`, dir, settings }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/nginx did not start[\s\S]*"client_max_body_size" directive invalid value/);
    const conf = join(dir, "nginx.conf");
    const left = readdirSync("/proc").filter((n) => /^\d+$/.test(n) && readText(`/proc/${n}/cmdline`).includes(conf));
    expect(left).toEqual([]);
  });
});

describe("parseProxySetting", () => {
  function usageError(text: string): UsageError {
    try {
      parseProxySetting(text);
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      expect((e as UsageError).exitCode).toBe(2);
      expect((e as UsageError).message).not.toContain("\n");
      return e as UsageError;
    }
    throw new Error(`parseProxySetting accepted ${text}`);
  }

  test("NAME=VALUE of the allow-list", () => {
    expect(parseProxySetting("proxy_read_timeout=300s")).toEqual(["proxy_read_timeout", "300s"]);
    expect(parseProxySetting("proxy_request_buffering=off")).toEqual(["proxy_request_buffering", "off"]);
    expect(parseProxySetting("client_max_body_size=10g")).toEqual(["client_max_body_size", "10g"]);
    expect(parseProxySetting("client_body_timeout=1m30s")).toEqual(["client_body_timeout", "1m30s"]);
  });

  test("an unknown directive: named, with the ones that may be set", () => {
    const e = usageError("worker_processes=4");
    expect(e.message).toContain("worker_processes");
    expect(e.message).toContain("use one of");
    expect(e.message).toContain("proxy_read_timeout");
  });

  test("a bad value: named, with the form it must have", () => {
    expect(usageError("proxy_read_timeout=5s;user").message).toMatch(/proxy_read_timeout=5s;user: the value must be a time such as/);
    expect(usageError("proxy_buffering=maybe").message).toContain("must be on or off");
    expect(usageError("client_body_buffer_size=1g").message).toContain("must be a size such as");
    expect(usageError("proxy_read_timeout=").message).toContain("must be a time");
  });

  test("no '=': the form to use", () => {
    expect(usageError("proxy_read_timeout").message).toContain("expected NAME=VALUE");
  });
});

describe("nginxConfig", () => {
  const conf = (settings: Record<string, string>) =>
    nginxConfig({ listenPort: 8081, upstream: "http://127.0.0.1:9000", dir: "/x/my dir", settings });

  test("listens on 127.0.0.1 only, keeps every temp path in its folder, and writes the settings over the defaults", () => {
    const text = conf({ proxy_read_timeout: "5m" });
    expect(text.match(/^\s*listen .*$/gm)).toEqual(["    listen 127.0.0.1:8081;"]);
    for (const d of ["client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path", "pid", "error_log"]) {
      expect(text).toMatch(new RegExp(`^\\s*${d} "/x/my dir/`, "m"));
    }
    expect(text).toContain("  proxy_read_timeout 5m;");
    expect(text).toContain("  proxy_request_buffering on;");
    expect(text).not.toContain("proxy_read_timeout 60s");
  });

  test("refuses a setting that did not come through parseProxySetting's checks", () => {
    expect(() => conf({ proxy_read_timeout: "1s; user nobody" })).toThrow(UsageError);
    expect(() => conf({ worker_processes: "4" })).toThrow(UsageError);
  });
});
