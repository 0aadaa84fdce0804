// A comparison as GitHub-flavoured Markdown, ready to paste into a pull request.
import type { Comparison } from "../../stats/comparison.ts";
import { cellTables, methodLine, notes, outcomeTable, primaryTable, sideLine, type TextTable } from "./compare-common.ts";

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

export function comparisonMarkdown(c: Comparison): string {
  const { warnings, noise, notes: extra } = notes(c);
  const out = [
    "### PicoShare comparison: B against A",
    "",
    `- ${cell(sideLine("A", c.a))}`,
    `- ${cell(sideLine("B", c.b))}`,
    "",
  ];
  for (const w of warnings) out.push(`> **Warning:** ${w}`, "");
  if (noise) {
    out.push(`> **Warning:** ${noise.intro}`, ">", ...noise.items.map((i) => `> - ${i}`), ">", `> ${noise.causes}`, "");
  }
  out.push(section(primaryTable(c)), "");
  // Every metric per cell, folded: the primary table above is what a review reads first.
  for (const t of cellTables(c)) out.push(`<details><summary>${cell(t.title)}</summary>`, "", markdownTable(t), "", "</details>", "");
  out.push(section(outcomeTable(c)), "");
  out.push(`<sub>${methodLine(c)}${extra.length > 0 ? ` ${extra.join(" ")}` : ""}</sub>`);
  return `${out.join("\n")}\n`;
}
