// Known changes to PicoShare v1.5.4's source, for checking that the harness
// finds what it should (bench-detection, the tests): each is a text
// replacement in one file, refused when the text is not there.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writableCopy } from "../core/files.ts";

export interface SourcePatch {
  name: string;
  /** What the change does, and what it should change in the measurements. */
  description: string;
  /** The metric keys (lib/stats/metrics.ts) the change is expected to move, and which way. */
  expect: { key: string; direction: "higher" | "lower" }[];
  file: string;
  from: string;
  to: string;
}

export const CHUNK_SIZE_PATCH: SourcePatch = {
  name: "chunk-4m",
  description: "SQLite chunk size 320 KiB -> 4 MiB (store/sqlite/sqlite.go defaultChunkSize): more memory per chunk in flight, fewer writes",
  expect: [{ key: "picoshare_peak_rss", direction: "higher" }],
  file: "store/sqlite/sqlite.go",
  from: "defaultChunkSize = uint64(32768 * 10)",
  to: "defaultChunkSize = uint64(32768 * 128)",
};

/** About 0.1 s of CPU per upload request on a 2020s x86 core, whatever the body's size. */
export const CPU_WORK_PATCH: SourcePatch = {
  name: "cpu-work",
  description: "a fixed loop of 10^8 multiply-adds per upload request (handlers/upload.go): more CPU seconds, nothing else",
  expect: [{ key: "cpu_seconds", direction: "higher" }],
  file: "handlers/upload.go",
  from: "\tmultipartMaxMemory := mibToBytes(1)\n",
  to:
    "\tperfBusy := uint64(1)\n" +
    "\tfor i := 0; i < 100000000; i++ {\n\t\tperfBusy = perfBusy*6364136223846793005 + 1442695040888963407\n\t}\n" +
    "\tif perfBusy == 42 {\n\t\tlog.Print(perfBusy)\n\t}\n" +
    "\tmultipartMaxMemory := mibToBytes(1)\n",
};

/** Bytes of a stored chunk per iteration of uploadWorkPatch's loop for 1 % more upload instructions. */
const BYTES_PER_ITERATION_1PCT = 108;

/**
 * About `percent` % more user-space instructions per uploaded MiB: a
 * multiply-add loop of one iteration per 108 / `percent` bytes of each chunk
 * the SQLite writer stores (store/sqlite/file/writer.go flush), so the work
 * grows with the body and nothing else changes. v1.5.4 counts about 6.6-7 M
 * instructions per uploaded MiB; the loop is 7 instructions an iteration,
 * 9709 iterations per MiB at 1 % (measured: docs/benchmarks.md).
 */
export function uploadWorkPatch(percent: number): SourcePatch {
  const bytes = Math.round(BYTES_PER_ITERATION_1PCT / percent);
  return {
    name: `upload-work-${percent}pct`,
    description: `a multiply-add per ${bytes} bytes of each chunk stored (store/sqlite/file/writer.go): about ${percent} % more upload instructions per MiB, nothing else`,
    expect: [{ key: "upload_instructions", direction: "higher" }],
    file: "store/sqlite/file/writer.go",
    from: "func (w *writer) flush(n int) error {\n",
    to:
      "var perfSink uint64\n\n" +
      "func (w *writer) flush(n int) error {\n" +
      `\tperfWork, perfIters := perfSink+1, n/${bytes}\n` +
      "\tfor i := 0; i < perfIters; i++ {\n\t\tperfWork = perfWork*6364136223846793005 + 1442695040888963407\n\t}\n" +
      "\tperfSink = perfWork\n",
  };
}

/** The known change of that kind bench-detection runs: the smallest it should find. */
export const UPLOAD_WORK_PATCH = uploadWorkPatch(1);


/**
 * v1.5.4's list query sums LENGTH(chunk), which SQLite answers from each
 * record's header without reading the blob; LENGTH(HEX(chunk)) / 2 is the
 * same number but reads and converts every stored byte on each list page.
 */
