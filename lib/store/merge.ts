// Shards of one matrix, each measured on its own host into its own results
// log, merged into one logical run: refused when two shards measured the same
// cell, when their options or PicoShare builds differ, or when they are not
// shards of one split. Each result keeps its own host facts; the merged run
// lists which host ran which shard.
import { existsSync } from "node:fs";
import { UsageError } from "../core/errors.ts";
import { displayPath } from "../core/paths.ts";
import { cellKeyOf, cellName, errorCell } from "../stats/cells.ts";
import { ResultsDb, type HarnessErrorRow, type RunRow } from "./results-db.ts";
import type { TestResult } from "../upload/result.ts";
import type { Shard } from "../matrix/shard.ts";

interface Source {
  path: string;
  run: RunRow;
  options: Record<string, unknown> & { shard?: Shard };
  host: { hostname?: string } & Record<string, unknown>;
  results: { result: TestResult; file: string | null }[];
  errors: HarnessErrorRow[];
}

/** Options that may differ between shards: where each wrote, and the shard itself. */
const PER_SHARD = new Set(["shard", "work_dir", "test_files", "dir", "results_dir"]);

function comparable(o: Record<string, unknown>): string {
  const picoshare = o.picoshare as { sha256?: string } | undefined;
  const kept = Object.entries(o).filter(([k]) => !PER_SHARD.has(k) && k !== "picoshare");
  return JSON.stringify({ ...Object.fromEntries(kept.sort(([a], [b]) => (a < b ? -1 : 1))), picoshare: picoshare?.sha256 ?? null });
}

/** "DB" (its one matrix run) or "DB:RUN". */
function readSource(spec: string): Source {
  const m = /^(.*):([1-9][0-9]*)$/.exec(spec);
  const path = m ? m[1] : spec;
  if (!existsSync(path)) throw new UsageError(`merge: no results log at ${displayPath(path)}`);
  const db = ResultsDb.open(path);
  try {
    const runs = db.listRuns(1_000_000).filter((r) => (m ? r.id === Number(m[2]) : r.kind === "matrix"));
    if (runs.length !== 1) {
      throw new UsageError(
        m ? `merge: run ${m[2]} is not in ${displayPath(path)}` : `merge: ${displayPath(path)} holds ${runs.length} matrix runs, not one: name the shard's run as ${displayPath(path)}:RUN`,
      );
    }
    const run = runs[0];
    if (run.kind !== "matrix") throw new UsageError(`merge: run ${run.id} of ${displayPath(path)} is a ${run.kind} run, not a matrix shard`);
    return {
      path, run, options: JSON.parse(run.options_json), host: JSON.parse(run.host_json),
      results: db.results(run.id).map((r) => ({ result: JSON.parse(r.raw_json) as TestResult, file: r.result_file })),
      errors: db.harnessErrors(run.id),
    };
  } finally {
    db.close();
  }
}

/** One shard of a merged run, as the run's options.merged_from lists it (with its host facts there too). */
export interface MergedShard {
  path: string;
  run_id: number;
  shard: Shard | null;
  hostname: string | null;
  cells: string[];
}

export interface MergeOutcome {
  runId: number;
  shards: MergedShard[];
  missing: number[];
}

/** Merges the shards' runs into a new run of `into`; nothing is written when a check refuses. */
export function mergeShards(specs: string[], into: string): MergeOutcome {
  if (specs.length < 2) throw new UsageError("merge needs at least two results logs (the shards), e.g. merge a.db b.db --into all.db");
  const sources = specs.map(readSource);
  const first = sources[0];
  for (const s of sources.slice(1)) {
    if (comparable(s.options) !== comparable(first.options)) {
      throw new UsageError(`merge: ${displayPath(s.path)} ran with other options or another PicoShare build than ${displayPath(first.path)}: only shards of one matrix merge`);
    }
    if (s.run.backend !== first.run.backend) throw new UsageError(`merge: ${displayPath(s.path)} used the ${s.run.backend} backend, ${displayPath(first.path)} ${first.run.backend}`);
  }
  const counts = new Set(sources.map((s) => s.options.shard?.count ?? 0));
  if (counts.size !== 1 || counts.has(0)) {
    throw new UsageError("merge: every log must be a shard of the same split (run-test-matrix --shard I/N with one N); an unsharded run measured every cell already");
  }
  const owner = new Map<string, string>();
  const cellsOf = (s: Source) => [...new Set([...s.results.map((r) => cellKeyOf(r.result)), ...s.errors.map((e) => cellKeyOf(errorCell(e)))])];
  for (const s of sources) {
    for (const key of cellsOf(s)) {
      const other = owner.get(key);
      if (other) {
        const r = s.results.find((x) => cellKeyOf(x.result) === key)?.result;
        const name = r ? cellName(r) : key;
        throw new UsageError(`merge: ${name} was measured by both ${other} and ${displayPath(s.path)}: a cell must come from one host`);
      }
      owner.set(key, displayPath(s.path));
    }
  }
  const count = [...counts][0];
  const present = new Set(sources.map((s) => s.options.shard!.index));
  if (present.size !== sources.length) throw new UsageError("merge: two logs are the same shard");
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !present.has(i));

  const shards = sources.map((s) => ({
    path: s.path, run_id: s.run.id, shard: s.options.shard ?? null, hostname: (s.host.hostname as string | undefined) ?? null,
    cells: [...new Set([...s.results.map((r) => cellName(r.result)), ...s.errors.map((e) => cellName(e))])],
  }));
  const { shard: _s, ...options } = first.options;
  const db = ResultsDb.open(into);
  try {
    const runId = db.startRun({
      kind: "matrix",
      startedAt: sources.map((s) => s.run.started_at).sort()[0],
      backend: first.run.backend,
      resultsDir: null,
      picoshareVersion: first.run.picoshare_version,
      picoshareSha256: first.run.picoshare_sha256,
      // Which host ran which shard, and each host's facts (the results keep theirs too).
      options: { ...options, merged_from: shards.map((s, i) => ({ ...s, host: sources[i].host })) },
      host: first.host,
    });
    for (const s of sources) {
      for (const { result, file } of s.results) db.addResult({ ...result, run_id: runId }, file);
      for (const e of s.errors) {
        const { id: _id, run_id: _r, ...rest } = e;
        db.addHarnessError({ ...rest, run_id: runId, warmup: e.warmup === 1 });
      }
    }
    const done = sources.every((s) => s.run.status === "complete") && missing.length === 0;
    db.setRunStatus(runId, done ? "complete" : "interrupted", sources.map((s) => s.run.finished_at ?? s.run.started_at).sort().at(-1)!);
    return { runId, shards, missing };
  } finally {
    db.close();
  }
}
