// The documentation's links: every relative link in README.md and docs/*.md
// names a file that exists, and an #anchor into a markdown file names one of
// its headings (by GitHub's slug rules); README.md stays a front door.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { ROOT } from "../lib/core/paths.ts";

/** README.md's most lines; the rest belongs in docs/. */
const README_MAX_LINES = 330;

const PAGES = [
  join(ROOT, "README.md"),
  ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => join(ROOT, "docs", f)),
];

/** The page's lines outside fenced code blocks (a `#` there is a shell comment, not a heading). */
function prose(text: string): string[] {
  const out: string[] = [];
  let fence: string | null = null;
  for (const line of text.split("\n")) {
    const m = /^\s*(```+|~~~+)/.exec(line);
    if (m) {
      if (fence === null) fence = m[1][0];
      else if (m[1][0] === fence) fence = null;
      continue;
    }
    if (fence === null) out.push(line);
  }
  return out;
}

/** GitHub's anchor for a heading: markup dropped, lower case, punctuation but `-` and `_` removed, spaces to `-`. */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // a link keeps its text
    .replace(/<[^>]+>/g, "") // inline HTML
    .replace(/[`*]/g, ""); // code and emphasis marks
  return text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "").replace(/ /g, "-");
}

/** Every anchor a page offers: its headings' slugs, a repeated one numbered -1, -2... as GitHub does. */
function anchors(path: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of prose(readFileSync(path, "utf8"))) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slug(m[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** The relative link targets on a page (code spans and blocks left out: their brackets are not links). */
function links(path: string): string[] {
  const out: string[] = [];
  for (const line of prose(readFileSync(path, "utf8"))) {
    const text = line.replace(/`[^`]*`/g, "");
    for (const m of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
      out.push(target);
    }
  }
  return out;
}

/** What is wrong with one link from `page`, or null when it leads somewhere. */
function brokenLink(page: string, target: string): string | null {
  const [file, anchor] = target.split("#", 2) as [string, string | undefined];
  const dest = file === "" ? page : resolve(dirname(page), decodeURIComponent(file));
  if (!existsSync(dest)) return `no file ${relative(ROOT, dest)}`;
  if (anchor === undefined) return null;
  if (!dest.endsWith(".md") || statSync(dest).isDirectory()) return null;
  return anchors(dest).has(anchor) ? null : `no heading #${anchor} in ${relative(ROOT, dest)}`;
}

describe("documentation links", () => {
  test("the pages are there: README.md and docs/*.md", () => {
    expect(PAGES.length).toBeGreaterThan(5);
  });

  for (const page of PAGES) {
    test(`${relative(ROOT, page)}: every relative link leads to a file and heading that exist`, () => {
      const broken = links(page)
        .map((target) => [target, brokenLink(page, target)] as const)
        .filter(([, why]) => why !== null)
        .map(([target, why]) => `${target}: ${why}`);
      expect(broken).toEqual([]);
    });
  }

  test("every docs page is linked from README.md", () => {
    const linked = new Set(
      links(join(ROOT, "README.md")).map((t) => resolve(ROOT, t.split("#")[0])),
    );
    const unlinked = PAGES.filter((p) => p !== join(ROOT, "README.md") && !linked.has(p)).map((p) => relative(ROOT, p));
    expect(unlinked).toEqual([]);
  });

  test(`README.md has at most ${README_MAX_LINES} lines`, () => {
    const text = readFileSync(join(ROOT, "README.md"), "utf8");
    const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
    expect(lines).toBeLessThanOrEqual(README_MAX_LINES);
  });
});

describe("slug: GitHub's heading anchors", () => {
  const cases: [string, string][] = [
    ["Parallel uploads: --concurrency", "parallel-uploads---concurrency"],
    ["Where the upload's time goes", "where-the-uploads-time-goes"],
    ["Outcomes (`exit_reason`)", "outcomes-exit_reason"],
    ["More than one host: shards, merge, the drift sentinel", "more-than-one-host-shards-merge-the-drift-sentinel"],
    ["Report: report", "report-report"],
  ];
  for (const [heading, anchor] of cases) {
    test(`${heading} -> #${anchor}`, () => expect(slug(heading)).toBe(anchor));
  }
});