export const LIST_READS_BYTES_PATCH: SourcePatch = {
  name: "list-reads-bytes",
  description: "the file list's size query (store/sqlite/entries.go GetEntriesMetadata) reads every chunk's bytes: a slower list page, the more so the more is stored",
  expect: [{ key: "list_page_seconds", direction: "higher" }],
  file: "store/sqlite/entries.go",
  // The list query's (the info query's has a WHERE after the join).
  from: "\t\t\t\tSUM(LENGTH(chunk)) AS file_size\n\t\t\tFROM\n\t\t\t\tentries_data\n\t\t\tGROUP BY\n\t\t\t\tid\n\t\t) sizes ON entries.id = sizes.id`)",
  to: "\t\t\t\tSUM(LENGTH(HEX(chunk)) / 2) AS file_size\n\t\t\tFROM\n\t\t\t\tentries_data\n\t\t\tGROUP BY\n\t\t\t\tid\n\t\t) sizes ON entries.id = sizes.id`)",
};

/**
 * One SQLite connection for the whole process, with a WAL checkpoint every
 * 10,000 pages instead of SQLite's 1,000. v1.5.4 runs its PRAGMAs through
 * database/sql's pool, so a per-connection setting holds only for whichever
 * connection ran it; with one connection it holds for every statement. Each
 * checkpoint syncs the WAL and the database (mattn/go-sqlite3 already opens
 * every connection at synchronous = NORMAL, so commits themselves do not
 * sync): a tenth of the checkpoints, a tenth of the fsync calls per upload.
 */
export const POOL_SETTINGS_PATCH: SourcePatch = {
  name: "pool-settings",
  description: "one pooled SQLite connection (SetMaxOpenConns(1), idle kept) with wal_autocheckpoint = 10000 pages (store/sqlite/sqlite.go): a WAL checkpoint per ~40 MiB stored instead of ~4 MiB, so fewer fsync calls per upload",
  expect: [{ key: "upload_fsync_calls", direction: "lower" }],
  file: "store/sqlite/sqlite.go",
  from: "\tif _, err := ctx.Exec(`\n\t\tPRAGMA temp_store = FILE;\n\t\tPRAGMA journal_mode = WAL;\n",
  to:
    "\tctx.SetMaxOpenConns(1)\n\tctx.SetMaxIdleConns(1)\n\tctx.SetConnMaxLifetime(0)\n\n" +
    "\tif _, err := ctx.Exec(`\n\t\tPRAGMA temp_store = FILE;\n\t\tPRAGMA journal_mode = WAL;\n\t\tPRAGMA wal_autocheckpoint = 10000;\n",
};

/**
 * An index on the downloads table for the info page's history query
 * (store/sqlite/downloads.go GetEntryDownloads: WHERE entry_id ORDER BY
 * download_timestamp), added to the last migration so that a new database
 * has it. It pays off only with many download rows: in a test the info page
 * sees two (the entry check's GET and the measured download), so the
 * expected answer is "no change larger than the MDE".
 */
export const DOWNLOADS_INDEX_PATCH: SourcePatch = {
  name: "downloads-index",
  description: "an index on downloads (entry_id, download_timestamp) (store/sqlite/migrations/015-convert-to-strict-tables.sql): a faster info page with many downloads recorded; a test has two when its info pages are asked (the entry check's GET and the download), so no change is expected",
  expect: [
    { key: "info_page_seconds", direction: "lower" },
    { key: "info_page_instructions", direction: "lower" },
  ],
  file: "store/sqlite/migrations/015-convert-to-strict-tables.sql",
  from: "CREATE INDEX idx_entries_data_length\nON entries_data (id, length(chunk));\n",
  to: "CREATE INDEX idx_entries_data_length\nON entries_data (id, length(chunk));\n\nCREATE INDEX idx_downloads_entry_id\nON downloads (entry_id, download_timestamp);\n",
};

/** Chunks a download reads per query with DOWNLOAD_BATCH_PATCH. */
const DOWNLOAD_BATCH_CHUNKS = 10;

/**
 * Batched chunk reads: v1.5.4's reader (store/sqlite/file/reader.go
 * populateBuffer) runs one query per 320 KiB chunk; this reads ten per query
 * into one buffer, each chunk copied once from the driver's bytes
 * (sql.RawBytes) instead of twice.
 */
