#!/usr/bin/env bun
// Benchmarks the harness's upload client against curl: the same file to the
// same PicoShare, in one invocation, alternating which goes first.
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { positiveInt } from "../lib/core/cli.ts";
import { FLAG } from "../lib/core/flags.ts";
import { HELP_FLAG, flagsOf, numberFlag, parseFlags, switchFlag, usageText, withDefault, type Flag } from "../lib/core/flag-kit.ts";
import { runMain, die } from "../lib/core/main.ts";
import { log } from "../lib/core/log.ts";
import { interruptSignal, onCleanup } from "../lib/core/cleanup.ts";
import { toMiB, formatBytes } from "../lib/core/sizes.ts";
import { BUN } from "../lib/core/paths.ts";
import { requireTestFile } from "../lib/upload/testfiles.ts";
import { defaultWorkDir } from "../lib/core/files.ts";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { localBackend } from "../lib/backends/local.ts";
import { login, waitUntilReady } from "../lib/upload/session.ts";
import { uploadFile } from "../lib/upload/api.ts";
import { $ } from "../lib/core/shell.ts";

const FILE_SIZE = withDefault(FLAG.fileSize, "100M");
const RAM = withDefault(FLAG.ram, "2048", "2048");
const ROUNDS = numberFlag("rounds", positiveInt, { value: "N", example: "5", default: "5", help: "Uploads per client" });
const CLIENT = switchFlag("client",
  "The harness's side of one round: --client URL FILE uploads FILE to URL, the session cookie in PERF_COOKIE");
const GROUPS: Array<[string, Flag<any>[]]> = [
  ["Options:", [FILE_SIZE, ROUNDS, RAM, FLAG.testFiles, FLAG.picoshare, HELP_FLAG]],
  ["Internal:", [CLIENT]],
];

const USAGE = usageText(
  `Usage: bun scripts/bench-upload.ts [OPTIONS]

Uploads the same test file to one PicoShare (local backend) with the
harness's own streaming client and with \`curl -F file=@...\`, alternating
which goes first, and prints the median upload time of each, their ratio
(harness / curl; 1.00 means as fast as curl) and each client's peak RSS.
Each upload runs in its own process so that both RSS figures mean the same.
`,
  GROUPS,
  `Examples:
  bun scripts/bench-upload.ts
  bun scripts/bench-upload.ts --file-size 1G --rounds 3
`,
);

interface Round {
  seconds: number;
  maxRssBytes: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// A child's peak RSS as GNU time reports it. (The rusage of a child spawned
// straight from Bun starts from Bun's own high-water mark, since the mark
// survives fork and exec; time's children start from time's small one.)
const rssFile = join(mkdtempSync(join(tmpdir(), "bench-upload-")), "rss");
onCleanup("remove the RSS file", () => rmSync(dirname(rssFile), { recursive: true, force: true }));

async function measured(argv: string[], env?: Record<string, string>): Promise<{ out: string; ok: boolean; maxRssBytes: number }> {
  const r = await $({ env, nothrow: true })`/usr/bin/time -f %M -o ${rssFile} ${argv}`;
  process.stderr.write(r.stderr);
  const out = r.stdout;
  const ok = r.exitCode === 0;
  return { out, ok, maxRssBytes: Number(readFileSync(rssFile, "utf8").trim().split("\n").pop()) * 1024 };
}

/** One harness upload in a child process; it reports its own upload time. */
async function harnessRound(url: string, cookie: string, file: string): Promise<Round> {
  const r = await measured([BUN, import.meta.path, "--client", url, file], { PERF_COOKIE: cookie });
  if (!r.ok) die(`harness upload failed: ${r.out}`);
  return { seconds: JSON.parse(r.out).seconds, maxRssBytes: r.maxRssBytes };
}

async function curlRound(url: string, cookie: string, file: string): Promise<Round> {
  const r = await measured([
    "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_pretransfer} %{time_total}", "-H", `Cookie: ${cookie}`,
    "-F", `file=@${file}`, `${url}/api/entry?expiration=2040-01-01T00:00:00Z`,
  ]);
  const [status, pre, total] = r.out.trim().split(" ");
  if (!r.ok || status !== "200") die(`curl upload failed: HTTP ${status}`);
  // From the connection being ready to the response: what the harness times too.
  return { seconds: Number(total) - Number(pre), maxRssBytes: r.maxRssBytes };
}

await runMain(async () => {
  const opt = parseFlags(flagsOf(GROUPS), USAGE, process.argv.slice(2), 2);
  const positionals = opt.positionals;
  if (opt(CLIENT)) {
    const [url, file] = positionals;
    const t0 = performance.now();
    const res = await uploadFile(url, process.env.PERF_COOKIE ?? "", file);
    const seconds = (performance.now() - t0) / 1000;
    process.stdout.write(JSON.stringify({ seconds, status: res.status }));
    return res.status === 200 ? 0 : 1;
  }
  const size = opt(FILE_SIZE);
  const rounds = opt(ROUNDS);
  const ramMiB = opt(RAM);
  const file = requireTestFile(size, opt(FLAG.testFiles));
  for (const [tool, pkg] of [["curl", "curl"], ["/usr/bin/time", "time"]]) {
    if ((await $`${tool} --version`.nothrow()).exitCode !== 0) die(`${tool} is not installed: apt-get install ${pkg}`, 2);
  }
  const picoshare = await resolvePicoShare(opt(FLAG.picoshare));
  const spec = { ramMiB, workDir: defaultWorkDir(), picoshare, uploadBytes: size.bytes * rounds * 2, signal: interruptSignal };
  await localBackend.preflight(spec);
  const env = await localBackend.create(spec);
  onCleanup("tear down", () => env.teardown());
  const secret = randomBytes(24).toString("base64url");
  const url = await env.startPicoShare(secret);
  await waitUntilReady(env, url);
  const cookie = await login(url, secret);

  log(`Uploading ${size.label} (${formatBytes(size.bytes)}) ${rounds} times with each client to PicoShare ${picoshare.version}, ${ramMiB} MiB`);
  const ours: Round[] = [];
  const curl: Round[] = [];
  for (let i = 0; i < rounds; i++) {
    // Alternate the order so that a drift (the database growing) hits both alike.
    const pair = i % 2 === 0 ? [harnessRound, curlRound] : [curlRound, harnessRound];
    for (const round of pair) {
      const r = await round(url, cookie, file);
      (round === harnessRound ? ours : curl).push(r);
      log(`  round ${i + 1} ${round === harnessRound ? "harness" : "curl   "}: ${r.seconds.toFixed(3)} s, peak RSS ${formatBytes(r.maxRssBytes)}`);
    }
  }
  const mo = median(ours.map((r) => r.seconds));
  const mc = median(curl.map((r) => r.seconds));
  const rows = [
    ["client", "median upload s", "MiB/s", "peak RSS"],
    ["harness", mo.toFixed(3), (toMiB(size.bytes) / mo).toFixed(1), formatBytes(Math.max(...ours.map((r) => r.maxRssBytes)))],
    ["curl", mc.toFixed(3), (toMiB(size.bytes) / mc).toFixed(1), formatBytes(Math.max(...curl.map((r) => r.maxRssBytes)))],
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) process.stdout.write(`${r.map((cell, c) => cell.padEnd(widths[c])).join("  ")}\n`);
  process.stdout.write(`ratio harness/curl: ${(mo / mc).toFixed(3)} (target: at most 1.05)\n`);
}, USAGE);
