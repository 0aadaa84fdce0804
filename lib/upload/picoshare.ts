// Which PicoShare binary a test runs, and its identity for the results.
// One place decides: --picoshare PATH, or a build of --picoshare-source DIR
// (at --picoshare-ref REF), else $PICOSHARE_BIN, else a build of
// $PICOSHARE_VERSION (default v1.5.4) cached per version under .cache/.
import { $ } from "../core/shell.ts";
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { UsageError, errorMessage } from "../core/errors.ts";
import { fileSha256 } from "../core/files.ts";
import { log } from "../core/log.ts";
import { CACHE_DIR } from "../core/paths.ts";
import { buildFromSource, sourceBuildOf, type SourceBuildInfo } from "./source-build.ts";

export const PICOSHARE_MODULE = "github.com/mtlynch/picoshare";
export const DEFAULT_VERSION = "v1.5.4";

export interface PicoShareBinary {
  path: string;
  /** Module version baked into the binary (e.g. "v1.5.4"), "(devel)" for a checkout build, or "unknown". */
  version: string;
  sha256: string;
  source: "flag" | "env" | "cache" | "built" | "source";
  /** The Go release it was built with (from its build info), or null where Go cannot read it. */
  go_version: string | null;
  /** What a build from source was built from (commit, dirty, ref), or null. */
  build: SourceBuildInfo | null;
}

/** How a command names a binary: --X PATH, --X-version V, --X-source DIR with --X-ref REF. */
export interface PicoShareChoice {
  path?: string;
  version?: string;
  source?: string;
  ref?: string;
}

function requireExecutable(path: string, from: string): void {
  if (!existsSync(path)) {
    throw new UsageError(`PicoShare binary ${path} (from ${from}) does not exist: give the path of a built picoshare`);
  }
  if (!statSync(path).isFile()) {
    throw new UsageError(`PicoShare binary ${path} (from ${from}) is not a file: give the path of the picoshare binary itself`);
  }
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new UsageError(`PicoShare binary ${path} (from ${from}) is not executable: chmod +x it or give another path`);
  }
}

async function hasGo(): Promise<boolean> {
  return (await $`go version`.nothrow()).exitCode === 0;
}

/** The module version and Go release recorded in a Go binary's build info, where Go is here to read it. */
async function buildInfo(path: string): Promise<{ version: string; go: string | null }> {
  if (!(await hasGo())) return { version: "unknown", go: null };
  const out = await $`go version -m ${path}`.nothrow();
  const go = /^[^\n]*:\s+(go\S+)/.exec(out.stdout)?.[1] ?? null;
  const m = /^\s*mod\s+\S+\s+(\S+)/m.exec(out.stdout);
  if (!m) return { version: "unknown", go };
  const rev = /vcs\.revision=(\w+)/.exec(out.stdout);
  return { version: m[1] === "(devel)" && rev ? `(devel) ${rev[1].slice(0, 12)}` : m[1], go };
}

/**
 * A binary's identity for the results: version, Go release, sha256, and what
 * a build from source came from. `given` is the user's name for the build
 * (the ref, the folder or the path as typed; a release names itself): its label is then
 * that name with what was built, "branch1 (5226b34404fd)", "~/picoshare
 * (5226b34404fd dirty)", "old/picoshare (v1.5.4)", so that builds of one
 * commit or of one release are told apart wherever the version is shown.
 */
async function identify(
  path: string, source: PicoShareBinary["source"], build: SourceBuildInfo | null = sourceBuildOf(path), given: string | null = null,
): Promise<PicoShareBinary> {
  const info = await buildInfo(path);
  const built = build ? `${build.commit ? build.commit.slice(0, 12) : build.content_hash.slice(0, 12)}${build.dirty ? " dirty" : ""}` : info.version;
  const version = given !== null && given !== built ? `${given} (${built})` : build ? `(source) ${built}` : built;
  return { path, source, version, sha256: await fileSha256(path), go_version: info.go ?? build?.go_version ?? null, build };
}

export function cachedBinaryPath(version: string): string {
  return join(CACHE_DIR, "picoshare", version.replace(/[^\w.+-]/g, "_"), "picoshare");
}

/**
 * Builds `version` of PicoShare into the cache. `go install module@version`
 * first; where the module proxy refuses the version listing that go install
 * needs, the same version is built through a throwaway module that requires it.
 */
