// PicoShare built from a source tree (a maintainer's checkout), or from a git
// ref of it, into the cache: keyed by a hash of the tree's content and the Go
// version, so that the same source is built once. A ref is built from a clean
// export (git archive); a working tree from a copy of its files (tracked and
// untracked, .gitignore respected): the user's tree is never written to.
// Beside each binary, build.json says what it was built from.
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { $ } from "../core/shell.ts";
import { UsageError } from "../core/errors.ts";
import { CACHE_DIR } from "../core/paths.ts";
import { log } from "../core/log.ts";

/** What a build from source records, in the result and beside the binary. */
export interface SourceBuildInfo {
  /** The source tree given. */
  source_dir: string;
  /** The git ref built, or null for the working tree as it is. */
  ref: string | null;
  /** The commit built (for a working tree: HEAD), or null outside git. */
  commit: string | null;
  /** true when the working tree differs from HEAD (modified or untracked files); false for a ref; null outside git. */
  dirty: boolean | null;
  go_version: string;
  /** sha256 of the tree's content (a ref: its git tree id). */
  content_hash: string;
}

const SIDECAR = "build.json";

async function git(dir: string, args: string[]): Promise<{ ok: boolean; out: string; err: string }> {
  const r = await $`git -C ${dir} ${args}`.nothrow();
  return { ok: r.exitCode === 0, out: r.stdout.trim(), err: r.stderr.trim() };
}

/** Every file of a tree outside git, relative paths, sorted. */
function walk(root: string, dir = root, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === ".git") continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(root, p, out);
    else if (e.isFile()) out.push(relative(root, p));
  }
  return out.sort();
}

/** The files of a working tree (git: tracked and untracked, ignored ones left out) and whether git knows it. */
async function treeFiles(dir: string): Promise<{ files: string[]; inGit: boolean }> {
  const inside = await git(dir, ["rev-parse", "--show-toplevel"]);
  if (!inside.ok) return { files: walk(dir), inGit: false };
  const listed = await $`git -C ${dir} ls-files -z --cached --others --exclude-standard -- .`.nothrow();
  const files = listed.stdout.split("\0").filter((f) => f !== "" && existsSync(join(dir, f)) && statSync(join(dir, f)).isFile());
  return { files: files.sort(), inGit: true };
}

function hashFiles(dir: string, files: string[]): string {
  const h = createHash("sha256");
  for (const f of files) {
    const st = statSync(join(dir, f));
    h.update(`${f}\0${st.mode & 0o111 ? "x" : "-"}\0`);
    h.update(createHash("sha256").update(readFileSync(join(dir, f))).digest("hex"));
    h.update("\n");
  }
  return h.digest("hex");
}

function copyFiles(dir: string, files: string[], to: string): void {
  for (const f of files) {
    const target = join(to, f);
    mkdirSync(dirname(target), { recursive: true });
    // Written, not copied: the module cache's files are read-only, the copy must not be.
    writeFileSync(target, readFileSync(join(dir, f)), { mode: statSync(join(dir, f)).mode & 0o111 ? 0o755 : 0o644 });
  }
}

async function goVersion(): Promise<string> {
  const r = await $`go env GOVERSION`.nothrow();
  if (r.exitCode !== 0) throw new UsageError("go is not on PATH: building PicoShare from source needs Go (https://go.dev/dl)");
  return r.stdout.trim();
}

/** The cache folder of one build: by content and Go version. */
function buildDir(contentHash: string, go: string): string {
  const key = createHash("sha256").update(`${contentHash}\n${go}\nCGO_ENABLED=1\n`).digest("hex").slice(0, 16);
  return join(CACHE_DIR, "picoshare", `source-${key}`);
}

/** build.json beside a cached binary, when there is one. */
export function sourceBuildOf(binaryPath: string): SourceBuildInfo | null {
  const p = join(dirname(binaryPath), SIDECAR);
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, "utf8")) as SourceBuildInfo;
  } catch {
    return null;
  }
}

/**
 * The cached binary built from `dir` (at `ref` when given), built first when
 * missing. `flag` names the flag for messages. A tree that is not PicoShare,
 * an unknown ref or a failed build: one UsageError (exit 2) with the
 * compiler's last lines.
 */
