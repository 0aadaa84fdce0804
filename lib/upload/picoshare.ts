// Which PicoShare binary a test runs, and its identity for the results.
// One place decides: --picoshare PATH, else $PICOSHARE_BIN, else a build of
// $PICOSHARE_VERSION (default v1.5.4) cached per version under .cache/.
import { run } from "../core/exec.ts";
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { UsageError, errorMessage } from "../core/errors.ts";
import { fileSha256 } from "../core/files.ts";
import { log } from "../core/log.ts";
import { CACHE_DIR } from "../core/paths.ts";

export const PICOSHARE_MODULE = "github.com/mtlynch/picoshare";
export const DEFAULT_VERSION = "v1.5.4";

export interface PicoShareBinary {
  path: string;
  /** Module version baked into the binary (e.g. "v1.5.4"), "(devel)" for a checkout build, or "unknown". */
  version: string;
  sha256: string;
  source: "flag" | "env" | "cache" | "built";
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
  return (await run(["go", "version"])).code === 0;
}

/** The module version recorded in a Go binary's build info, where Go is here to read it. */
async function binaryVersion(path: string): Promise<string> {
  if (!(await hasGo())) return "unknown";
  const out = await run(["go", "version", "-m", path]);
  const m = /^\s*mod\s+\S+\s+(\S+)/m.exec(out.stdout);
  if (!m) return "unknown";
  const rev = /vcs\.revision=(\w+)/.exec(out.stdout);
  return m[1] === "(devel)" && rev ? `(devel) ${rev[1].slice(0, 12)}` : m[1];
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
    let res = await run(["go", "install", `${PICOSHARE_MODULE}/cmd/picoshare@${version}`], { env });
    if (res.code !== 0) {
      log(`go install failed (${res.stderr.trim().split("\n").pop()}); building ${version} through a module that requires it`);
      writeFileSync(join(work, "go.mod"), `module picoshare-perf-build\n\ngo 1.22\n\nrequire ${PICOSHARE_MODULE} ${version}\n`);
      res = await run(["go", "build", "-o", join(work, "picoshare"), `${PICOSHARE_MODULE}/cmd/picoshare`], { cwd: work, env: { ...env, GOFLAGS: "-mod=mod" } });
    }
    if (res.code !== 0 || !existsSync(join(work, "picoshare"))) {
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

/** Resolves the binary to test, building and caching it when needed. */
export async function resolvePicoShare(flagPath?: string): Promise<PicoShareBinary> {
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
  return { path, source, version: await binaryVersion(path), sha256: await fileSha256(path) };
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
  return { path, source, version: await binaryVersion(path), sha256: await fileSha256(path) };
}
