// System calls by kind from perf's tracepoints: exact counts over a real
// process and the children it starts after the count began, a real
// PicoShare's upload and download (the same fsyncs in two runs), tracefs
// mounted only in perf's own mount namespace (the host's mounts stay as they
// were), and null with one log line where perf or root is missing.
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { start, stopGroup } from "../lib/core/exec.ts";
import { BUN } from "../lib/core/paths.ts";
import { $ } from "../lib/core/shell.ts";
import { MiB } from "../lib/core/sizes.ts";
import { resolvePicoShare } from "../lib/upload/picoshare.ts";
import { countSyscalls } from "../lib/upload/syscalls.ts";
import { testFilePath, writeTestFile } from "../lib/upload/testfiles.ts";
import { hostMounts } from "./helpers/host-state.ts";
import { runScript } from "./helpers/run.ts";

setDefaultTimeout(180_000);

const dir = mkdtempSync(join(tmpdir(), "syscalls-spec-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FIXTURE = join(import.meta.dir, "fixtures", "count-syscalls.ts");

test("a shell's children, started after the count began: each fsync counted once, writes and reads; the host's mounts unchanged", async () => {
  const mounts = hostMounts();
  const [go, done] = [join(dir, "go"), join(dir, "done")];
  // dd conv=fsync: one fsync after its two 4 KiB writes; three of them, each a new process.
  const sh = start(["sh", "-c", `while [ ! -e ${go} ]; do sleep 0.01; done; for i in 1 2 3; do dd if=/dev/zero of=${dir}/f bs=4k count=2 conv=fsync status=none; done; touch ${done}; sleep 60`]);
  try {
    const count = await countSyscalls({ processIds: () => [sh.pid] } as Parameters<typeof countSyscalls>[0]);
    expect(count).not.toBeNull();
    writeFileSync(go, "");
    while (!existsSync(done)) await Bun.sleep(10);
    const got = await count!.stop();
    expect(got!.fsync).toBe(3);
    expect(got!.write).toBeGreaterThanOrEqual(6);
    expect(got!.read).toBeGreaterThan(0);
  } finally {
    await stopGroup(sh, 1000);
  }
  expect(hostMounts()).toEqual(mounts);
});

test("no perf on the PATH: both counts null, and the log says why once", async () => {
  // Every command of /usr/bin and /bin but perf.
  const path = join(dir, "bin");
  mkdirSync(path);
  for (const from of ["/usr/bin", "/bin"]) {
    for (const name of readdirSync(from)) if (name !== "perf" && !existsSync(join(path, name))) symlinkSync(join(from, name), join(path, name));
  }
  const r = await $({ env: { PATH: path, NO_COLOR: "1" }, nothrow: true })`${BUN} ${FIXTURE}`;
  expect(r.exitCode).toBe(0);
  expect(JSON.parse(r.stdout)).toEqual([null, null]);
  const said = r.stderr.split("\n").filter((l) => l.includes("Syscalls: not counted"));
  expect(said).toHaveLength(1);
  expect(said[0]).toContain("perf is not installed (apt-get install linux-perf)");
});

// A private mount namespace needs root: an unprivileged user has no way to mount tracefs.
const readable = $({ nothrow: true }).sync`setpriv --reuid=nobody --regid=nogroup --clear-groups /bin/sh -c ${'test -r "$0" && test -x "$1"'} ${FIXTURE} ${BUN}`.exitCode === 0;
test.skipIf(!readable)("a user who may not mount tracefs: both counts null, one log line, the host's mounts unchanged", async () => {
  const mounts = hostMounts();
  const r = await $({ env: { NO_COLOR: "1" }, nothrow: true })`setpriv --reuid=nobody --regid=nogroup --clear-groups ${BUN} ${FIXTURE}`;
  expect(r.exitCode).toBe(0);
  expect(JSON.parse(r.stdout)).toEqual([null, null]);
  const said = r.stderr.split("\n").filter((l) => l.includes("Syscalls: not counted"));
  expect(said).toHaveLength(1);
  expect(said[0]).toContain("a private mount namespace for tracefs needs root");
  expect(hostMounts()).toEqual(mounts);
});

test("a real 8M upload at 256 MiB, twice: the same fsync count, writes and reads, for the upload and the download; the host's mounts unchanged", async () => {
  const mounts = hostMounts();
  const files = join(dir, "files");
  mkdirSync(files);
  await writeTestFile(testFilePath("8M", files), 8 * MiB);
  const work = join(dir, "work");
  mkdirSync(work);
  const args = ["--ram", "256", "--file-size", "8M", "--iterations", "2", "--test-files", files, "--results-dir", join(dir, "results"), "--work-dir", work];
  const ran = await runScript("run-test", [...args, "--picoshare", (await resolvePicoShare()).path]);
  if (ran.code !== 0) console.error(ran.stderr);
  expect(ran.code).toBe(0);
  expect(ran.stderr).not.toContain("Syscalls: not counted");
  const [first, second] = ran.stdout.trim().split("\n").map((p) => JSON.parse(readFileSync(p, "utf8")));
  for (const r of [first, second]) {
    expect(r.syscalls_source).toBe("perf tracepoints");
    // SQLite makes the entry's chunks durable: fsyncs in the upload, none in the download, which only reads the database.
    const counts = ["upload_fsync_calls", "upload_write_calls", "upload_read_calls", "download_write_calls", "download_read_calls"];
    for (const k of counts) expect(r[k]).toBeGreaterThan(0);
    expect(r.upload_write_calls).toBeGreaterThan(r.upload_fsync_calls);
    expect(r.download_fsync_calls).toBe(0);
  }
  expect(second.upload_fsync_calls).toBe(first.upload_fsync_calls);
  expect(hostMounts()).toEqual(mounts);
});
