// run-test's command line and environment, declared once: the protocol
// between run-test and a parent that runs it (the matrix, live compare).
// Each flag with how its text is checked (and what it is when not given) and
// how a parent writes a value for a child: scripts/run-test.ts parses with
// this table and runTestArgs builds children's command lines from it, so a
// flag a parent passes on is one entry here. The PERF_* variables say which
// results-log run and which of a cell's tests a child is.
import { resolve } from "node:path";
import { nonNegativeInt, parseCli, positiveInt, positiveNumber, required, type FlagSpec } from "../core/cli.ts";
import { defaultWorkDir } from "../core/files.ts";
import { RESULTS_DIR, TEST_FILES_DIR, displayPath } from "../core/paths.ts";
import { parseSize, type Size } from "../core/sizes.ts";
import { parseBackend } from "../backends/index.ts";
import { PROXIES, parseProxySetting, type ProxyKind } from "./proxy.ts";
import { UsageError } from "../core/errors.ts";

interface ValueOption<T, F extends string = string> {
  flag: F;
  type: "string";
  /** The value of the flag's text (undefined when not given); a bad one is a UsageError. */
  parse: (text: string | undefined) => T;
  /** The flag's text for a value, on a child's command line. */
  text: (value: NonNullable<T>) => string;
  /** run-test-matrix takes the flag too and hands its value to every test (see passedByMatrix). */
  matrix?: true;
}

interface SwitchOption<F extends string = string> {
  flag: F;
  type: "boolean";
  parse: (given: boolean | undefined) => boolean;
  matrix?: true;
}

function value<T, F extends string>(flag: F, parse: (text: string | undefined) => T, text: (value: NonNullable<T>) => string = String): ValueOption<T, F> {
  return { flag, type: "string", parse, text };
}

function toggle<F extends string>(flag: F): SwitchOption<F> {
  return { flag, type: "boolean", parse: (given) => Boolean(given) };
}

/** Marks a flag that run-test-matrix takes as it is and passes on to each test. */
// (any: an option of any value type; `text` takes the value, so unknown would not fit.)
function passedOn<O extends ValueOption<any> | SwitchOption>(o: O): O & { matrix: true } {
  return { ...o, matrix: true };
}

