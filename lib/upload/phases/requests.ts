// Requests: after the download, with the uploaded file still stored, K
// requests of each kind one after the other (the file list page, the
// entry's info page, a download's first byte), each timed from sending it
// to the last byte of its answer. Only HTTP through the base URL the test
// uses, so it runs alike on every backend. Like the download's, its failure is
// recorded in its fields, not the test's: the test's outcome stays the upload's.
import { median } from "simple-statistics";
import { interruptSignal, interrupted } from "../../core/cleanup.ts";
import { errorMessage } from "../../core/errors.ts";
import { HttpError } from "../api.ts";
import type { RequestPhase } from "../instructions.ts";
import { NO_REQUESTS, type RequestFields } from "../result.ts";
import type { TestOptions } from "../runner.ts";
import type { TestEnvironment } from "../../backends/types.ts";
import { round, secondsSince, type Outcome } from "./common.ts";

/** K when --requests is not given. */
export const DEFAULT_REQUESTS = 20;

export interface RequestsFigures extends Outcome {
  /** The phase's time. */
  seconds: number;
  /** The result's request fields. */
  fields: RequestFields;
}

/** A kind of request: what it asks for, and the answer it must get. */
interface Kind {
  phase: RequestPhase;
  field: "list_page_seconds" | "info_page_seconds" | "download_first_byte_seconds";
  path: (id: string) => string;
  headers?: Record<string, string>;
  status: number;
}

const KINDS: Kind[] = [
  { phase: "list_page", field: "list_page_seconds", path: () => "/files", status: 200 },
  { phase: "info_page", field: "info_page_seconds", path: (id) => `/files/${id}/info`, status: 200 },
  // The download's first byte alone, asked as a range: PicoShare serves it as it starts a whole download (the entry
  // looked up, the download recorded, the first chunk read) and stops there. Not a whole download cut off: the Go
  // server would write into a reset socket, and the SIGPIPE that follows crashes callgrind in the twin.
  { phase: "download_first_byte", field: "download_first_byte_seconds", path: (id) => `/-${id}`, headers: { Range: "bytes=0-0" }, status: 206 },
];

/** K requests of each kind; none with K = 0 (the fields stay null). */
export async function requests(env: TestEnvironment, baseUrl: string, cookie: string, id: string, opts: TestOptions): Promise<RequestsFigures> {
  const t0 = performance.now();
  const k = opts.requests ?? DEFAULT_REQUESTS;
  let fields: RequestFields = NO_REQUESTS;
  if (k === 0) return { seconds: 0, fields, failure: null };
  try {
    const medians: Partial<Record<Kind["field"], number>> = {};
    for (const kind of KINDS) {
      const ask = (what: string) => {
        const signal = AbortSignal.any([AbortSignal.timeout(opts.timeoutSec * 1000), interruptSignal]);
        return timed(`${baseUrl}${kind.path(id)}`, cookie, kind, signal).catch((err) => {
          throw new Error(`${kind.phase.replace(/_/g, " ")} request ${what}: ${errorMessage(err)}`);
        });
      };
      // The twin counts per request what each one costs, not what the first does once (templates, statements prepared).
      if (opts.instrument) await ask("before the counted ones");
      await opts.instrument?.probe.start(kind.phase, env);
      const times: number[] = [];
      for (let i = 0; i < k; i++) times.push(await ask(`${i + 1} of ${k}`));
      await opts.instrument?.probe.stop(kind.phase, env);
      medians[kind.field] = round(median(times), 6);
    }
    fields = { ...NO_REQUESTS, requests_per_kind: k, ...medians };
  } catch (err) {
    if (interrupted()) throw err;
    fields = { ...NO_REQUESTS, requests_error: errorMessage(err) };
  }
  return { seconds: secondsSince(t0), fields, failure: null };
}

/** One request's seconds: from sending it to the last byte of its body, on a kept-alive connection (as a browser's). */
async function timed(url: string, cookie: string, kind: Kind, signal: AbortSignal): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url, { headers: { Cookie: cookie, ...kind.headers }, signal, redirect: "manual" });
  const body = await res.arrayBuffer();
  const seconds = (performance.now() - t0) / 1000;
  if (res.status !== kind.status || body.byteLength === 0) throw new HttpError(res.status, `GET ${new URL(url).pathname} answered HTTP ${res.status}`);
  return seconds;
}
