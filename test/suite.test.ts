// test/suite.sh, the README's test command (`npm test`), where it must stop
// before running anything: not root, and packages missing with no apt-get;
// and the type check before `bun test`, which a type error stops.
// (That it installs and runs the suite is what every CI run shows.)
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
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

/**
 * A copy of suite.sh in a tree of its own where every package is installed,
 * node_modules is current, and tsc, bun and go are stand-ins: tsc exits
 * `tscCode` after printing an error; bun records the arguments it runs with.
 */
function fakeTree(name: string, tscCode: number): { root: string; ran: string } {
  const root = join(dir, name);
  const bin = join(root, "node_modules", ".bin");
  mkdirSync(join(root, "test"), { recursive: true });
  mkdirSync(bin, { recursive: true });
  copyFileSync(SUITE, join(root, "test", "suite.sh"));
  writeFileSync(join(root, "package-lock.json"), "{}");
  writeFileSync(join(root, "node_modules", ".package-lock.json"), "{}");
  const ran = join(root, "bun-ran");
  const script = (file: string, body: string) => {
    writeFileSync(file, `#!/bin/bash\n${body}\n`);
    chmodSync(file, 0o755);
  };
  script(join(bin, "dpkg-query"), "printf 'install ok installed'");
  script(join(bin, "go"), "echo go version go1.0 linux/amd64");
  script(join(bin, "tsc"), tscCode === 0 ? "exit 0" : `echo "lib/x.ts(1,7): error TS2322: Type 'string' is not assignable to type 'number'."; exit ${tscCode}`);
  script(join(bin, "bun"), `if [[ $1 == --version ]]; then echo 1.0.0; else echo "$*" >${ran}; fi`);
  return { root, ran };
}

test("tsc --noEmit runs before bun test; a type error stops the suite with exit 1 and one line saying so, no test run", () => {
  const failing = fakeTree("types-wrong", 2);
  const r = run(["/bin/bash", join(failing.root, "test", "suite.sh"), "test/cli.test.ts"], { PATH: "/usr/bin:/bin" });
  expect(r.code).toBe(1);
  expect(r.stdout).toContain("error TS2322");
  const lines = r.stderr.trim().split("\n");
  expect(lines.at(-2)).toBe("[test] tsc --noEmit");
  expect(lines.at(-1)).toBe("[test] ERROR: tsc --noEmit found type errors (listed above): fix them, then run the tests again");
  expect(existsSync(failing.ran)).toBe(false);

  const passing = fakeTree("types-right", 0);
  const ok = run(["/bin/bash", join(passing.root, "test", "suite.sh"), "test/cli.test.ts"], { PATH: "/usr/bin:/bin" });
  expect(ok.code).toBe(0);
  expect(ok.stderr).toContain("[test] tsc --noEmit");
  expect(readFileSync(passing.ran, "utf8")).toBe("test test/cli.test.ts\n");
});
