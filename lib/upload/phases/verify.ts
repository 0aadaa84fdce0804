// Verify: every upload's entry is on the server with the file's length
// (entry_missing otherwise), and with --verify the download is the file,
// byte for byte (corrupt otherwise).
import { interruptSignal } from "../../core/cleanup.ts";
import { fileSha256 } from "../../core/files.ts";
import { downloadSha256, entryLength, type UploadResult } from "../api.ts";
import type { TestOptions } from "../runner.ts";
import type { DownloadFigures } from "./download.ts";
import { Failure, attempt, secondsSince, type Outcome } from "./common.ts";

export interface VerifyFigures extends Outcome {
  seconds: number;
  /** true/false when --verify compared the download with the file; null when it did not get that far. */
  verified: boolean | null;
}

/** Each entry the uploads made is on the server, whole; the first upload's is looked at last. */
export async function checkEntries(baseUrl: string, cookie: string, uploads: (UploadResult | null)[], opts: TestOptions): Promise<Outcome> {
  const failure = await attempt(async () => {
    for (const up of [...uploads.slice(1), uploads[0]]) {
      const id = up!.id!;
      const len = await entryLength(baseUrl, cookie, id, AbortSignal.timeout(30_000));
      if (len !== opts.size.bytes) {
        throw new Failure("entry_missing", `entry ${id} is not on the server with ${opts.size.bytes} bytes (GET /-${id} says ${len ?? "not found"})`);
      }
    }
  });
  return { failure };
}

/** The measured download's hash when there was one (a download of its own otherwise) against the file's. */
export async function verify(baseUrl: string, cookie: string, id: string, download: DownloadFigures | null, opts: TestOptions): Promise<VerifyFigures> {
  const t0 = performance.now();
  let verified: boolean | null = null;
  const failure = await attempt(async () => {
    const d = download?.fields;
    if (d && d.download_exit_reason !== null && d.download_exit_reason !== "success") {
      throw new Failure(d.download_exit_reason, `--verify could not read the entry back: ${d.download_error}`);
    }
    const signal = AbortSignal.any([AbortSignal.timeout(opts.timeoutSec * 1000), interruptSignal]);
    const [down, want] = await Promise.all([
      download && download.sha256 !== null ? { sha256: download.sha256, bytes: download.bytes } : downloadSha256(baseUrl, cookie, id, signal),
      fileSha256(opts.filePath),
    ]);
    verified = down.sha256 === want && down.bytes === opts.size.bytes;
    if (!verified) throw new Failure("corrupt", `downloaded entry differs from ${opts.filePath} (SHA-256 ${down.sha256}, ${down.bytes} bytes; expected ${want})`);
  });
  return { seconds: secondsSince(t0), verified, failure };
}
