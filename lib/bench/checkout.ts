// A maintainer's git checkout of PicoShare, made for a test or a benchmark:
// v1.5.4's source (from Go's module cache) committed as a base branch, and a
// branch off it per patch of patches.ts.
import { join } from "node:path";
import { moduleSource } from "../upload/picoshare.ts";
import { applyPatch, patchedCopy, type SourcePatch } from "./patches.ts";
import { $ } from "../core/shell.ts";

export interface Checkout {
  repo: string;
  /** git in the checkout; its stdout, trimmed; throws when git fails. */
  git: (...args: string[]) => Promise<string>;
}

/** The checkout in `dir`/picoshare, left on the last branch made. */
export async function makeCheckout(dir: string, base: string, branches: [name: string, patch: SourcePatch][]): Promise<Checkout> {
  const repo = patchedCopy(await moduleSource(), join(dir, "picoshare"), []);
  const git = async (...args: string[]) => {
    const r = await $`git -C ${repo} -c user.email=perf@test -c user.name=perf ${args}`.nothrow();
    if (r.exitCode !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.trim();
  };
  await git("init", "-q", "-b", base);
  await git("add", "-A");
  await git("commit", "-q", "-m", "v1.5.4");
  for (const [name, patch] of branches) {
    await git("checkout", "-q", "-b", name, base);
    applyPatch(repo, patch);
    await git("commit", "-q", "-am", patch.name);
  }
  return { repo, git };
}
