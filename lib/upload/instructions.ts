// --count-instructions: each measured test gets an instrumented twin, the
// same scenario run right after it with PicoShare under valgrind's callgrind,
// its instrumentation off from the start and switched on and off at the
// bounds of the upload, of the download and of each kind of the requests
// phase (callgrind_control against the valgrind process), each dumped on its own. The counts are the
// dumps' `Ir` totals: user-space instructions, the same from run to run far
// more than any time is. Call-stack tracking is not relied on (Go switches
// goroutine stacks): only the switch at the phase bounds. The twin runs ten
// times slower and with more memory: its times and memory count for nothing.
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { TestEnvironment } from "../backends/types.ts";
import { NAME_PREFIX } from "../backends/cgroup-place.ts";
import { UsageError } from "../core/errors.ts";
import { log } from "../core/log.ts";
import { $ } from "../core/shell.ts";
import type { GoRuntimeEnv } from "./provenance.ts";
export { NO_INSTRUCTIONS, type InstructionFields } from "../result/fields.ts";

/** The requests phase's kinds (phases/requests.ts), each counted over its K requests. */
export const REQUEST_PHASES = ["list_page", "info_page", "download_first_byte"] as const;
export type RequestPhase = (typeof REQUEST_PHASES)[number];
/** The phases counted, each with a dump of its own. */
export const COUNTED_PHASES = ["upload", "download", ...REQUEST_PHASES] as const;
export type CountedPhase = (typeof COUNTED_PHASES)[number];

/** How the twin counted, as the result records it (instructions_settings). */
export interface InstructionSettings {
  tool: "callgrind";
  valgrind_version: string;
  /** The twin's memory limit: the test's --ram plus room for valgrind. */
  memory_limit_mib: number;
  /** GOGC / GOMEMLIMIT / GODEBUG / GOMAXPROCS as the twin's PicoShare process got them. */
  go_runtime_env: GoRuntimeEnv | null;
  /** How the twin's test ended (a count is taken only from a phase it finished). */
  exit_reason: string;
  /** The twin's whole time, set-up to teardown: what counting added to the test (never one of its figures). */
  seconds: number;
  /** The requests of each kind it counted (the test's K, at most TWIN_REQUESTS); null when it made none. */
  requests_per_kind: number | null;
  /** The per-phase callgrind dumps kept beside the result (their paths), null where none was made. */
  dumps: Partial<Record<CountedPhase, string>>;
}

/**
 * The requests of each kind the twin counts (K when smaller), after one it
 * makes uncounted: a list page of a build that reads every stored byte costs
 * seconds under callgrind, and K = 20 of them made its twin minutes longer.
 */
export const TWIN_REQUESTS = 5;
/**
 * Memory the twin gets on top of --ram: valgrind's own code and shadow state
 * and its translations of PicoShare's code (measured: see docs/run-test.md).
 */
export const VALGRIND_EXTRA_MIB = 512;
/** What the twin's PicoShare gets in GODEBUG besides the harness's own. */
export const TWIN_GODEBUG = "asyncpreemptoff=1";
/**
 * The twin's GOMAXPROCS, whatever the harness's: with one P no idle thread
 * spins while the client drains the socket (the download's count ranged 2 x
 * at the default, 0.6 % with 1: docs/run-test.md).
 */
export const TWIN_GOMAXPROCS = "1";
/** The twin runs about ten times slower: its uploads get this many times the --timeout. */
export const TWIN_TIMEOUT_FACTOR = 20;

/** Which measured tests get a twin: --count-instructions, --instruction-twins N, --instruction-sizes LIST. */
export interface TwinChoice {
  count?: boolean;
  twins?: number | null;
  /** File size labels ("100M"); null or undefined: every size. */
  sizes?: string[] | null;
}

/** The choice as a matrix or comparison stored its passed-on flags. */
export function twinChoice(o: { count_instructions?: boolean; instruction_twins?: number | null; instruction_sizes?: string[] | null }): TwinChoice {
  return { count: o.count_instructions, twins: o.instruction_twins, sizes: o.instruction_sizes };
}

/** Whether the `measured`-th measured test (from 1) of a cell of file size `size` gets a twin. */
export function twinFor(measured: number, size: string, c: TwinChoice): boolean {
  return Boolean(c.count) && (c.twins === null || c.twins === undefined || measured <= c.twins) && (!c.sizes || c.sizes.includes(size));
}

/**
 * --count-instructions (with --instruction-twins, --instruction-sizes among
 * `sizes`, the labels of the sizes tested) can be had: the local backend, and
 * valgrind installed; else one line, exit 2, before anything is written.
 */
export function checkCountInstructions(backend: string, c: TwinChoice, sizes: string[]): void {
  for (const [flag, given] of [["--instruction-twins", c.twins], ["--instruction-sizes", c.sizes]] as const) {
    if (given !== null && given !== undefined && !c.count) throw new UsageError(`${flag} without --count-instructions: add --count-instructions, or leave it out`);
  }
  const stray = c.sizes?.filter((s) => !sizes.includes(s)) ?? [];
  if (stray.length > 0) throw new UsageError(`--instruction-sizes ${stray.join(",")}: not a file size tested here (${sizes.join(",")}); name sizes among them`);
  if (!c.count) return;
  if (backend !== "local") throw new UsageError(`--count-instructions needs the local backend (not ${backend}): valgrind runs PicoShare on this host`);
  if (!Bun.which("valgrind") || !Bun.which("callgrind_control")) {
    throw new UsageError("--count-instructions needs valgrind: install the Debian package valgrind (apt-get install valgrind)");
  }
}

