// test/suite.sh, the README's test command (`npm test`), where it must stop
// before running anything: not root, and packages missing with no apt-get.
// (That it installs and runs the suite is what every CI run shows.)
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../lib/core/paths.ts";
import { $ } from "../lib/core/shell.ts";

const SUITE = join(ROOT, "test", "suite.sh");
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "suite-spec-"));
  chmodSync(dir, 0o755);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs argv in the project folder with `env` as the whole environment. */
function run(argv: string[], env: Record<string, string>) {
  const r = $({ cwd: ROOT, env, cleanEnv: true, nothrow: true }).sync`${argv}`;
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

test("not root: exit 2, one line saying the suite needs root", () => {
  const r = run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/bin/bash", SUITE], { PATH: "/usr/bin:/bin" });
  expect(r.code).toBe(2);
  expect(r.stderr.trim()).toBe("[test] ERROR: the tests need root (memory cgroups, VMs, network namespaces): run sudo npm test");
  expect(r.stdout).toBe("");
});

test("packages missing and no apt-get: exit 2, one line naming them, nothing installed or run", () => {
  // A PATH with what the script itself uses, a dpkg-query that knows no package, and no apt-get.
  const bin = join(dir, "bin");
  $.sync`mkdir -p ${bin}`;
  for (const tool of ["bash", "id", "grep", "dirname"]) symlinkSync(Bun.which(tool)!, join(bin, tool));
  writeFileSync(join(bin, "dpkg-query"), "#!/bin/bash\nexit 1\n");
  chmodSync(join(bin, "dpkg-query"), 0o755);
  const r = run([join(bin, "bash"), SUITE], { PATH: bin });
  expect(r.code).toBe(2);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^\[test\] ERROR: missing Debian packages curl gzip sqlite3 .* vagrant vagrant-libvirt slurmctld slurmd slurm-client munge and no apt-get to install them: install them by hand$/);
  expect(r.stdout).toBe("");
});
