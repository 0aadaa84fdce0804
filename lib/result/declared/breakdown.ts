// Where the upload's time went, how many ran at once, what survived a
// failure, and what stood in front of PicoShare.
import type { ProxyFacts } from "../../upload/proxy.ts";
import type { Recovery } from "../../upload/result.ts";
import { int, json, jsonOrNull, realOrNull, textOrNull } from "../field.ts";

export const BREAKDOWN_FIELDS = [
  realOrNull("upload_transfer_seconds", {
    doc:
      "from the request's start to the end of the body's transfer (see `upload_transfer_end`); with processing it adds up to `duration_seconds`. " +
      "See [where the upload's time goes](methodology.md#where-the-uploads-time-goes)",
    unit: "s", phase: "upload", source: "PicoShare's multipart temp files polled every 10 ms, or the client's last byte", migration: 7, csv: "counters",
  }),
  realOrNull("upload_processing_seconds", {
    doc: "from the end of the transfer to the response: PicoShare storing the upload (\"Processing...\")", unit: "s", phase: "upload",
    source: "a monotonic clock in the harness", migration: 7, csv: "counters",
  }),
  textOrNull<"server" | "client">()("upload_transfer_end", {
    doc: "how the end of the transfer was found: `server` (PicoShare's temp files held every byte), `client` (the last byte handed to the socket); null when the upload failed before it",
    phase: "upload", source: "the harness",
  }),
  realOrNull("upload_body_sent_seconds", {
    doc: "from the request's start until its last byte was handed to the socket: the client's view of the end, kept beside the server's",
    unit: "s", phase: "upload", source: "the harness's upload client", migration: 7,
  }),
  int("concurrency", {
    doc: "uploads of the file started together on as many connections (--concurrency)", phase: "upload", source: "--concurrency", migration: 7, missing: 1,
  }),
  json<number[]>()("upload_durations_seconds", {
    doc: "each upload's seconds from the common start to its response, in start order", unit: "s", phase: "upload",
    source: "a monotonic clock in the harness", missing: [],
  }),
  json<(string | null)[]>()("entry_ids", { doc: "each upload's entry id (null for one that got none), in start order", phase: "upload", source: "the responses", missing: [] }),
  textOrNull()("timeline_file", {
    doc: "the memory timeline beside the result (`timeline-{RAM}MB-{SIZE}-{STAMP}.csv`)", phase: "teardown", source: "the memory monitor", migration: 7,
  }),
  jsonOrNull<Recovery>()("recovery", {
    doc:
      "after `oom_killed`, `timeout` or `process_died`: what a restart on the same data found (integrity_check, the earlier entry, temp files left, " +
      "restart seconds); null otherwise. See [recovery](run-test.md#after-a-failure-recovery)",
    phase: "recovery", source: "PicoShare restarted on the same data dir", migration: 7,
  }),
  jsonOrNull<ProxyFacts>()("proxy", {
    doc:
      "with --proxy nginx: `proxy`, `version`, the `settings` it ran with, `peak_rss_bytes` (master and worker, summed VmHWM) and " +
      "`body_temp_peak_bytes` (the most it held on disk while buffering the request); null without one",
    phase: "upload", source: "the proxy's `/proc/PID/status` and its temp folder", migration: 7,
  }),
] as const;