/** The installed valgrind's version ("valgrind-3.19.0"). */
export async function valgrindVersion(): Promise<string> {
  return (await $`valgrind --version`.nothrow()).stdout.trim();
}

/** The `Ir` count of a callgrind dump: its totals line (summary stays 0 in a dump asked for by callgrind_control). */
export function dumpInstructions(text: string): number | null {
  const m = /^totals:\s*(\d+)/m.exec(text) ?? /^summary:\s*(\d+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

/** Called by the upload and download phases at their bounds; a measured test has none. */
export interface PhaseProbe {
  start(phase: CountedPhase, env: TestEnvironment): Promise<void>;
  stop(phase: CountedPhase, env: TestEnvironment): Promise<void>;
}

/** The twin's callgrind: the command PicoShare runs under, and the switch and dump at each phase's bounds. */
export class CallgrindProbe implements PhaseProbe {
  readonly dir: string;
  /** Each finished phase's dump (in `dir` until kept) and its count. */
  readonly counted: Partial<Record<CountedPhase, { file: string; instructions: number | null }>> = {};

  constructor(workDir: string) {
    // Named so that a dead harness's are reaped with its other folders.
    this.dir = mkdtempSync(join(workDir, `${NAME_PREFIX}${process.pid}-callgrind-`));
  }

  /**
   * valgrind's command line in front of PicoShare's: instrumentation off
   * until a phase starts; Go's asynchronous preemption off (its SIGURGs,
   * sent at moments the host decides, trip an assertion in callgrind's signal
   * handling and would make the count depend on timing), added to the GODEBUG PicoShare gets;
   * one P (TWIN_GOMAXPROCS).
   */
  wrapper(env: NodeJS.ProcessEnv = process.env): string[] {
    const godebug = [env.GODEBUG, TWIN_GODEBUG].filter(Boolean).join(",");
    return ["env", `GODEBUG=${godebug}`, `GOMAXPROCS=${TWIN_GOMAXPROCS}`, "valgrind", "--tool=callgrind", "--instr-atstart=no", "--quiet", `--callgrind-out-file=${join(this.dir, "callgrind.out")}`, this.vgdbPrefix()];
  }

  /** Where valgrind's control pipes go: by default its TMPDIR, which is PicoShare's spill folder, so named here for both ends. */
  private vgdbPrefix(): string {
    return `--vgdb-prefix=${join(this.dir, "vgdb-pipe")}`;
  }

  async start(phase: CountedPhase, env: TestEnvironment): Promise<void> {
    await this.control(env, ["--instr=on"], phase);
  }

  async stop(phase: CountedPhase, env: TestEnvironment): Promise<void> {
    const before = new Set(this.dumps());
    await this.control(env, ["--instr=off"], phase);
    await this.control(env, [`--dump=${phase}`], phase);
    const file = this.dumps().find((f) => !before.has(f));
    if (!file) throw new Error(`callgrind wrote no dump for the ${phase}`);
    this.counted[phase] = { file: join(this.dir, file), instructions: dumpInstructions(readFileSync(join(this.dir, file), "utf8")) };
  }

  /** The numbered dumps callgrind_control asked for (callgrind.out.N). */
  private dumps(): string[] {
    return readdirSync(this.dir).filter((f) => /^callgrind\.out\.\d+$/.test(f));
  }

  private async control(env: TestEnvironment, args: string[], phase: CountedPhase): Promise<void> {
    const pid = env.processIds?.()[0];
    if (pid === undefined) throw new Error(`no valgrind process to switch for the ${phase}`);
    const r = await $({ nothrow: true, timeout: 60_000 })`callgrind_control ${this.vgdbPrefix()} ${args} ${String(pid)}`;
    if (r.exitCode !== 0 || !/OK\./.test(r.stdout)) {
      throw new Error(`callgrind_control ${args.join(" ")} ${pid} failed for the ${phase}: ${(r.stdout + r.stderr).trim().split("\n").pop()}`);
    }
  }

  /** Copies each phase's dump to `dest(phase)`; the paths kept. */
  keep(dest: (phase: CountedPhase) => string): Partial<Record<CountedPhase, string>> {
    const kept: Partial<Record<CountedPhase, string>> = {};
    for (const phase of Object.keys(this.counted) as CountedPhase[]) {
      copyFileSync(this.counted[phase]!.file, dest(phase));
      kept[phase] = dest(phase);
    }
    return kept;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Says once what the counts are. */
let said = false;
export function sayCounting(): void {
  if (said) return;
  said = true;
  log(
    `Instructions: each test gets an instrumented twin (PicoShare under valgrind's callgrind, ${VALGRIND_EXTRA_MIB} MiB more memory); ` +
      "its times and memory count for nothing",
  );
}
