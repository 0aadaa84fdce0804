// The results-field reference in docs/result-fields.md, made from the
// declared fields: written by `bun scripts/result-fields.ts --write`, and
// checked against the list by test/result-fields.test.ts.
import { join } from "node:path";
import { ROOT } from "../core/paths.ts";
import { FIELDS } from "./fields.ts";
import { sqlColumn, type Field } from "./field.ts";

/** The page that holds the reference. */
export const REFERENCE_PAGE = join(ROOT, "docs", "result-fields.md");

export const REFERENCE_START = "<!-- result-fields:start -->";
export const REFERENCE_END = "<!-- result-fields:end -->";

function typeOf(f: Field): string {
  const base = f.kind === "json" ? (Array.isArray(f.missing) ? "list" : "record") : f.kind;
  return f.nullable ? `${base} or null` : base;
}

/** Where the field goes besides the JSON: its column (and migration), the CSVs, summary.txt, the cell statistics, compare. */
function uses(f: Field): string {
  const out: string[] = [];
  if (f.migration !== undefined) out.push(`\`${sqlColumn(f)}\` (v${f.migration})`);
  if (f.csv) out.push(f.csv === "matrix" ? "matrix CSV" : "counters CSV");
  if (f.summary) out.push("summary.txt");
  if (f.cell) out.push("cell statistics");
  if (f.compare) out.push(`compared: \`${f.compare.key}\` (${f.compare.family}, ${f.compare.higherIsBetter ? "higher" : "lower"} is better)`);
  if (f.shown) out.push(`shown by compare: \`${f.shown.key}\``);
  return out.join("; ");
}

const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ");

/** The markdown table, one row per field in the declared order. */
export function referenceTable(): string {
  const rows = (FIELDS as readonly Field[]).map((f) =>
    `| \`${f.name}\` | ${typeOf(f)} | ${f.unit || "-"} | ${f.phase} | ${cell(f.source)} | ${cell(f.doc)} | ${uses(f) || "-"} |`,
  );
  return [
    "| field | type | unit | phase | measured by | meaning | also in (SQL column and the schema version that added it) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}

/** `page` with the text between the markers replaced by the table. */
export function withReference(page: string): string {
  const start = page.indexOf(REFERENCE_START);
  const end = page.indexOf(REFERENCE_END);
  if (start < 0 || end < start) throw new Error(`the page has no ${REFERENCE_START} ... ${REFERENCE_END} markers`);
  return `${page.slice(0, start + REFERENCE_START.length)}\n\n${referenceTable()}\n\n${page.slice(end)}`;
}