/** run-test's flags, in the order a child's command line has them. */
export const RUN_TEST_OPTIONS = {
  ram: value("ram", (t) => positiveInt("--ram", required("--ram", t, "512"), "512")),
  size: value("file-size", (t) => parseSize(required("--file-size", t, "100M"), "--file-size"), (s: Size) => s.label),
  timeoutSec: passedOn(value("timeout", (t) => positiveNumber("--timeout", t ?? "600", "600"))),
  // A parent runs one test per child (which one goes in PERF_*): never passed.
  iterations: value("iterations", (t) => positiveInt("--iterations", t ?? "1", "5")),
  warmup: value("warmup", (t) => nonNegativeInt("--warmup", t ?? "0", "1")),
  resultsDir: value("results-dir", (t) => t ?? displayPath(RESULTS_DIR)),
  /** Its default goes by --results-dir: run-test fills it in. */
  db: value("db", (t) => t),
  backend: passedOn(value("backend", parseBackend)),
  /** Checked when resolved (resolvePicoShare), which also has its default. */
  picoshare: value("picoshare", (t) => t),
  /** A source tree to build (resolvePicoShareChoice checks it); a parent passes the built binary as --picoshare. */
  picoshareSource: value("picoshare-source", (t) => t),
  picoshareRef: value("picoshare-ref", (t) => t),
  testFiles: passedOn(value("test-files", (t) => resolve(t ?? TEST_FILES_DIR))),
  workDir: value("work-dir", (t) => resolve(t ?? defaultWorkDir())),
  verify: passedOn(toggle("verify")),
  noDownload: passedOn(toggle("no-download")),
  reuseVm: passedOn(toggle("reuse-vm")),
  keepVm: toggle("keep-vm"),
  allowMemoryBackedWorkDir: passedOn(toggle("allow-memory-backed-work-dir")),
  dropCaches: passedOn(toggle("drop-caches")),
  // A cell's third axis in the matrix (--concurrency-levels), so not passed on as it is.
  concurrency: value("concurrency", (t) => positiveInt("--concurrency", t ?? "1", "3")),
  noRecovery: passedOn(toggle("no-recovery")),
  proxy: passedOn(value("proxy", parseProxyKind)),
  proxySettings: passedOn(value("proxy-settings", parseProxySettings, proxySettingsText)),
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

type Options = typeof RUN_TEST_OPTIONS;
export type RunTestKey = keyof Options;
export type RunTestValue<K extends RunTestKey> = ReturnType<Options[K]["parse"]>;

/** What a parent gives for a flag; undefined, null or false leave it out. */
type ArgOf<O> = O extends ValueOption<infer T> ? NonNullable<T> : boolean;
export type RunTestArgs = { [K in RunTestKey]?: ArgOf<Options[K]> | null } & { ram: number; size: Size };

/**
 * Parses run-test's command line: an unknown flag or a missing value stops
 * with `usage` and exit 2 at once. Each value is checked when it is read, so
 * the script decides the order in which its checks refuse.
 */
export function parseRunTestCli(usage: string, argv?: string[]): <K extends RunTestKey>(key: K) => RunTestValue<K> {
  const spec: FlagSpec = Object.fromEntries(Object.values(RUN_TEST_OPTIONS).map((o) => [o.flag, { type: o.type }]));
  const { values } = parseCli(spec, usage, argv);
  return (key) => {
    const o = RUN_TEST_OPTIONS[key];
    return (o.parse as (given: string | boolean | undefined) => RunTestValue<typeof key>)(values[o.flag]);
  };
}

/** run-test's command line for a child: each flag given a value, in the table's order. */
export function runTestArgs(args: RunTestArgs): string[] {
  return (Object.keys(RUN_TEST_OPTIONS) as RunTestKey[]).flatMap((key) => {
    const given = args[key];
    if (given === undefined || given === null || given === false) return [];
    const o = RUN_TEST_OPTIONS[key];
    return o.type === "boolean" ? [`--${o.flag}`] : [`--${o.flag}`, (o.text as (v: unknown) => string)(given)];
  });
}

// ---------------------------------------------------------------- through the matrix

type Snake<S extends string> = S extends `${infer A}-${infer B}` ? `${A}_${Snake<B>}` : S;
type PassedKey = { [K in RunTestKey]: Options[K] extends { matrix: true } ? K : never }[RunTestKey];

/** The values of the flags the matrix passes on, as matrix.json stores them (the flag's name in snake_case). */
export type MatrixPassed = { [K in PassedKey as Snake<Options[K]["flag"]>]: RunTestValue<K> };

const PASSED = (Object.keys(RUN_TEST_OPTIONS) as RunTestKey[])
  .filter((k) => (RUN_TEST_OPTIONS[k] as { matrix?: true }).matrix)
  .map((key) => ({ key, name: RUN_TEST_OPTIONS[key].flag.replace(/-/g, "_") }));

/** The passed-on flags, for the matrix's own flag table. */
export function passedFlagSpec(): FlagSpec {
  return Object.fromEntries(PASSED.map(({ key }) => [RUN_TEST_OPTIONS[key].flag, { type: RUN_TEST_OPTIONS[key].type }]));
}

/**
 * Reads the passed-on flags from the matrix's parsed command line, each
 * checked as run-test checks it: `get(name)` reads one (so the matrix keeps
 * the order of its checks), `all()` every one (those read already as they were).
 */
export function passedByMatrix(values: Record<string, string | boolean | undefined>) {
  const read = new Map<string, unknown>();
  const get = <N extends keyof MatrixPassed & string>(name: N): MatrixPassed[N] => {
    if (!read.has(name)) {
      const { key } = PASSED.find((p) => p.name === name)!;
      const o = RUN_TEST_OPTIONS[key];
      read.set(name, (o.parse as (given: string | boolean | undefined) => unknown)(values[o.flag]));
    }
    return read.get(name) as MatrixPassed[N];
  };
  const all = (): MatrixPassed => Object.fromEntries(PASSED.map(({ name }) => [name, get(name as keyof MatrixPassed & string)])) as MatrixPassed;
  return { get, all };
}

/** run-test's arguments for the passed-on flags a matrix stored (one missing from an older matrix.json is left out). */
export function matrixPassedArgs(stored: Partial<MatrixPassed>): Partial<RunTestArgs> {
  return Object.fromEntries(PASSED.map(({ key, name }) => [key, (stored as Record<string, unknown>)[name]])) as Partial<RunTestArgs>;
}

// ---------------------------------------------------------------- the environment

/**
 * What a parent (the matrix, live compare) tells one run-test through its
 * environment: the results-log run it belongs to, and which of a cell's
 * tests it is. run-test reads it back with readChildContext.
 */
export interface ChildContext {
  runId: number | null;
  iteration?: number;
  warmup?: boolean;
}

const ENV = { runId: "PERF_RUN_ID", iteration: "PERF_ITERATION", warmup: "PERF_WARMUP" } as const;

/** The PERF_* variables for `c` (a field left out is not set). */
export function childEnv(c: ChildContext): Record<string, string> {
  return {
    [ENV.runId]: c.runId === null ? "" : String(c.runId),
    ...(c.iteration === undefined ? {} : { [ENV.iteration]: String(c.iteration) }),
    ...(c.warmup === undefined ? {} : { [ENV.warmup]: c.warmup ? "1" : "" }),
  };
}

/** What run-test's parent said; iteration and warmup are checked as its flags would be. */
export function readChildContext(env: NodeJS.ProcessEnv = process.env): { runId: number | null; iteration: number | null; warmup: boolean } {
  return {
    runId: env[ENV.runId] ? Number(env[ENV.runId]) : null,
    iteration: env[ENV.iteration] ? positiveInt(ENV.iteration, env[ENV.iteration], "2") : null,
    warmup: env[ENV.warmup] === "1",
  };
}
