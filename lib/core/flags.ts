// The flags that more than one script takes, each declared once (see
// flag-kit.ts): its value, parser, default and description. A script picks
// the ones it takes, with its own default where it has one; run-test's, which
// parents pass on to it, are in lib/upload/options.ts's table.
import { resolve } from "node:path";
import { list, nonNegativeInt, positiveInt, positiveNumber } from "./cli.ts";
import { UsageError } from "./errors.ts";
import { RESULTS_DIR, TEST_FILES_DIR, displayPath } from "./paths.ts";
import { parseSize } from "./sizes.ts";
import { defaultWorkDir } from "./files.ts";
import { numberFlag, switchFlag, valueFlag } from "./flag-kit.ts";
import { parseBackend } from "../backends/index.ts";
import { PROXIES, parseProxySetting, type ProxyKind } from "../upload/proxy.ts";
import { DEFAULT_FILE_SIZES, DEFAULT_MEMORY_LIMITS, parseFileSizes, parseMemoryLimits } from "../matrix/plan.ts";
import { DEFAULT_SEED } from "../stats/stats.ts";
import { DEFAULT_ALPHA } from "../stats/verdict.ts";
import { DEFAULT_CV_THRESHOLD } from "../stats/cells.ts";

export const FLAG = {
  // ------------------------------------------------ what is tested
  ram: numberFlag("ram", positiveInt, {
    value: "MB", example: "512",
    help: "PicoShare's memory limit in MiB (e.g. 2048, 1024, 512, 256)",
  }),
  fileSize: valueFlag("file-size", {
    value: "SIZE", example: "100M",
    help: "Test file to upload: 512K, 100M, 500M, 1G, 2G, 5G ... (binary units; made by bun scripts/generate-test-files.ts)",
  }, (t) => (t === undefined ? undefined : parseSize(t, "--file-size")), (s) => s.label),
  memoryLimits: valueFlag("memory-limits", {
    value: "LIST", shown: DEFAULT_MEMORY_LIMITS.join(","),
    help: "Memory limits in MiB, comma-separated",
  }, parseMemoryLimits),
  /** Its default is the scripts' own: find-ram-floor has none. */
  fileSizes: valueFlag("file-sizes", {
    value: "LIST",
    help: "File sizes, comma-separated (binary units, e.g. 100M,1G)",
  }, (t) => (t === undefined ? undefined : parseFileSizes(t))),
  iterations: numberFlag("iterations", positiveInt, {
    value: "N", example: "5",
    help: "Measured tests per cell (per side in a comparison), one after another",
  }),
  warmup: numberFlag("warmup", nonNegativeInt, {
    value: "N", example: "1",
    help: "Warm-up tests per cell (per side in a comparison) before the measured ones: " +
      "recorded (result files, database rows with warmup = 1) but never counted " +
      "(statistics, CSV, pass/fail)",
  }),
  timeout: numberFlag("timeout", positiveNumber, {
    value: "SEC", example: "600", default: "600",
    help: "Upload timeout per test in seconds",
  }),

  // ------------------------------------------------ the build
  picoshare: valueFlag("picoshare", {
    value: "PATH", shown: "$PICOSHARE_BIN, else a build of $PICOSHARE_VERSION, default v1.5.4, cached in .cache/",
    help: "PicoShare binary to test, resolved once: every test runs that same binary",
  }),
  picoshareSource: valueFlag("picoshare-source", {
    value: "DIR",
    help: "Or build PicoShare from a source tree (a checkout): go build ./cmd/picoshare on a copy of it, " +
      "cached by the tree's content and the Go version; every result records commit, \"dirty\", Go version",
  }),
  picoshareRef: valueFlag("picoshare-ref", {
    value: "REF",
    help: "With --picoshare-source: build the git ref REF of that checkout (a clean export; the working tree is not touched)",
  }),

  // ------------------------------------------------ where
  backend: valueFlag("backend", {
    value: "NAME", default: "local",
    help: "Where PicoShare runs: local (a memory cgroup on this host), vagrant or qemu",
  }, parseBackend),
  testFiles: valueFlag("test-files", {
    value: "DIR", shown: "./test-files",
    help: "Where the test files are",
  }, (t) => resolve(t ?? TEST_FILES_DIR)),
  workDir: valueFlag("work-dir", {
    value: "DIR", shown: "the system temp folder, or /var/tmp where that is in memory",
    help: "Where PicoShare's data dir and temp files go; needs about twice the file size free. " +
      "local: a folder on tmpfs is refused (the file would count against the limit)",
  }, (t) => resolve(t ?? defaultWorkDir())),
  resultsDir: valueFlag("results-dir", {
    value: "DIR", shown: "./results",
    help: "Where results go: result files, a run's folder (matrix, comparison, search) and results.db",
  }, (t) => t ?? displayPath(RESULTS_DIR)),
  /** Its default goes by --results-dir where a script has one: the script fills it in. */
  db: valueFlag("db", { value: "PATH", shown: "RESULTS_DIR/results.db", help: "SQLite results log" }),
  resume: valueFlag("resume", {
    value: "DIR",
    help: "Continue an interrupted matrix or live comparison in DIR (its folder, named in its log): runs only the tests " +
      "(each iteration and warm-up of a cell on its own) that have no result (never run, interrupted, or whose run-test " +
      "crashed) with the options stored in DIR (matrix.json, compare.json), adding to the same outputs and database runs. " +
      "Options that would change what is measured are refused (the matrix takes --timeout and --stop-on-failure again, " +
      "replacing the stored ones; compare its output, statistics, gate and export options). A matrix stopped by " +
      "--stop-on-failure is recorded as interrupted and can be resumed the same way.",
  }),

  // ------------------------------------------------ how each test runs
  verify: switchFlag("verify",
    "Download the entry after the upload and compare its SHA-256 with the test file (a mismatch fails the test as \"corrupt\")"),
  noDownload: switchFlag("no-download",
    "Skip the measured download of the entry after a successful upload (its time, throughput, peak memory and counters)"),
  noRecovery: switchFlag("no-recovery",
    "Do not upload the small entry first, nor restart PicoShare after an OOM kill, timeout or death " +
      "to see what survived (recovery: integrity_check, the earlier entry, temp files)"),
  reuseVm: switchFlag("reuse-vm",
    "vagrant: keep the VM up after a test for the next test with the same --ram (data dir and temp files " +
      "wiped, PicoShare restarted), destroyed when the run ends; default is a fresh VM per test"),
  allowMemoryBackedWorkDir: switchFlag("allow-memory-backed-work-dir",
    "local: use a --work-dir on tmpfs anyway; the result says so (backend_settings.work_dir_memory_backed)"),
  countInstructions: switchFlag("count-instructions",
    "Give each measured test an instrumented twin right after it: PicoShare under valgrind's callgrind (local backend; " +
      "apt-get install valgrind), its user-space instructions counted per phase into upload_instructions and " +
      "download_instructions; the twin's times and memory count for nothing"),
  instructionTwins: numberFlag("instruction-twins", positiveInt, {
    value: "N", example: "2",
    help: "With --count-instructions: a twin for only the first N measured tests of each cell (per side in a comparison), " +
      "for long matrices; the others' instruction fields stay null (default: every measured test)",
  }),
  instructionSizes: valueFlag("instruction-sizes", {
    value: "LIST",
    help: "With --count-instructions: twins only in the cells of these file sizes (e.g. the smallest, whose twin costs least), " +
      "for long matrices; the other cells' instruction fields stay null (default: every size)",
  }, (t) => (t === undefined ? undefined : list("--instruction-sizes", t, (item) => parseSize(item, "--instruction-sizes item").label, "100M")), (v) => v.join(",")),
  dropCaches: switchFlag("drop-caches",
    "Root: sync and drop the page cache before each test, so that every test starts cold " +
      "(the test file is read from disk); the result says so (caches_dropped)"),
  proxy: valueFlag("proxy", {
    value: "nginx",
    help: "Send the uploads and the download through Debian's nginx, started on 127.0.0.1 for the test " +
      "with a typical deployment's settings (request buffering on, no body size limit, 60 s proxy timeouts); " +
      "the result records its memory and disk use",
  }, parseProxyKind),
  proxySettings: valueFlag("proxy-settings", {
    value: "LIST",
    help: "With --proxy: NAME=VALUE,... to override those settings, e.g. proxy_read_timeout=300s,proxy_request_buffering=off",
  }, parseProxySettings, proxySettingsText),

  // ------------------------------------------------ the benchmarks
  patches: valueFlag("patches", { value: "LIST", help: "Which patches of v1.5.4's source to build, comma-separated (those listed above)" }),

  // ------------------------------------------------ output and statistics
  json: switchFlag("json", "The output as JSON on stdout, every field, instead of the table"),
  out: valueFlag("out", { value: "FILE", help: "Where the output goes (written atomically)" }),
  alpha: valueFlag("alpha", {
    value: "A", default: String(DEFAULT_ALPHA),
    help: "Significance level of the comparison's Mann-Whitney U test",
  }, (t) => {
    const alpha = positiveNumber("--alpha", t ?? String(DEFAULT_ALPHA), "0.05");
    if (alpha >= 0.5) throw new UsageError(`--alpha must be below 0.5, got "${t}" (e.g. --alpha 0.05)`);
    return alpha;
  }),
  /** In per cent; the scripts hand on a fraction. */
  cvThreshold: numberFlag("cv-threshold", positiveNumber, {
    value: "PCT", example: "10", default: String(DEFAULT_CV_THRESHOLD * 100),
    help: "Flag a cell whose coefficient of variation, in per cent, is above PCT",
  }),
  seed: numberFlag("seed", nonNegativeInt, {
    value: "N", example: "1", default: String(DEFAULT_SEED),
    help: "Seed of the bootstrap; same seed, same intervals",
  }),
  since: valueFlag("since", {
    value: "DATE",
    help: "Trends: only runs started on or after DATE: 2026-11-01 (local midnight) or an ISO 8601 time " +
      "(2026-11-01T14:30, local; 2026-11-01T14:30:00+01:00); other forms are refused",
  }),

  // ------------------------------------------------ making things
  dir: valueFlag("dir", {
    value: "DIR", shown: "./test-files",
    help: "Where the files are written: a folder on the disk the tests use, not a tmpfs",
  }, (t) => resolve(t ?? TEST_FILES_DIR)),
  force: switchFlag("force", "Make it again even when what is there is already correct"),
};

/** --proxy's value: one of PROXIES, or none. */
function parseProxyKind(t: string | undefined): ProxyKind | null {
  if (t === undefined) return null;
  if (!(PROXIES as readonly string[]).includes(t)) throw new UsageError(`--proxy ${t}: unknown proxy; use ${PROXIES.join(" or ")}`);
  return t as ProxyKind;
}

/** --proxy-settings NAME=VALUE,...: the proxy's settings that differ from PROXY_DEFAULTS. */
function parseProxySettings(t: string | undefined): Record<string, string> | null {
  if (t === undefined) return null;
  return Object.fromEntries(t.split(",").filter((x) => x !== "").map(parseProxySetting));
}

function proxySettingsText(s: Record<string, string>): string {
  return Object.entries(s).map(([k, v]) => `${k}=${v}`).join(",");
}

/** The default of --file-sizes where a script has one. */
export const FILE_SIZES_DEFAULT = DEFAULT_FILE_SIZES.join(",");
