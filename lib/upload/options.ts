// run-test's command line and environment, declared once: the protocol
// between run-test and a parent that runs it (the matrix, live compare).
// Each flag with how its text is checked (and what it is when not given) and
// how a parent writes a value for a child: scripts/run-test.ts parses with
// this table and runTestArgs builds children's command lines from it, so a
// flag a parent passes on is one entry here. The PERF_* variables say which
// results-log run and which of a cell's tests a child is.
import { nonNegativeInt, positiveInt } from "../core/cli.ts";
import { FLAG } from "../core/flags.ts";
import { flagSpec, numberFlag, parseFlags, requiredFlag, switchFlag, valueOf, withDefault, type Flag } from "../core/flag-kit.ts";
import type { FlagSpec } from "../core/cli.ts";
import type { Size } from "../core/sizes.ts";
import { DEFAULT_REQUESTS } from "./phases/requests.ts";
import { twinChoice, type TwinChoice } from "./instructions.ts";

/** Marks a flag that run-test-matrix takes as it is and passes on to each test (see passedByMatrix). */
// (any: an option of any value type; `text` takes the value, so unknown would not fit.)
function passedOn<O extends Flag<any>>(o: O): O & { matrix: true } {
  return { ...o, matrix: true };
}

/** run-test's flags, in the order a child's command line has them; each is its declaration in lib/core/flags.ts. */
export const RUN_TEST_OPTIONS = {
  ram: requiredFlag(FLAG.ram),
  size: requiredFlag(FLAG.fileSize),
  timeoutSec: passedOn(FLAG.timeout),
  // A parent runs one test per child (which one goes in PERF_*): never passed.
  iterations: withDefault(FLAG.iterations, "1"),
  warmup: withDefault(FLAG.warmup, "0"),
  resultsDir: FLAG.resultsDir,
  /** Its default goes by --results-dir: run-test fills it in. */
  db: FLAG.db,
  backend: passedOn(FLAG.backend),
  /** Checked when resolved (resolvePicoShare), which also has its default. */
  picoshare: FLAG.picoshare,
  /** A source tree to build (resolvePicoShareChoice checks it); a parent passes the built binary as --picoshare. */
  picoshareSource: FLAG.picoshareSource,
  picoshareRef: FLAG.picoshareRef,
  testFiles: passedOn(FLAG.testFiles),
  workDir: FLAG.workDir,
  verify: passedOn(FLAG.verify),
  noDownload: passedOn(FLAG.noDownload),
  reuseVm: passedOn(FLAG.reuseVm),
  keepVm: switchFlag("keep-vm",
    "Leave the environment running after the test and print how to reach it and how to stop it " +
      "(local: PicoShare keeps running); with --iterations/--warmup, only the last test's"),
  allowMemoryBackedWorkDir: passedOn(FLAG.allowMemoryBackedWorkDir),
  dropCaches: passedOn(FLAG.dropCaches),
  countInstructions: passedOn(FLAG.countInstructions),
  /** A parent applies it itself (which tests get --count-instructions); run-test with --iterations too. */
  instructionTwins: passedOn(FLAG.instructionTwins),
  instructionSizes: passedOn(FLAG.instructionSizes),
  // A cell's third axis in the matrix (--concurrency-levels), so not passed on as it is.
  concurrency: numberFlag("concurrency", positiveInt, {
    value: "N", example: "3", default: "1",
    help: "Start N uploads of the file together, each on its own connection; throughput is all their bytes " +
      "over the time from the first start to the last response, each upload's time is in " +
      "upload_durations_seconds, the first entry is the one downloaded",
  }),
  requests: passedOn(numberFlag("requests", nonNegativeInt, {
    value: "K", example: "5", default: String(DEFAULT_REQUESTS),
    help: "After the download, with the file still stored: K requests of each of the file list page, the entry's info page and a download's " +
      "first byte, their medians recorded (list_page_seconds, info_page_seconds, download_first_byte_seconds); 0 skips them",
  })),
  noRecovery: passedOn(FLAG.noRecovery),
  proxy: passedOn(FLAG.proxy),
  proxySettings: passedOn(FLAG.proxySettings),
};

type Options = typeof RUN_TEST_OPTIONS;
export type RunTestKey = keyof Options;
export type RunTestValue<K extends RunTestKey> = ReturnType<Options[K]["read"]>;

/** What a parent gives for a flag; undefined, null or false leave it out. */
type ArgOf<O> = O extends Flag<infer T> ? (T extends boolean ? boolean : NonNullable<T>) : never;
export type RunTestArgs = { [K in RunTestKey]?: ArgOf<Options[K]> | null } & { ram: number; size: Size };

/** run-test's flags, for its usage text. */
export const RUN_TEST_FLAGS: Flag<any>[] = Object.values(RUN_TEST_OPTIONS);

/**
 * Parses run-test's command line: an unknown flag or a missing value stops
 * with `usage` and exit 2 at once. Each value is checked when it is read, so
 * the script decides the order in which its checks refuse.
 */