export const DOWNLOAD_BATCH_PATCH: SourcePatch = {
  name: "download-batch",
  description: `a download reads ${DOWNLOAD_BATCH_CHUNKS} chunks per query, each copied once (store/sqlite/file/reader.go populateBuffer): fewer queries and copies per downloaded MiB; a first byte reads ${DOWNLOAD_BATCH_CHUNKS} chunks instead of one`,
  expect: [
    { key: "download_instructions", direction: "lower" },
    { key: "download_first_byte_instructions", direction: "higher" },
  ],
  file: "store/sqlite/file/reader.go",
  from:
    "\tvar chunk []byte\n\tif err := fr.db.QueryRow(`\n\t\t\tSELECT\n\t\t\t\tchunk\n\t\t\tFROM\n\t\t\t\tentries_data\n\t\t\tWHERE\n" +
    "\t\t\t\tid=? AND\n\t\t\t\tchunk_index=?\n\t\t\tORDER BY\n\t\t\t\tchunk_index ASC\n\t\t\t`, fr.entryID, chunkIndex).Scan(&chunk); err != nil {\n" +
    "\t\tlog.Printf(\"reading chunk failed: %v\", err)\n\t\treturn err\n\t}\n",
  to:
    "\trows, err := fr.db.Query(`\n\t\t\tSELECT\n\t\t\t\tchunk\n\t\t\tFROM\n\t\t\t\tentries_data\n\t\t\tWHERE\n" +
    "\t\t\t\tid=? AND\n\t\t\t\tchunk_index>=? AND\n\t\t\t\tchunk_index<?\n\t\t\tORDER BY\n\t\t\t\tchunk_index ASC\n" +
    `\t\t\t\`, fr.entryID, chunkIndex, chunkIndex+${DOWNLOAD_BATCH_CHUNKS})\n` +
    "\tif err != nil {\n\t\tlog.Printf(\"reading chunk failed: %v\", err)\n\t\treturn err\n\t}\n\tdefer rows.Close()\n" +
    "\tvar chunk []byte\n\tfor rows.Next() {\n\t\tvar raw sql.RawBytes\n\t\tif err := rows.Scan(&raw); err != nil {\n" +
    "\t\t\tlog.Printf(\"reading chunk failed: %v\", err)\n\t\t\treturn err\n\t\t}\n" +
    `\t\tif chunk == nil {\n\t\t\tchunk = make([]byte, 0, ${DOWNLOAD_BATCH_CHUNKS}*len(raw))\n\t\t}\n` +
    "\t\tchunk = append(chunk, raw...)\n\t}\n\tif err := rows.Err(); err != nil {\n\t\tlog.Printf(\"reading chunk failed: %v\", err)\n\t\treturn err\n\t}\n" +
    "\tif chunk == nil {\n\t\tlog.Printf(\"reading chunk failed: %v\", sql.ErrNoRows)\n\t\treturn sql.ErrNoRows\n\t}\n",
};

/**
 * The changes of the maintainer's study (docs): one per kind of change,
 * each targeting the metric its `expect` names. Not in KNOWN_PATCHES: each
 * is a build and a cell set more for bench-detection's default run.
 */
export const STUDY_PATCHES: SourcePatch[] = [CHUNK_SIZE_PATCH, POOL_SETTINGS_PATCH, DOWNLOADS_INDEX_PATCH, LIST_READS_BYTES_PATCH, DOWNLOAD_BATCH_PATCH];

export const KNOWN_PATCHES: SourcePatch[] = [CHUNK_SIZE_PATCH, CPU_WORK_PATCH, UPLOAD_WORK_PATCH, LIST_READS_BYTES_PATCH];

/** Applies `patch` to the source tree at `dir`; throws when the file does not have the text to replace. */
export function applyPatch(dir: string, patch: SourcePatch): void {
  const path = join(dir, patch.file);
  const text = readFileSync(path, "utf8");
  if (!text.includes(patch.from)) throw new Error(`patch ${patch.name}: ${patch.file} does not contain ${JSON.stringify(patch.from)}`);
  writeFileSync(path, text.replace(patch.from, patch.to));
}

/** A writable copy of the source at `src` in `dest`, with `patches` applied. */
export function patchedCopy(src: string, dest: string, patches: SourcePatch[]): string {
  writableCopy(src, dest);
  for (const p of patches) applyPatch(dest, p);
  return dest;
}
