// The report page: one self-contained HTML file. Styles are inline, charts
// are inline SVG, nothing is fetched (no script, font, image or stylesheet
// from anywhere), so it opens the same offline, attached to an issue or
// copied off a CI machine.

export function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

export interface HtmlTable {
  header: string[];
  rows: string[][];
  /** Per column: right-aligned (numbers) or not. */
  numeric?: boolean[];
}

export function tableHtml(t: HtmlTable, caption?: string): string {
  const cls = (i: number) => (t.numeric?.[i] ? ' class="num"' : "");
  return [
    "<table>",
    caption ? `<caption>${escapeHtml(caption)}</caption>` : "",
    `<thead><tr>${t.header.map((h, i) => `<th${cls(i)}>${escapeHtml(h)}</th>`).join("")}</tr></thead>`,
    `<tbody>${t.rows.map((r) => `<tr>${r.map((c, i) => `<td${cls(i)}>${escapeHtml(c)}</td>`).join("")}</tr>`).join("")}</tbody>`,
    "</table>",
  ].join("");
}

/** A definition list of facts. */
export function factsHtml(facts: [string, string][]): string {
  return `<dl class="facts">${facts.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join("")}</dl>`;
}

export function warningsHtml(warnings: string[]): string {
  return warnings.map((w) => `<p class="warning"><strong>Warning:</strong> ${escapeHtml(w)}</p>`).join("");
}

/** A warning with a list: an intro sentence, one item per line, and a closing sentence. */
export function listWarningHtml(intro: string, items: string[], closing: string): string {
  return (
    `<div class="warning"><p><strong>Warning:</strong> ${escapeHtml(intro)}</p>` +
    `<ul>${items.map((i) => `<li>${escapeHtml(i)}</li>`).join("")}</ul><p>${escapeHtml(closing)}</p></div>`
  );
}

/** A table that scrolls sideways on a narrow window instead of overflowing the page. */
export function scrollHtml(inner: string): string {
  return `<div class="scroll">${inner}</div>`;
}

export function notesHtml(notes: string[]): string {
  return notes.map((n) => `<p class="note">${escapeHtml(n)}</p>`).join("");
}

/** A chart: the SVG markup as Vega rendered it, in a figure with a name the tests can find. */
export function chartHtml(name: string, svg: string, caption: string): string {
  return `<figure class="chart" data-chart="${escapeHtml(name)}">${svg}<figcaption>${escapeHtml(caption)}</figcaption></figure>`;
}

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; margin: 2rem auto; max-width: 1400px; padding: 0 1.5rem; color: #222; background: #fff; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.3rem; margin-top: 2.5rem; border-bottom: 1px solid #ddd; padding-bottom: 0.3rem; }
h3 { font-size: 1.05rem; margin-top: 1.5rem; }
.sub { color: #666; margin-top: 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1rem; font-size: 0.9rem; }
dl.facts dt { color: #666; }
dl.facts dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; word-break: break-all; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
figure.chart { margin: 0; }
figure.chart figcaption { font-size: 0.8rem; color: #555; max-width: 560px; margin: 0.2rem 0 0 0.4rem; }
figure.chart svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.8rem 0; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 0.25rem 0.6rem; text-align: left; white-space: nowrap; }
th { background: #f6f6f6; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
p.warning, div.warning { background: #fff4e5; border-left: 4px solid #f0a020; padding: 0.5rem 0.8rem; font-size: 0.9rem; }
div.warning p { margin: 0.3rem 0; }
div.warning ul { margin: 0.3rem 0; padding-left: 1.4rem; }
div.scroll { overflow-x: auto; }
p.note { color: #555; font-size: 0.85rem; }
footer { margin-top: 3rem; color: #888; font-size: 0.8rem; }
`;

export function pageHtml(title: string, subtitle: string, body: string, footer: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="sub">${escapeHtml(subtitle)}</p>
${body}
<footer>${escapeHtml(footer)}</footer>
</body>
</html>
`;
}
