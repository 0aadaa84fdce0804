// User-space instructions of PicoShare's processes per phase, counted in an
// instrumented twin of the test (--count-instructions): the same scenario
// run right after it with PicoShare under valgrind's callgrind, its
// instrumentation switched on at the phase's start and off at its end. The
// twin's times and memory count for nothing; only these fields come from it.
import { intOrNull, jsonOrNull, textOrNull } from "../field.ts";
import type { InstructionSettings } from "../../upload/instructions.ts";

/**
 * An instruction count compare tests, lower is better, in steps of 1: the
 * upload's and the download's in their own Holm family; the per-request ones
 * secondary, so that they do not widen that family's correction.
 */
const counted = (key: string, name: string, family: "instructions" | "secondary" = "instructions") =>
  ({ key, family, name, unit: "", higherIsBetter: false, higher: "more instructions", lower: "fewer instructions", scale: 1, digits: 0, resolution: () => 1 }) as const;

/** The requests phase's kinds: one dump per kind of K requests. */
const PER_REQUEST = "callgrind's `Ir` in the twin's dump of that kind's requests (one made uncounted, then min(K, 5): switched on before the first of them, " +
  "off after the last), / their number, rounded";

export const INSTRUCTION_FIELDS = [
  intOrNull("upload_instructions", {
    doc: "user-space instructions PicoShare's process executed for the upload with its processing, from the request's start to its response, " +
      "counted in the test's instrumented twin (--count-instructions); null without it",
    phase: "upload", source: "callgrind's `Ir` in the twin's dump of the phase (`callgrind_control -i on` / `-i off` / `--dump` at its bounds)",
    migration: 9, csv: "counters", compare: counted("upload_instructions", "upload instructions"),
  }),
  intOrNull("download_instructions", {
    doc: "the same for the download (`GET /-ID`, to its last byte)", phase: "download", source: "as upload_instructions",
    migration: 9, csv: "counters", compare: counted("download_instructions", "download instructions"),
  }),
  intOrNull("list_page_instructions", {
    doc: "user-space instructions of PicoShare per list page request, counted in the instrumented twin (--count-instructions); null without it",
    phase: "requests", source: PER_REQUEST, migration: 10, csv: "counters", compare: counted("list_page_instructions", "list page instructions", "secondary"),
  }),
  intOrNull("info_page_instructions", {
    doc: "the same per info page request", phase: "requests", source: PER_REQUEST, migration: 10, csv: "counters",
    compare: counted("info_page_instructions", "info page instructions", "secondary"),
  }),
  intOrNull("download_first_byte_instructions", {
    doc: "the same per download's first byte (`Range: bytes=0-0`)", phase: "requests", source: PER_REQUEST, migration: 10,
    csv: "counters", compare: counted("download_first_byte_instructions", "first byte instructions", "secondary"),
  }),
  textOrNull<"valgrind">()("instructions_source", {
    doc: "what counted upload_instructions / download_instructions (and the requests' `*_instructions`): `valgrind` (callgrind in an instrumented twin); null when not counted. " +
      "perf's hardware count of the measured test itself, where the host has a PMU, is `instructions`",
    phase: "test", source: "--count-instructions", migration: 9,
  }),
  jsonOrNull<InstructionSettings>()("instructions_settings", {
    doc: "how the twin counted: `tool`, `valgrind_version`, its raised `memory_limit_mib`, `go_runtime_env` as its PicoShare process got it " +
      "(GOMAXPROCS, GODEBUG...), `exit_reason`, `seconds` (the twin's whole time, never a figure of the test), `requests_per_kind` (the requests of each kind it counted: K, at most 5) and the per-phase `dumps` kept beside the result",
    phase: "test", source: "the twin", migration: 9,
  }),
] as const;
