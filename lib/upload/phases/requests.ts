// Requests: after the download, with the uploaded file still stored, K
// requests of each kind one after the other (the file list page, the
// entry's info page, a download's first byte), each timed from sending it
// to its last byte (the pages) or to the first byte of its body (the
// download, then aborted). Only HTTP through the base URL the test uses,
// so it runs alike on every backend. Like the download's, its failure is
// recorded in its fields, not the test's: the test's outcome stays the upload's.
import { median } from "simple-statistics";
import { interruptSignal, interrupted } from "../../core/cleanup.ts";
import { errorMessage } from "../../core/errors.ts";
import { HttpError } from "../api.ts";
import type { RequestPhase } from "../instructions.ts";
import { NO_REQUESTS, type RequestFields } from "../result.ts";
import type { TestOptions } from "../runner.ts";
import type { TestEnvironment } from "../../backends/types.ts";
import { attempt, round, secondsSince, type Outcome } from "./common.ts";

/** K when --requests is not given. */
export const DEFAULT_REQUESTS = 20;

export interface RequestsFigures extends Outcome {
  /** The phase's time. */
  seconds: number;
  /** The result's request fields. */
  fields: RequestFields;
}

/** A kind of request: what it asks for, and when its time ends. */
interface Kind {
  phase: RequestPhase;
  field: "list_page_seconds" | "info_page_seconds" | "download_first_byte_seconds";
  path: (id: string) => string;
  /** Reads the answer until the kind's time ends (the last byte, or the first of the body). */
  read: (res: Response) => Promise<void>;
}

const KINDS: Kind[] = [
  { phase: "list_page", field: "list_page_seconds", path: () => "/files", read: async (res) => void (await res.arrayBuffer()) },
  { phase: "info_page", field: "info_page_seconds", path: (id) => `/files/${id}/info`, read: async (res) => void (await res.arrayBuffer()) },
  {
    phase: "download_first_byte",
    field: "download_first_byte_seconds",
    path: (id) => `/-${id}`,
    read: async (res) => {
      const reader = res.body!.getReader();
      // The first chunk with a byte in it: an empty one is not the body's first byte.
      for (let got = await reader.read(); !got.done; got = await reader.read()) if (got.value.length > 0) break;
    },
  },
];

/** K requests of each kind; none with K = 0 (the fields stay null). */
export async function requests(env: TestEnvironment, baseUrl: string, cookie: string, id: string, opts: TestOptions): Promise<RequestsFigures> {
  const t0 = performance.now();
  const k = opts.requests ?? DEFAULT_REQUESTS;
  let fields: RequestFields = NO_REQUESTS;
  if (k === 0) return { seconds: 0, fields, failure: null };
  const failure = await attempt(async () => {
    const medians: Partial<Record<Kind["field"], number>> = {};
    try {
      for (const kind of KINDS) {
        await opts.instrument?.probe.start(kind.phase, env);
        const times: number[] = [];
        for (let i = 0; i < k; i++) times.push(await timed(`${baseUrl}${kind.path(id)}`, cookie, kind, opts.timeoutSec));
        await opts.instrument?.probe.stop(kind.phase, env);
        medians[kind.field] = round(median(times), 6);
      }
      fields = { ...NO_REQUESTS, requests_per_kind: k, ...medians };
    } catch (err) {
      if (interrupted()) throw err;
      fields = { ...NO_REQUESTS, requests_error: errorMessage(err) };
    }
  });
  return { seconds: secondsSince(t0), fields, failure };
}

/** One request's seconds: from sending it to the end of what `kind` reads; the rest of the body is not waited for. */
async function timed(url: string, cookie: string, kind: Kind, timeoutSec: number): Promise<number> {
  const abort = new AbortController();
  const signal = AbortSignal.any([abort.signal, AbortSignal.timeout(timeoutSec * 1000), interruptSignal]);
  const t0 = performance.now();
  const res = await fetch(url, { headers: { Cookie: cookie }, signal, redirect: "manual" });
  if (res.status !== 200 || !res.body) {
    await res.body?.cancel();
    throw new HttpError(res.status, `GET ${new URL(url).pathname} answered HTTP ${res.status}`);
  }
  await kind.read(res);
  const seconds = (performance.now() - t0) / 1000;
  abort.abort();
  return seconds;
}
