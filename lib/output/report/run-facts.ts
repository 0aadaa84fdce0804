// The facts a run's section starts with: kind, status, build, backend, host,
// the shards of a merged run, and its folder.
import type { HostFacts } from "../../upload/host.ts";
import { formatBytes } from "../../core/sizes.ts";
import { displayPath } from "../../core/paths.ts";
import { sideOf, type StoredRun } from "../../store/stored-runs.ts";
import type { MergedShard } from "../../store/merge.ts";

function hostLine(h: Partial<HostFacts>): [string, string][] {
  const v = (x: unknown) => (x === undefined ? "not recorded" : x === null ? "unknown" : String(x));
  return [
    ["Host", `${v(h.hostname)}, kernel ${v(h.kernel)}`],
    ["CPU", `${v(h.cpu_model)} x ${v(h.cpu_count)}, governor ${v(h.cpu_governor)}, max ${v(h.cpu_max_mhz)} MHz, boost ${v(h.cpu_boost)}`],
    ["Memory", `${h.memory_total_bytes ? formatBytes(h.memory_total_bytes) : "?"} total, ${h.memory_available_bytes ? formatBytes(h.memory_available_bytes) : "?"} available at start`],
    ["Load average (1 min) at start", v(h.load_average_1m)],
    ["Data dir disk", `rotational ${v(h.data_disk_rotational)}, file system ${v(h.data_dir_filesystem)}`],
  ];
}

/** A merged run's shards as `results merge` recorded them (options.merged_from); none for other runs. */
function mergedFrom(s: StoredRun): MergedShard[] {
  try {
    const from = (JSON.parse(s.run.options_json) as { merged_from?: MergedShard[] }).merged_from;
    return Array.isArray(from) ? from : [];
  } catch {
    return [];
  }
}

/** What every run's section starts with: its kind, status, build, backend, host, shards (a merged run) and folder. */
export function runFacts(s: StoredRun): [string, string][] {
  const r = s.run;
  const side = sideOf(s, ""); // version and sha256 from the run, else from its results
  const shards = mergedFrom(s).map(
    (m) => `${m.shard ? `${m.shard.index}/${m.shard.count}` : "?"} on ${m.hostname ?? "unknown host"}, ${m.cells.length} cell(s) (run ${m.run_id} of ${displayPath(m.path)})`,
  );
  return [
    ["Kind", `${r.kind}${r.label ? ` (side ${r.label}${r.paired_run_id ? ` of a comparison with run ${r.paired_run_id}` : ""})` : ""}`],
    ["Status", r.status],
    ["Started / finished", `${r.started_at} / ${r.finished_at ?? "-"}`],
    ["PicoShare", `${side.picoshare_version ?? "?"}, sha256 ${side.picoshare_sha256 ?? "?"}`],
    ["Backend", `${r.backend} ${JSON.stringify(s.fingerprint.backend_settings)}`],
    ...hostLine(s.fingerprint.host),
    // The host facts above are the first shard's; each cell's host is in the per-cell table.
    ...(shards.length > 0 ? [["Shards", shards.join("; ")] as [string, string]] : []),
    ["Results", r.results_dir ?? "-"],
  ];
}
