// PicoShare's HTTP API as the tests use it: auth, a streamed multipart
// upload, and reading an entry back.
import { createHash } from "node:crypto";
import { postFileMultipart } from "./http-upload.ts";

// Entries must carry an expiration in v1.5.4; far enough never to matter.
const EXPIRATION = "2040-01-01T00:00:00Z";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Any HTTP answer at all means the server is up. */
export async function ping(baseUrl: string, signal?: AbortSignal): Promise<void> {
  const res = await fetch(`${baseUrl}/`, { signal, redirect: "manual" });
  await res.body?.cancel();
}

/** Logs in with the shared secret; resolves with the session cookie to send. */
export async function authenticate(baseUrl: string, secret: string, signal?: AbortSignal): Promise<string> {
  const res = await fetch(`${baseUrl}/api/auth`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sharedSecretKey: secret }),
    signal,
  });
  await res.body?.cancel();
  if (res.status !== 200) throw new HttpError(res.status, `auth answered HTTP ${res.status}`);
  const cookie = res.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  if (!cookie) throw new Error("auth answered 200 but set no session cookie");
  return cookie;
}

export interface UploadResult {
  status: number;
  body: string;
  /** The entry id, when the server answered 200 with one. */
  id: string | null;
  /** Bytes of the file the server read from us. */
  sentBytes: number;
  /** performance.now() when the last byte of the request was handed to the socket; null when it never was. */
  bodySentAt: number | null;
}

/** Uploads a file as the multipart field `file`, streamed from disk (see http-upload.ts). */
export async function uploadFile(
  baseUrl: string,
  cookie: string,
  path: string,
  opts: { signal?: AbortSignal; onProgress?: (sentBytes: number) => void } = {},
): Promise<UploadResult> {
  const res = await postFileMultipart(`${baseUrl}/api/entry?expiration=${EXPIRATION}`, { Cookie: cookie }, path, opts);
  let id: string | null = null;
  if (res.status === 200) {
    try {
      id = (JSON.parse(res.body) as { id?: string }).id ?? null;
    } catch {
      id = null;
    }
  }
  return { status: res.status, body: res.body, id, sentBytes: res.sentBytes, bodySentAt: res.bodySentAt };
}

/** The length PicoShare declares for an entry (headers only; the body is not read). */
export async function entryLength(baseUrl: string, cookie: string, id: string, signal?: AbortSignal): Promise<number | null> {
  const res = await fetch(`${baseUrl}/-${id}`, { headers: { Cookie: cookie }, signal });
  await res.body?.cancel();
  if (res.status !== 200) return null;
  const len = res.headers.get("content-length");
  return len === null ? null : Number(len);
}

/** Downloads an entry and returns its SHA-256 and length, streamed. */
export async function downloadSha256(
  baseUrl: string,
  cookie: string,
  id: string,
  signal?: AbortSignal,
): Promise<{ sha256: string; bytes: number }> {
  const res = await fetch(`${baseUrl}/-${id}`, { headers: { Cookie: cookie }, signal });
  if (res.status !== 200 || !res.body) throw new HttpError(res.status, `download answered HTTP ${res.status}`);
  const h = createHash("sha256");
  let bytes = 0;
  for await (const chunk of res.body) {
    h.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: h.digest("hex"), bytes };
}
