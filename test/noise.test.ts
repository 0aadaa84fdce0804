// The environment probe's judgements on synthetic probes: a matrix's drift
// from its first tests, and two sides that probed differently; settling the
// host after a real large write, and the probe after it. (The probe also runs
// for real in run-test.test.ts.)
import { describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MiB } from "../lib/core/sizes.ts";
import { DriftWatch, SETTLE_THRESHOLD_BYTES, dirtyBytes, probeDifferences, probeEnvironment, settleHost } from "../lib/upload/noise.ts";

const p = (disk: number, cpu: number) => ({ disk_write_mibps: disk, cpu_seconds: cpu });

describe("drift within a matrix", () => {
  test("the first 3 probes set the spread; a probe inside it is quiet, one far outside warns once", () => {
    const w = new DriftWatch();
    expect([p(200, 0.05), p(220, 0.052), p(210, 0.051)].map((x, i) => w.add(x, `test ${i + 1}`))).toEqual([null, null, null]);
    // Within the spread widened to 25 % of its median.
    expect(w.add(p(170, 0.06), "test 4")).toBeNull();
    const slow = w.add(p(60, 0.051), "test 5");
    expect(slow).toMatch(/^the environment probe drifted: disk write \(fsync'd\) 60 MiB\/s at test 5, against 200-220 MiB\/s in the first 3 tests: the host got slower/);
    // Once per figure.
    expect(w.add(p(50, 0.051), "test 6")).toBeNull();
    expect(w.add(p(210, 0.2), "test 7")).toMatch(/CPU loop 0.2 s at test 7, against 0.05-0.052 s .*the host got slower/);
  });

  test("results without a probe (older records) are skipped", () => {
    const w = new DriftWatch();
    expect(w.add(null, "x")).toBeNull();
    expect(w.add(undefined, "x")).toBeNull();
  });
});

describe("two sides that probed differently", () => {
  test("ranges that overlap, or medians within 20 %: nothing said", () => {
    expect(probeDifferences([p(200, 0.05), p(210, 0.05)], [p(205, 0.05), p(190, 0.05)])).toEqual([]);
    expect(probeDifferences([p(200, 0.05), p(201, 0.05)], [p(210, 0.05), p(211, 0.05)])).toEqual([]);
    expect(probeDifferences([], [p(1, 1)])).toEqual([]);
  });

  test("apart and more than 20 % different: named with both ranges", () => {
    const d = probeDifferences([p(200, 0.05), p(220, 0.05), p(210, 0.05)], [p(100, 0.05), p(110, 0.05), p(105, 0.05)]);
    expect(d).toEqual(["disk write (fsync'd) 210 MiB/s (200-220) on A, 105 MiB/s (100-110) on B"]);
  });
});

test("the probe writes and removes one file", () => {
  const dir = mkdtempSync(join(tmpdir(), "probe-"));
  try {
    const r = probeEnvironment(dir);
    expect(r.disk_write_mibps).toBeGreaterThan(0);
    expect(r.cpu_seconds).toBeGreaterThan(0);
    expect(readdirSync(dir)).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Writes `mib` MiB to a file in `dir` without fsync: dirty pages the kernel has yet to write, as a test leaves them. */
function writeUnsynced(dir: string, mib: number): void {
  const chunk = Buffer.alloc(MiB, 0x33);
  const fd = openSync(join(dir, "residue"), "w", 0o600);
  try {
    for (let i = 0; i < mib; i++) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
}

describe("settling the host before a test", () => {
  // On the disk the tests' temporary files go to, as a test's work dir would be.
  const scratch = () => mkdtempSync(join(tmpdir(), "settle-"));

  test("after a 256 MiB write left unsynced: the residue is found, flushed, and the wait timed", async () => {
    const dir = scratch();
    try {
      writeUnsynced(dir, 256);
      // Well above the threshold (another process's sync, as a test's probe does, may have flushed part of it already).
      const before = dirtyBytes();
      expect(before!).toBeGreaterThan(2 * SETTLE_THRESHOLD_BYTES);
      const s = await settleHost();
      const left = dirtyBytes();
      // Settling found that residue (read at its start, microseconds later).
      expect(s.settle_dirty_bytes!).toBeGreaterThan(before! / 2);
      expect(s.settle_seconds).toBeGreaterThan(0);
      expect(left).not.toBeNull();
      expect(left!).toBeLessThanOrEqual(SETTLE_THRESHOLD_BYTES);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test("the probe after a 256 MiB write and settling stays within the drift band of probes on a quiet host", async () => {
    const dir = scratch();
    try {
      await settleHost();
      const w = new DriftWatch();
      for (let i = 0; i < 3; i++) expect(w.add(probeEnvironment(dir), `quiet probe ${i + 1}`)).toBeNull();
      writeUnsynced(dir, 256);
      await settleHost();
      rmSync(join(dir, "residue"));
      const after = probeEnvironment(dir);
      expect(w.add(after, "the probe after the write")).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
