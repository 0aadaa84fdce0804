// After a failed upload, was anything lost? A small entry is uploaded before
// the big one; when the big one ends in an OOM kill, a timeout or a dead
// process, PicoShare is started again on the same data dir under the same
// limit, its database (a copy, as the failure left it) is checked with
// PRAGMA integrity_check, and the small entry is read back.
import { Database } from "bun:sqlite";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestEnvironment } from "../backends/types.ts";
import { errorMessage } from "../core/errors.ts";
import { KiB } from "../core/sizes.ts";
import { downloadSha256, uploadFile } from "./api.ts";
import type { ExitReason, Recovery } from "./result.ts";
import { login, waitUntilReady } from "./session.ts";

/** Small enough to cost nothing, large enough to span several SQLite pages and chunks of PicoShare's. */
export const CANARY_BYTES = 64 * KiB;
const CANARY_TIMEOUT_MS = 30_000;

/** The outcomes after which a restart is tried. */
export const RECOVERED_AFTER: ExitReason[] = ["oom_killed", "timeout", "process_died"];

export interface Canary {
  id: string;
  sha256: string;
  bytes: number;
}

/** Uploads the small entry that recovery later reads back; its file lives in `dir` only while it is sent. */
export async function uploadCanary(baseUrl: string, cookie: string, dir: string, signal: AbortSignal): Promise<Canary> {
  const data = randomBytes(CANARY_BYTES);
  const path = join(dir, "canary.bin");
  writeFileSync(path, data);
  try {
    const up = await uploadFile(baseUrl, cookie, path, { signal });
    if (up.status !== 200 || !up.id) throw new Error(`the small entry's upload answered HTTP ${up.status}: ${up.body.trim().slice(0, 200)}`);
    return { id: up.id, sha256: createHash("sha256").update(data).digest("hex"), bytes: data.length };
  } finally {
    rmSync(path, { force: true });
  }
}

/** PRAGMA integrity_check's verdict: "ok", or its first few findings joined. */
export function integrityCheck(dbPath: string): string {
  const db = new Database(dbPath);
  try {
    const rows = db.query("PRAGMA integrity_check(5)").all() as { integrity_check: string }[];
    return rows.map((r) => r.integrity_check).join("; ");
  } finally {
    db.close();
  }
}

/**
 * What a restart on the failed test's data finds. Each step that cannot run
 * leaves its field null and says why in `error`; the later steps still run
 * where they can.
 */
export async function recover(env: TestEnvironment, o: { secret: string; canary: Canary | null; scratch: string }): Promise<Recovery> {
  const rec: Recovery = {
    started: false, integrity_check: null, earlier_entry_intact: null, temp_files_left: null, temp_bytes_left: null,
    restart_seconds: null, error: null,
  };
  const problems: string[] = [];
  try {
    const storage = await env.storage?.();
    if (storage) {
      rec.temp_files_left = storage.facts.temp_files_left;
      rec.temp_bytes_left = storage.tempBytes;
    }
  } catch (err) {
    problems.push(`temp files: ${errorMessage(err)}`);
  }
  if (env.copyDatabase) {
    // A copy: opening the database itself would replay its WAL before PicoShare does.
    const copy = mkdtempSync(join(o.scratch, "db-copy-"));
    try {
      rec.integrity_check = integrityCheck(await env.copyDatabase(copy));
    } catch (err) {
      problems.push(`integrity_check: ${errorMessage(err)}`);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  }
  if (env.restartPicoShare) {
    const t0 = performance.now();
    try {
      const baseUrl = await env.restartPicoShare(o.secret);
      await waitUntilReady(env, baseUrl);
      rec.started = true;
      rec.restart_seconds = Math.round(performance.now() - t0) / 1000;
      if (o.canary) {
        const cookie = await login(baseUrl, o.secret);
        // 64 KiB: seconds are plenty even in a thrashing cgroup; the test's --timeout is for the big file.
        const got = await downloadSha256(baseUrl, cookie, o.canary.id, AbortSignal.timeout(CANARY_TIMEOUT_MS));
        rec.earlier_entry_intact = got.sha256 === o.canary.sha256 && got.bytes === o.canary.bytes;
        if (!rec.earlier_entry_intact) problems.push(`the earlier entry came back as ${got.bytes} bytes with SHA-256 ${got.sha256}`);
      }
    } catch (err) {
      if (rec.started && o.canary) rec.earlier_entry_intact = false;
      problems.push(`restart: ${errorMessage(err)}`);
    }
  }
  rec.error = problems.length > 0 ? problems.join("; ") : null;
  return rec;
}
