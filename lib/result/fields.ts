// Every field of a test's result, declared once (lib/result/declared/), in
// the order the docs list them. The result record's type, the results
// table's columns and migrations, both CSVs, summary.txt's columns, the cell
// statistics and the metrics compare tests are all made from this list: a
// new number for every test is its measurement plus one entry.
import { BREAKDOWN_FIELDS } from "./declared/breakdown.ts";
import { COUNTER_FIELDS } from "./declared/counters.ts";
import { DOWNLOAD_FIELDS } from "./declared/download.ts";
import { INSTRUCTION_FIELDS } from "./declared/instructions.ts";
import { PROVENANCE_FIELDS } from "./declared/provenance.ts";
import { RECORD_FIELDS } from "./declared/record.ts";
import { REQUEST_FIELDS } from "./declared/requests.ts";
import { SETTLE_FIELDS } from "./declared/settle.ts";
import { SYSCALL_FIELDS } from "./declared/syscalls.ts";
import { TEST_FIELDS } from "./declared/test.ts";
import type { CellSpec, Defaulted, Field, RecordOf, SummarySpec, ValueOf } from "./field.ts";

export const FIELDS = [
  ...TEST_FIELDS,
  ...PROVENANCE_FIELDS,
  ...SETTLE_FIELDS,
  ...RECORD_FIELDS,
  ...COUNTER_FIELDS,
  ...SYSCALL_FIELDS,
  ...DOWNLOAD_FIELDS,
  ...REQUEST_FIELDS,
  ...BREAKDOWN_FIELDS,
  ...INSTRUCTION_FIELDS,
] as const;

type Declared = (typeof FIELDS)[number];

/** One test's result as run-test writes it (JSON), the results log stores it and every report reads it. */
export type TestResult = RecordOf<typeof FIELDS>;
export type FieldName = keyof TestResult;

/** System calls by kind during the upload and the download. */
export type SyscallFields = RecordOf<typeof SYSCALL_FIELDS>;
/** The measured download after the upload. */
export type DownloadFields = RecordOf<typeof DOWNLOAD_FIELDS>;
/** The requests phase's figures (the instructions per request are the twin's). */
export type RequestFields = RecordOf<typeof REQUEST_FIELDS>;
/** Where the upload's time went, uploads at once, recovery, proxy. */
export type UploadBreakdown = RecordOf<typeof BREAKDOWN_FIELDS>;
/** Instructions counted in the test's instrumented twin (--count-instructions). */
export type InstructionFields = RecordOf<typeof INSTRUCTION_FIELDS>;

/** The fields with summary.txt columns, the per-cell statistics, and their names as types. */
export type SummaryField = Extract<Declared, { summary: SummarySpec }>;
export type CellField = Extract<Declared, { cell: CellSpec }>;
export type CellMetric = CellField["name"];

/** What a backend's storage reading gives: the fields declared as read with it. */
type StorageField = Extract<Declared, { reading: "storage" }>;
export type StorageFacts = { [F in StorageField as F["name"]]: NonNullable<ValueOf<F>> };
/** The storage fields of a result where nothing was read. */
export const NO_STORAGE = Object.fromEntries(
  (FIELDS as readonly Field[]).filter((f) => f.reading === "storage").map((f) => [f.name, null]),
) as { [K in keyof StorageFacts]: null };

/** A declared field by name. */
export function field(name: string): Field {
  const f = (FIELDS as readonly Field[]).find((x) => x.name === name);
  if (!f) throw new Error(`no result field "${name}"`);
  return f;
}

/** The values records written before a field existed have for it. */
function missingOf<L extends readonly Field[]>(fields: L): RecordOf<L> {
  return Object.fromEntries(fields.filter((f) => "missing" in f).map((f) => [f.name, f.missing])) as RecordOf<L>;
}

/** Every field's value for a record that has none of it (null, or what the declaration names): a base for building records. */
export const NO_VALUES = missingOf(FIELDS) as { [F in Defaulted<typeof FIELDS> as F["name"]]: ValueOf<F> };

export const NO_DOWNLOAD: DownloadFields = missingOf(DOWNLOAD_FIELDS);
export const NO_REQUESTS: RequestFields = missingOf(REQUEST_FIELDS);
export const NO_INSTRUCTIONS: InstructionFields = missingOf(INSTRUCTION_FIELDS);

/**
 * A stored result (a JSON file, raw_json) as today's record: a field added
 * after it was written gets the value declared for older records.
 */
export function readResult(raw: unknown): TestResult {
  const r = { ...(raw as Record<string, unknown>) };
  for (const f of FIELDS as readonly Field[]) {
    if (r[f.name] === undefined && "missing" in f) r[f.name] = f.missing;
  }
  return r as TestResult;
}

/** The fields summary.txt shows, in its column order. */
export const SUMMARY_FIELDS = (FIELDS as readonly Field[]).filter((f): f is Field & { summary: SummarySpec } => f.summary !== undefined);

/** The fields with per-cell statistics, in the order run-test's block shows them. */
export const CELL_FIELDS = (FIELDS as readonly Field[]).filter((f): f is Field & { cell: CellSpec } => f.cell !== undefined);
export const CELL_METRICS = CELL_FIELDS.map((f) => f.name as CellMetric);
