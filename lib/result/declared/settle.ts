// Settling the host before the test (lib/upload/noise.ts settleHost): what
// the test before left to write, and how long flushing it took.
import { MiB } from "../../core/sizes.ts";
import { SETTLE_MAX_SECONDS, SETTLE_THRESHOLD_BYTES } from "../../upload/noise.ts";
import { intOrNull, realOrNull } from "../field.ts";

export const SETTLE_FIELDS = [
  realOrNull("settle_seconds", {
    doc: `before the test and its environment probe: \`sync\`, then again until the kernel's Dirty + Writeback were at most ${SETTLE_THRESHOLD_BYTES / MiB} MiB (for at most ${SETTLE_MAX_SECONDS} s); the time that took`,
    unit: "s", phase: "setup", source: "a monotonic clock around `sync` and /proc/meminfo", migration: 9,
  }),
  intOrNull("settle_dirty_bytes", {
    doc: "the kernel's Dirty + Writeback when settling began: what the test before (or another process) had left to write",
    unit: "bytes", phase: "setup", source: "/proc/meminfo of the host", migration: 9,
  }),
] as const;