export async function buildFromSource(dirGiven: string, ref: string | null, flag: string): Promise<{ path: string; info: SourceBuildInfo; built: boolean }> {
  const dir = resolve(dirGiven);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${flag} ${dirGiven}: no such folder: give a PicoShare source tree`);
  const go = await goVersion();
  const work = join(CACHE_DIR, "picoshare");
  mkdirSync(work, { recursive: true });
  const exportDir = mkdtempSync(join(work, ".source-"));
  try {
    let info: SourceBuildInfo;
    if (ref !== null) {
      const commit = await git(dir, ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`]);
      if (!commit.ok) throw new UsageError(`${flag.replace("source", "ref")} ${ref}: not a commit of the git tree ${dir} (${commit.err || "unknown ref"}): give a branch, tag or commit`);
      const tree = await git(dir, ["rev-parse", `${ref}^{tree}`]);
      info = { source_dir: dir, ref, commit: commit.out, dirty: false, go_version: go, content_hash: `git-tree-${tree.out}` };
    } else {
      const { files, inGit } = await treeFiles(dir);
      let commit: string | null = null;
      let dirty: boolean | null = null;
      if (inGit) {
        const head = await git(dir, ["rev-parse", "--verify", "--quiet", "HEAD"]);
        commit = head.ok ? head.out : null;
        dirty = (await git(dir, ["status", "--porcelain", "--", "."])).out !== "";
      }
      info = { source_dir: dir, ref: null, commit, dirty, go_version: go, content_hash: hashFiles(dir, files) };
      copyFiles(dir, files, exportDir);
    }
    const target = buildDir(info.content_hash, go);
    const binary = join(target, "picoshare");
    if (existsSync(binary) && existsSync(join(target, SIDECAR))) {
      // The same content, perhaps from another folder or commit: what this build came from is recorded anew.
      return { path: binary, info: { ...(sourceBuildOf(binary) as SourceBuildInfo), ...info }, built: false };
    }
    if (ref !== null) {
      const tar = join(exportDir, ".export.tar");
      const archived = await git(dir, ["archive", "--format=tar", "-o", tar, ref]);
      if (!archived.ok) throw new UsageError(`${flag} ${dir}: git archive ${ref} failed: ${archived.err}`);
      const untar = await $`tar -xf ${tar} -C ${exportDir}`.nothrow();
      rmSync(tar, { force: true });
      if (untar.exitCode !== 0) throw new UsageError(`${flag} ${dir}: could not unpack ${ref}: ${untar.stderr.trim()}`);
    }
    if (!existsSync(join(exportDir, "go.mod")) || !existsSync(join(exportDir, "cmd", "picoshare"))) {
      throw new UsageError(`${flag} ${dirGiven}${ref ? ` at ${ref}` : ""} is not a PicoShare source tree (no go.mod and cmd/picoshare): give the checkout's top folder`);
    }
    log(`Building PicoShare from ${dir}${ref ? ` at ${ref}` : ""} (${go}; the first build compiles SQLite: a minute or two)`);
    const out = join(exportDir, ".picoshare");
    const res = await $({ cwd: exportDir, env: { CGO_ENABLED: "1" }, nothrow: true })`go build -o ${out} ./cmd/picoshare`;
    if (res.exitCode !== 0 || !existsSync(out)) {
      const last = `${res.stderr}\n${res.stdout}`.trim().split("\n").filter(Boolean).slice(-3).join(" / ");
      throw new UsageError(`could not build PicoShare from ${flag} ${dirGiven}${ref ? ` at ${ref}` : ""}: ${last || `go build exited ${res.exitCode}`}`);
    }
    const staged = mkdtempSync(join(work, ".staged-"));
    renameSync(out, join(staged, "picoshare"));
    chmodSync(join(staged, "picoshare"), 0o755);
    writeFileSync(join(staged, SIDECAR), `${JSON.stringify(info, null, 2)}\n`);
    rmSync(target, { recursive: true, force: true });
    renameSync(staged, target);
    return { path: binary, info, built: true };
  } finally {
    rmSync(exportDir, { recursive: true, force: true });
  }
}
