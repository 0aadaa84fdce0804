// A comparison as aligned plain-text tables for the terminal.
import type { Comparison } from "../../stats/comparison.ts";
import { formatTable } from "../table.ts";
import { functionTables } from "./compare-functions.ts";
import { cellTables, methodLine, notes, outcomeTable, primaryTable, sideLine, type Notes, type TextTable } from "./compare-common.ts";

function block(t: TextTable): string {
  return `${t.title}\n${t.rows.length > 0 ? formatTable(t.header, t.rows, t.align) : "(no cell run by both sides)"}`;
}

/** The lines under the tables: the notes, then the warnings, then the scatter warning. */
export function notesText(n: Notes): string[] {
  const out = [...n.notes];
  if (n.warnings.length > 0) out.push("", ...n.warnings.map((w) => `WARNING: ${w}`));
  if (n.noise) out.push("", `WARNING: ${n.noise.intro}`, ...n.noise.items.map((i) => `  ${i}`), `  ${n.noise.causes}`);
  return out;
}

export function comparisonText(c: Comparison): string {
  const where = functionTables(c);
  const out = [
    "PicoShare comparison: B against A",
    sideLine("A", c.a),
    sideLine("B", c.b),
    "",
    block(primaryTable(c)),
    "",
    ...cellTables(c).flatMap((t) => [block(t), ""]),
    ...where.tables.flatMap((t) => [block(t), ""]),
    ...(where.missing.length > 0 ? [...where.missing, ""] : []),
    block(outcomeTable(c)),
    "",
    methodLine(c),
    ...notesText(notes(c)),
  ];
  return `${out.join("\n")}\n`;
}