export function parseRunTestCli(usage: string, argv?: string[]): <K extends RunTestKey>(key: K) => RunTestValue<K> {
  const opt = parseFlags(RUN_TEST_FLAGS, usage, argv);
  return (key) => opt(RUN_TEST_OPTIONS[key] as Flag<any>);
}

/** run-test's command line for a child: each flag given a value, in the table's order. */
export function runTestArgs(args: RunTestArgs): string[] {
  return (Object.keys(RUN_TEST_OPTIONS) as RunTestKey[]).flatMap((key) => {
    const given = args[key];
    if (given === undefined || given === null || given === false) return [];
    const o = RUN_TEST_OPTIONS[key] as Flag<any>;
    return o.type === "boolean" ? [`--${o.name}`] : [`--${o.name}`, o.text(given)];
  });
}

// ---------------------------------------------------------------- through the matrix

type Snake<S extends string> = S extends `${infer A}-${infer B}` ? `${A}_${Snake<B>}` : S;
type PassedKey = { [K in RunTestKey]: Options[K] extends { matrix: true } ? K : never }[RunTestKey];

/** The values of the flags the matrix passes on, as matrix.json stores them (the flag's name in snake_case). */
export type MatrixPassed = { [K in PassedKey as Snake<Options[K]["name"]>]: RunTestValue<K> };

const PASSED = (Object.keys(RUN_TEST_OPTIONS) as RunTestKey[])
  .filter((k) => (RUN_TEST_OPTIONS[k] as { matrix?: true }).matrix)
  .map((key) => ({ key, name: RUN_TEST_OPTIONS[key].name.replace(/-/g, "_") }));

/** The passed-on flags, for a parent's own flags and usage text. */
export const PASSED_FLAGS: Flag<any>[] = PASSED.map(({ key }) => RUN_TEST_OPTIONS[key]);

/** The passed-on flags, for the matrix's own flag table. */
export function passedFlagSpec(): FlagSpec {
  return flagSpec(PASSED_FLAGS);
}

/**
 * Reads the passed-on flags from the matrix's parsed command line, each
 * checked as run-test checks it: `get(name)` reads one (so the matrix keeps
 * the order of its checks), `all()` every one (those read already as they were).
 */
export function passedByMatrix(values: Record<string, string | boolean | string[] | undefined>) {
  const read = new Map<string, unknown>();
  const get = <N extends keyof MatrixPassed & string>(name: N): MatrixPassed[N] => {
    if (!read.has(name)) {
      const { key } = PASSED.find((p) => p.name === name)!;
      const o = RUN_TEST_OPTIONS[key] as Flag<any>;
      read.set(name, valueOf(o, values[o.name]));
    }
    return read.get(name) as MatrixPassed[N];
  };
  const all = (): MatrixPassed => Object.fromEntries(PASSED.map(({ name }) => [name, get(name as keyof MatrixPassed & string)])) as MatrixPassed;
  return { get, all };
}

/** The passed-on flags that choose which tests get an instrumented twin, read (so checked) now. */
export function passedTwinChoice(passed: ReturnType<typeof passedByMatrix>): TwinChoice {
  return twinChoice({ count_instructions: passed.get("count_instructions"), instruction_twins: passed.get("instruction_twins"), instruction_sizes: passed.get("instruction_sizes") });
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
  /** The binary's label as the parent made it from what the user gave (a ref, a folder...), with its sha256: run-test's --picoshare is then that build. */
  picoshare?: { version: string; sha256: string };
}

const ENV = { runId: "PERF_RUN_ID", iteration: "PERF_ITERATION", warmup: "PERF_WARMUP", label: "PERF_PICOSHARE_LABEL" } as const;

/** The PERF_* variables for `c` (a field left out is not set). */
export function childEnv(c: ChildContext): Record<string, string> {
  return {
    [ENV.runId]: c.runId === null ? "" : String(c.runId),
    ...(c.iteration === undefined ? {} : { [ENV.iteration]: String(c.iteration) }),
    ...(c.warmup === undefined ? {} : { [ENV.warmup]: c.warmup ? "1" : "" }),
    ...(c.picoshare === undefined ? {} : { [ENV.label]: `${c.picoshare.sha256} ${c.picoshare.version}` }),
  };
}

/** What run-test's parent said; iteration and warmup are checked as its flags would be. */
export function readChildContext(env: NodeJS.ProcessEnv = process.env): {
  runId: number | null;
  iteration: number | null;
  warmup: boolean;
  picoshare: { version: string; sha256: string } | null;
} {
  const label = /^([0-9a-f]{64}) (.+)$/.exec(env[ENV.label] ?? "");
  return {
    picoshare: label ? { sha256: label[1], version: label[2] } : null,
    runId: env[ENV.runId] ? Number(env[ENV.runId]) : null,
    iteration: env[ENV.iteration] ? positiveInt(ENV.iteration, env[ENV.iteration], "2") : null,
    warmup: env[ENV.warmup] === "1",
  };
}
