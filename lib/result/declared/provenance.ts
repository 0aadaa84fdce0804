// What could explain a change that is not PicoShare's: how it was built, the
// harness's own commit, the Go runtime variables and the cgroup it ran with,
// and the noise control before the test.
import type { GoRuntimeEnv } from "../../upload/provenance.ts";
import type { EnvironmentProbe } from "../../upload/noise.ts";
import { bool, boolOrNull, jsonOrNull, textOrNull } from "../field.ts";

export const PROVENANCE_FIELDS = [
  textOrNull()("picoshare_go_version", {
    doc: "the Go release the binary was built with", phase: "test", source: "its build info (`go version -m`)", migration: 5,
  }),
  textOrNull()("picoshare_source", {
    doc: "a build from source: the source tree, with `@REF` when a ref was built; null otherwise", phase: "test", source: "--picoshare-source, --picoshare-ref", migration: 5,
  }),
  textOrNull()("picoshare_commit", {
    doc: "a build from source: the commit built (a working tree: its HEAD); null otherwise or outside git", phase: "test", source: "git in the source tree", migration: 5,
  }),
  boolOrNull("picoshare_dirty", {
    doc: "a build from source of a working tree that differs from its HEAD", phase: "test", source: "git status of the source tree", migration: 5,
  }),
  textOrNull()("harness_commit", {
    doc: "the harness's own git commit: a change in the measuring code, not in PicoShare", phase: "test", source: "git in the harness's checkout", migration: 5,
  }),
  boolOrNull("harness_dirty", { doc: "whether the harness's tracked files were modified", phase: "test", source: "git status of the harness", migration: 5 }),
  jsonOrNull<GoRuntimeEnv>()("go_runtime_env", {
    doc: "`GOGC`, `GOMEMLIMIT`, `GODEBUG`, `GOMAXPROCS` as PicoShare's process received them (null: unset)",
    phase: "readiness", source: "PicoShare's environment as its process got it", migration: 5,
  }),
  textOrNull()("cgroup_version", {
    doc: "`1` or `2`: the cgroup that held PicoShare; null where a VM's memory is the limit", phase: "setup", source: "the backend's cgroup", migration: 5,
  }),
  bool("caches_dropped", {
    doc: "--drop-caches: the host's page cache was synced and dropped just before this test", phase: "setup", source: "--drop-caches", migration: 5, missing: false,
  }),
  jsonOrNull<EnvironmentProbe>()("environment_probe", {
    doc: "the host probed just before the test: an fsync'd disk write and a CPU loop, each the fastest of 3", phase: "setup",
    source: "the environment probe (lib/upload/noise.ts)", migration: 5,
  }),
] as const;
