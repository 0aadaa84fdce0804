// A comparison as GitHub-flavoured Markdown, ready to paste into a pull request.
import type { Comparison } from "../../stats/comparison.ts";
import { functionTables } from "./compare-functions.ts";
import { cellTables, methodLine, notes, outcomeTable, primaryTable, sideLine, type Notes, type TextTable } from "./compare-common.ts";

/** A cell's text made safe inside a Markdown table. */
function cell(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/\n/g, " ");
}

export function markdownTable(t: Pick<TextTable, "header" | "rows" | "align">): string {
  const line = (cells: string[]) => `| ${cells.map(cell).join(" | ")} |`;
  const rule = `|${t.align.map((a) => (a === "right" ? " ---: " : " --- ")).join("|")}|`;
  return [line(t.header), rule, ...t.rows.map(line)].join("\n");
}

function section(t: TextTable): string {
  return `**${t.title}**\n\n${t.rows.length > 0 ? markdownTable(t) : "_No cell was run by both sides._"}`;
}

/** The warnings as quoted blocks, for the top: a reviewer reads them before the tables. */
export function warningsMarkdown(n: Notes): string[] {
  const out: string[] = [];
  for (const w of n.warnings) out.push(`> **Warning:** ${w}`, "");
  if (n.noise) {
    out.push(`> **Warning:** ${n.noise.intro}`, ">", ...n.noise.items.map((i) => `> - ${i}`), ">", `> ${n.noise.causes}`, "");
  }
  return out;
}

/** The method and the notes, in small print at the end. */
export function methodMarkdown(method: string, n: Notes): string {
  return `<sub>${method}${n.notes.length > 0 ? ` ${n.notes.join(" ")}` : ""}</sub>`;
}

export function comparisonMarkdown(c: Comparison): string {
  const n = notes(c);
  const out = [
    "### PicoShare comparison: B against A",
    "",
    `- ${cell(sideLine("A", c.a))}`,
    `- ${cell(sideLine("B", c.b))}`,
    "",
  ];
  out.push(...warningsMarkdown(n));
  out.push(section(primaryTable(c)), "");
  // Every metric per cell, folded: the primary table above is what a review reads first.
  for (const t of cellTables(c)) out.push(`<details><summary>${cell(t.title)}</summary>`, "", markdownTable(t), "", "</details>", "");
  const where = functionTables(c);
  for (const t of where.tables) out.push(section(t), "");
  for (const line of where.missing) out.push(`- ${cell(line)}`, "");
  out.push(section(outcomeTable(c)), "");
  out.push(methodMarkdown(methodLine(c), n));
  return `${out.join("\n")}\n`;
}
