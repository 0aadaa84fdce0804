// A measured test's instrumented twin (--count-instructions): the same
// scenario again, right after it, with PicoShare under callgrind and a memory
// limit raised for valgrind. Only its per-phase instruction counts reach the
// measured test's result; its times, memory and ending are not the test's
// and are kept nowhere but in instructions_settings (which says so).
import { join } from "node:path";
import { interrupted } from "../core/cleanup.ts";
import { UsageError, errorMessage } from "../core/errors.ts";
import { log, warn } from "../core/log.ts";
import { displayPath } from "../core/paths.ts";
import { CallgrindProbe, NO_INSTRUCTIONS, TWIN_REQUESTS, TWIN_TIMEOUT_FACTOR, VALGRIND_EXTRA_MIB, sayCounting, valgrindVersion, COUNTED_PHASES, type RequestPhase, type InstructionFields } from "./instructions.ts";
import { DEFAULT_REQUESTS } from "./phases/requests.ts";
import type { Measurement } from "./record.ts";
import { fileStamp, freeStem } from "./result.ts";
import { measureTest, type TestOptions } from "./runner.ts";

/**
 * Runs `measured`'s twin and gives the fields it counts; the per-phase dumps
 * are kept in `resultsDir` beside the result (callgrind-STEM-PHASE.out).
 */
export async function instrumentedTwin(opts: TestOptions, measured: Measurement, resultsDir: string): Promise<InstructionFields> {
  sayCounting();
  const probe = new CallgrindProbe(opts.workDir);
  const t0 = performance.now();
  try {
    const ramMiB = opts.ramMiB + VALGRIND_EXTRA_MIB;
    log(`Instructions: the instrumented twin (${ramMiB} MiB, PicoShare under callgrind)`);
    const twin = await measureTest({
      ...opts,
      ramMiB,
      timeoutSec: opts.timeoutSec * TWIN_TIMEOUT_FACTOR,
      keep: false,
      verify: false,
      dropCaches: false,
      requests: Math.min(opts.requests ?? DEFAULT_REQUESTS, TWIN_REQUESTS),
      instrument: { wrapper: probe.wrapper(), probe },
    });
    const r = twin.result;
    const stem = freeStem(resultsDir, `${measured.result.ram_mb}MB-${measured.result.file_size}-${fileStamp(measured.startedAt)}`, (s) =>
      COUNTED_PHASES.map((p) => `callgrind-${s}-${p}.out`),
    );
    const dumps = probe.keep((phase) => join(resultsDir, `callgrind-${stem}-${phase}.out`));
    const upload = probe.counted.upload?.instructions ?? null;
    const download = probe.counted.download?.instructions ?? null;
    // The requests' counts per request: each kind's dump covers the twin's K requests (its uncounted first one left out).
    const k = r.requests_per_kind;
    const perRequest = (p: RequestPhase) => {
      const n = probe.counted[p]?.instructions ?? null;
      return n === null || !k ? null : Math.round(n / k);
    };
    const asked = { list_page_instructions: perRequest("list_page"), info_page_instructions: perRequest("info_page"), download_first_byte_instructions: perRequest("download_first_byte") };
    if (r.exit_reason !== "success") warn(`the instrumented twin ended with ${r.exit_reason}: ${r.error ?? ""}`);
    else if (r.requests_error) warn(`the instrumented twin's requests failed (their instructions are null): ${r.requests_error}`);
    log(
      `Instructions: upload ${upload ?? "not counted"}, download ${download ?? "not counted"}` +
        (k ? `, per request: list page ${asked.list_page_instructions ?? "not counted"}, info page ${asked.info_page_instructions ?? "not counted"}, ` +
          `first byte ${asked.download_first_byte_instructions ?? "not counted"}` : "") + " (callgrind)",
    );
    return {
      upload_instructions: upload,
      download_instructions: download,
      ...asked,
      instructions_source: [upload, download, ...Object.values(asked)].every((n) => n === null) ? null : "valgrind",
      instructions_settings: {
        tool: "callgrind",
        valgrind_version: await valgrindVersion(),
        memory_limit_mib: ramMiB,
        go_runtime_env: r.go_runtime_env,
        exit_reason: r.exit_reason,
        seconds: Math.round(performance.now() - t0) / 1000,
        requests_per_kind: k,
        dumps: Object.fromEntries(Object.entries(dumps).map(([p, f]) => [p, displayPath(f)])),
      },
    };
  } catch (err) {
    if (interrupted() || err instanceof UsageError) throw err;
    warn(`the instrumented twin failed: ${errorMessage(err)}; the *_instructions fields are null`);
    return NO_INSTRUCTIONS;
  } finally {
    probe.remove();
  }
}
