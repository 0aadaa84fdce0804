// A comparison as aligned plain-text tables for the terminal.
import type { Comparison } from "../../stats/comparison.ts";
import { formatTable } from "../table.ts";
import { cellTables, methodLine, notes, outcomeTable, primaryTable, sideLine, type TextTable } from "./compare-common.ts";

function block(t: TextTable): string {
  return `${t.title}\n${t.rows.length > 0 ? formatTable(t.header, t.rows, t.align) : "(no cell run by both sides)"}`;
}

export function comparisonText(c: Comparison): string {
  const { warnings, noise, notes: extra } = notes(c);
  const out = [
    "PicoShare comparison: B against A",
    sideLine("A", c.a),
    sideLine("B", c.b),
    "",
    block(primaryTable(c)),
    "",
    ...cellTables(c).flatMap((t) => [block(t), ""]),
    block(outcomeTable(c)),
    "",
    methodLine(c),
  ];
  if (extra.length > 0) out.push(...extra);
  if (warnings.length > 0) out.push("", ...warnings.map((w) => `WARNING: ${w}`));
  if (noise) out.push("", `WARNING: ${noise.intro}`, ...noise.items.map((i) => `  ${i}`), `  ${noise.causes}`);
  return `${out.join("\n")}\n`;
}
