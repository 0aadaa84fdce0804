// Shared by the matrix tests: small test files made by the generator, a fresh
// results and work folder per case, and readers for what a matrix leaves.
import { expect } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { resolvePicoShare } from "../../lib/upload/picoshare.ts";
import { runScript } from "./run.ts";
import { alive, cgroupPids, testCgroups } from "./cgroups.ts";

export interface Fixture {
  root: string;
  files: string;
  picoshare: string;
}

/** A temp root with the test files `sizes` made by generate-test-files. */
export async function makeFixture(name: string, sizes: string[]): Promise<Fixture> {
  const picoshare = (await resolvePicoShare()).path;
  const root = mkdtempSync(join(tmpdir(), `${name}-`));
  const files = join(root, "files");
  const ran = await runScript("generate-test-files", ["--sizes", sizes.join(","), "--dir", files]);
  if (ran.code !== 0) throw new Error(`generate-test-files failed: ${ran.stderr}`);
  return { root, files, picoshare };
}

export interface Case {
  base: string;
  results: string;
  work: string;
}

export function newCase(f: Fixture): Case {
  const base = mkdtempSync(join(f.root, "case-"));
  const results = join(base, "results");
  const work = join(base, "work");
  mkdirSync(work);
  return { base, results, work };
}

export function matrixArgs(f: Fixture, c: Case, ...extra: string[]): string[] {
  return ["--test-files", f.files, "--results-dir", c.results, "--work-dir", c.work, "--picoshare", f.picoshare, ...extra];
}

/** The matrix folders in a results dir. */
export function matrixDirs(results: string): string[] {
  return existsSync(results) ? readdirSync(results).filter((n) => n.startsWith("matrix-")).map((n) => join(results, n)) : [];
}

/** A minimal RFC 4180 reader: quoted fields, doubled quotes, commas and line breaks inside quotes. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else if (ch !== "\r") field += ch;
  }
  if (field !== "" || row.length > 0) rows.push([...row, field]);
  return rows;
}

export const CSV_HEADER = "ram_mb,file_size,duration_seconds,throughput_mbps,peak_memory_mb,http_status,exit_reason,success,result_file";

/** The CSV as objects keyed by the header. */
export function readCsv(dir: string): Record<string, string>[] {
  const [header, ...rows] = parseCsv(readFileSync(join(dir, "matrix-results.csv"), "utf8"));
  return rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
}

export function query<T = any>(dbPath: string, sql: string, ...params: any[]): T[] {
  const db = new Database(dbPath, { readonly: true });
  try {
    return db.query(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

/** run-test pids a matrix started, from the lines it writes into each test log. */
export function childPids(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync(dir).filter((n) => /^test-.*\.log$/.test(n))) {
    for (const m of readFileSync(join(dir, name), "utf8").matchAll(/run-test \(pid (\d+)\)/g)) pids.push(Number(m[1]));
  }
  return pids;
}

/** What the matrix's run-test processes left running or in the cgroup tree: nothing, if all is well. */
export function leftovers(dir: string, work: string): string[] {
  const found: string[] = [];
  for (const pid of childPids(dir)) {
    if (alive(pid)) found.push(`run-test ${pid} still running`);
    for (const cg of testCgroups(pid)) found.push(`cgroup ${cg} (pids ${cgroupPids(cg).join(" ")})`);
  }
  for (const name of readdirSync(work)) found.push(`work dir entry ${name}`);
  return found;
}

/** Each of `lines` occurs in `text`, in this order. */
export function expectInOrder(text: string, lines: string[]): void {
  let at = -1;
  for (const line of lines) {
    const i = text.indexOf(line, at + 1);
    expect({ line, found: i > at }).toEqual({ line, found: true });
    at = i;
  }
}