async function build(version: string): Promise<string> {
  const target = cachedBinaryPath(version);
  const dir = resolve(target, "..");
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(dir, ".build-"));
  try {
    log(`Building PicoShare ${version} with go install (the first build compiles SQLite: a minute or two)`);
    const env = { GOBIN: work, CGO_ENABLED: "1" };
    let res = await $({ env, nothrow: true })`go install ${`${PICOSHARE_MODULE}/cmd/picoshare@${version}`}`;
    if (res.exitCode !== 0) {
      log(`go install failed (${res.stderr.trim().split("\n").pop()}); building ${version} through a module that requires it`);
      writeFileSync(join(work, "go.mod"), `module picoshare-perf-build\n\ngo 1.22\n\nrequire ${PICOSHARE_MODULE} ${version}\n`);
      res = await $({ cwd: work, env: { ...env, GOFLAGS: "-mod=mod" }, nothrow: true })`go build -o ${join(work, "picoshare")} ${`${PICOSHARE_MODULE}/cmd/picoshare`}`;
    }
    if (res.exitCode !== 0 || !existsSync(join(work, "picoshare"))) {
      throw new UsageError(
        `could not build PicoShare ${version}: ${res.stderr.trim().split("\n").slice(-3).join(" / ")}; ` +
          `check the version (PICOSHARE_VERSION) or pass a built binary with --picoshare PATH`,
      );
    }
    renameSync(join(work, "picoshare"), target);
    return target;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Resolves the binary to test, building and caching it when needed; `given`, the user's name for it, goes in its label. */
export async function resolvePicoShare(flagPath?: string, given?: string): Promise<PicoShareBinary> {
  let path: string;
  let source: PicoShareBinary["source"];
  if (flagPath !== undefined) {
    path = resolve(flagPath);
    source = "flag";
    requireExecutable(path, "--picoshare");
  } else if (process.env.PICOSHARE_BIN) {
    path = resolve(process.env.PICOSHARE_BIN);
    source = "env";
    requireExecutable(path, "PICOSHARE_BIN");
  } else {
    return resolvePicoShareVersion(process.env.PICOSHARE_VERSION || DEFAULT_VERSION, "PICOSHARE_VERSION");
  }
  return identify(path, source, undefined, given ?? null);
}

/**
 * The binary a command's flags name, `prefix` being the flags' stem
 * ("picoshare": --picoshare, --picoshare-version, --picoshare-source,
 * --picoshare-ref; "a": --a, --a-version...). At most one of path, version and
 * source; a ref only with a source. None: resolvePicoShare's defaults.
 * A build from source is labelled by the ref or folder given; a path too
 * when `named` (a command comparing builds the user named).
 */
export async function resolvePicoShareChoice(c: PicoShareChoice, prefix: string, named = false): Promise<PicoShareBinary> {
  const given = (["path", "version", "source"] as const).filter((k) => c[k] !== undefined);
  const flag = (k: keyof PicoShareChoice) => (k === "path" ? `--${prefix}` : `--${prefix}-${k}`);
  if (given.length > 1) throw new UsageError(`give one of ${given.map((k) => flag(k)).join(", ")}, not several`);
  if (c.ref !== undefined && c.source === undefined) {
    throw new UsageError(`${flag("ref")} needs ${flag("source")} DIR: the git checkout the ref is taken from (e.g. ${flag("source")} ~/picoshare ${flag("ref")} main)`);
  }
  if (c.source !== undefined) {
    const b = await buildFromSource(c.source, c.ref ?? null, flag("source"));
    return identify(b.path, b.built ? "built" : "source", b.info, c.ref ?? c.source);
  }
  if (c.version !== undefined) return resolvePicoShareVersion(c.version, flag("version"));
  // A path the user gave is named with what it holds; a parent's --picoshare to its run-test is not (named: false).
  return resolvePicoShare(c.path, named ? c.path : undefined);
}

/** A release tag (v1.5.4, v1.6.0-rc1) or a commit hash (7 to 40 hex digits): what `go install module@X` takes. */
export const VERSION_FORM = /^(v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?|[0-9a-f]{7,40})$/;

/**
 * The cached build of PicoShare `version` (built with Go first when missing),
 * whatever PICOSHARE_BIN / PICOSHARE_VERSION say: for comparing two builds.
 */
export async function resolvePicoShareVersion(version: string, flag = "version"): Promise<PicoShareBinary> {
  if (!VERSION_FORM.test(version)) {
    throw new UsageError(`${flag} "${version}" is not a release tag or a commit hash (e.g. ${flag} ${DEFAULT_VERSION})`);
  }
  let path = cachedBinaryPath(version);
  let source: PicoShareBinary["source"] = "cache";
  if (!existsSync(path)) {
    if (!(await hasGo())) {
      throw new UsageError(
        `no PicoShare ${version} binary and no Go to build one: install Go (https://go.dev/dl) so that ` +
          `${PICOSHARE_MODULE} ${version} can be built, or pass a built binary with --picoshare PATH (or PICOSHARE_BIN)`,
      );
    }
    try {
      path = await build(version);
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`could not build PicoShare ${version}: ${errorMessage(err)}`);
    }
    source = "built";
  }
  return identify(path, source);
}

/**
 * The folder of PicoShare `version`'s module source in Go's module cache
 * (read-only), there once that version has been built here: a base for
 * patched builds (copy it, make the copy writable, patch, --picoshare-source).
 */
export async function moduleSource(version = DEFAULT_VERSION): Promise<string> {
  await resolvePicoShareVersion(version);
  const cache = (await $`go env GOMODCACHE`.nothrow()).stdout.trim();
  const dir = join(cache, `${PICOSHARE_MODULE}@${version}`);
  if (!existsSync(join(dir, "go.mod"))) {
    // Built by go install into a cache that was cleaned since: fetch the module alone.
    const work = mkdtempSync(join(CACHE_DIR, ".modsrc-"));
    try {
      writeFileSync(join(work, "go.mod"), "module picoshare-perf-source\n\ngo 1.22\n");
      const got = await $({ cwd: work, nothrow: true })`go mod download ${`${PICOSHARE_MODULE}@${version}`}`;
      if (got.exitCode !== 0) throw new UsageError(`could not fetch the source of PicoShare ${version}: ${got.stderr.trim().split("\n").pop()}`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  return dir;
}
