// The interface every backend implements: an environment with a hard memory
// limit in which one PicoShare runs for one test, and the measurements only
// that environment can give.
import type { ExitInfo } from "../core/exec.ts";
import type { Counters } from "../upload/counters.ts";
import type { MemoryBreakdown } from "./cgroup.ts";
export type { MemoryBreakdown } from "./cgroup.ts";
import type { PicoShareBinary } from "../upload/picoshare.ts";
import type { GoRuntimeEnv } from "../upload/provenance.ts";
import type { StorageFacts } from "../result/fields.ts";

export const BACKENDS = ["local", "vagrant", "qemu"] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface EnvironmentSpec {
  /** Hard memory limit for the environment, MiB. */
  ramMiB: number;
  /** Host folder under which the test's private files go (data dir, TMPDIR). */
  workDir: string;
  picoshare: PicoShareBinary;
  /** Bytes the upload will send: a backend checks it has room for them. */
  uploadBytes: number;
  /** Aborted on Ctrl-C / SIGTERM: long waits stop at once. */
  signal: AbortSignal;
  /** --allow-memory-backed-work-dir: a work dir on tmpfs is used (and the result says so) instead of refused. */
  allowMemoryBackedWorkDir?: boolean;
  /** A command PicoShare runs under (an instrumented twin's valgrind); local backend only. */
  wrapper?: string[];
}

export type { ExitInfo } from "../core/exec.ts";

/** Seconds in which some (or all) of the cgroup's tasks waited for memory. */
export interface MemoryPressure {
  some_seconds: number;
  full_seconds: number;
}

// What PicoShare's storage holds after the upload is declared with the
// result's fields (those read with "storage"): the result gets them whole
// (spread), so that a new fact needs only its entry and its reading in each backend.
export { NO_STORAGE, type StorageFacts } from "../result/fields.ts";

/** A reading of PicoShare's storage: its facts, and the spill files' bytes (what recovery reports as temp_bytes_left). */
export interface StorageReading {
  facts: StorageFacts;
  tempBytes: number;
}

/** One memory sample as a monitor took it, for the timeline. */
export interface MemoryPoint {
  /** performance.now() when the sample was taken (or arrived from a VM). */
  at: number;
  workingSet: number;
  /** Anonymous and file-backed memory, where the backend can tell them apart (a cgroup). */
  anon?: number | null;
  file?: number | null;
}

export interface MemoryMonitor {
  /**
   * Stops sampling; the highest working set seen and the sample count, and
   * where the backend can tell, the highest anonymous memory and what the
   * memory was made of at the working set's peak; and the interval it
   * sampled at (a VM's guest may keep its own rather than the one asked).
   */
  stop(): Promise<{ peakBytes: number; samples: number; anonPeakBytes?: number | null; atPeak?: MemoryBreakdown | null; points: MemoryPoint[]; intervalMs: number }>;
}

export interface TestEnvironment {
  /** Settings that describe this environment in the result (cgroup path and version, VM box, ...). */
  readonly settings: Record<string, string | number | boolean | null>;
  /** Where PicoShare's own output is being written (host path). */
  readonly logPath: string;
  /**
   * Starts PicoShare with the given secret (never put on a command line) and
   * resolves with the base URL at which the host reaches it, once launched.
   */
  startPicoShare(secret: string): Promise<string>;
  /** Resolves when PicoShare exits, however it ends. */
  readonly exited: Promise<ExitInfo>;
  /** The environment's working set now, bytes (memory in use less reclaimable file cache). */
  memoryNow(): Promise<number>;
  /** Samples the working set every `intervalMs` until stopped. */
  monitorMemory(intervalMs: number): MemoryMonitor;
  /** OOM kills in the environment since it was made. */
  oomKills(): Promise<number>;
  /** The kernel's own high-water mark for the environment (page cache included), if it has one. */
  kernelPeakBytes(): Promise<number | null>;
  /** PicoShare's peak resident set (VmHWM), if it can be read. */
  picosharePeakRss(): Promise<number | null>;
  /**
   * PicoShare's peak resident set so far, then its mark reset to its resident
   * set now, so that picosharePeakRss() reads the peak from here on (the
   * download's own); null, and nothing reset, where it cannot be (absent: vagrant,
   * whose readings are batched).
   */
  resetPeakRss?(): Promise<number | null>;
  /**
   * GOGC / GOMEMLIMIT / GODEBUG / GOMAXPROCS as PicoShare's running process
   * received them (its /proc/PID/environ, on this host or in the guest);
   * null where that cannot be read (PicoShare gone, the guest unreachable).
   */
  goRuntimeEnv(): Promise<GoRuntimeEnv | null>;
  /**
   * The kernel's counters of PicoShare's processes since the environment was
   * made (a process that has ended counts with its last reading); absent or
   * null where the backend cannot read them.
   */
  counters?(): Promise<Counters | null>;
  /** PicoShare's processes on this host, for counting their hardware events (perf); absent where they run elsewhere (a VM). */
  processIds?(): number[];
  /** PicoShare's data folder (database, WAL) in bytes and the multipart temp files in its TMPDIR, now. */
  storage?(): Promise<StorageReading | null>;
  /**
   * Bytes in PicoShare's multipart temp files now, read cheaply enough to
   * poll every few ms: where the end of an upload's transfer is seen from the
   * server's side. Absent where a read costs a round trip (a VM).
   */
  spillBytes?(): number;
  /**
   * Copies PicoShare's database files (database, WAL, shared memory) as they
   * are now into the host folder `dest`; resolves with the database's path there.
   */
  copyDatabase?(dest: string): Promise<string>;
  /**
   * After a failure: stops PicoShare if it still runs and starts it again on
   * the same data dir under the same limit; resolves with its base URL.
   * `exited` then follows the new process.
   */
  restartPicoShare?(secret: string): Promise<string>;
  /** Memory pressure stall totals so far (cgroup v2 PSI); null where there are none. */
  memoryPressure?(): Promise<MemoryPressure | null>;
  /** Lines for --keep-vm: how to reach the kept environment and how to stop it. */
  keepInstructions(baseUrl: string): string[];
  /** Ends PicoShare and removes everything the environment made. Safe to call twice. */
  teardown(): Promise<void>;
}

export interface Backend {
  readonly name: BackendName;
  /** Checks the host can run a test like `spec` (one clear UsageError otherwise). */
  preflight(spec: EnvironmentSpec): Promise<void>;
  /** Makes the memory-limited environment. */
  create(spec: EnvironmentSpec): Promise<TestEnvironment>;
  /**
   * After a matrix's last test, and when it is interrupted: ends what the
   * backend kept across tests (vagrant --reuse-vm: the kept VM).
   */
  endRun?(): Promise<void>;
}
