// lib/core/cli.ts: strict parsing as users meet it (real script runs as
// subprocesses), and the value checkers used by every script.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { list, oneOf, parseCli, positiveInt, positiveNumber, required } from "../lib/core/cli.ts";
import { UsageError } from "../lib/core/errors.ts";
import { parseSize } from "../lib/core/sizes.ts";
import { $ } from "../lib/core/shell.ts";

const ROOT = resolve(import.meta.dir, "..");
const GENERATOR = join(ROOT, "scripts", "generate-test-files.ts");

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "cli-test-"));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function run(args: string[], cwd: string) {
  const p = $({ cwd, env: { NO_COLOR: "1" }, nothrow: true }).sync`${process.execPath} ${GENERATOR} ${args}`;
  return { code: p.exitCode, stdout: p.stdout, stderr: p.stderr };
}

describe("generate-test-files.ts refuses bad usage (exit 2, one ERROR line, nothing written)", () => {
  const cases: { name: string; args: (dir: string) => string[]; names: string }[] = [
    { name: "an unknown flag", args: (d) => ["--bogus", "--dir", d], names: "--bogus" },
    { name: "--sizes with no value (last)", args: (d) => ["--dir", d, "--sizes"], names: "--sizes" },
    { name: "--sizes with no value (before another flag)", args: (d) => ["--sizes", "--dir", d], names: "--sizes" },
    { name: "a stray positional", args: (d) => ["--sizes", "512K", "--dir", d, "stray"], names: "stray" },
    { name: "a value on a boolean flag", args: (d) => ["--sizes", "512K", "--dir", d, "--force=yes"], names: "--force" },
    { name: "an invalid size", args: (d) => ["--sizes", "1.5G", "--dir", d], names: "--sizes" },
    { name: "an empty list item", args: (d) => ["--sizes", "512K,,1M", "--dir", d], names: "--sizes" },
    { name: "a duplicate list item", args: (d) => ["--sizes", "512K,512K", "--dir", d], names: "--sizes" },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const cwd = mkdtempSync(join(work, "cwd-"));
      const target = join(work, `out-${Math.random().toString(36).slice(2)}`);
      const r = run(c.args(target), cwd);
      expect(r.code).toBe(2);
      const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
      expect(lines.length).toBeGreaterThan(0);
      expect(lines[0]).toContain("ERROR:");
      expect(lines[0]).toContain(c.names);
      // Exactly one ERROR line.
      expect(lines.filter((l) => l.includes("ERROR:"))).toHaveLength(1);
      expect(r.stdout).toBe("");
      // Nothing written: neither the --dir nor anything in the cwd.
      expect(existsSync(target)).toBe(false);
      expect(readdirSync(cwd)).toEqual([]);
    });
  }

  test("flag errors are followed by the usage text on stderr", () => {
    const r = run(["--bogus"], work);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Usage: bun scripts/generate-test-files.ts");
    expect(r.stderr).toContain("--sizes LIST");
  });

  test("--help exits 0 and prints the usage on stdout only", () => {
    for (const flag of ["--help", "-h"]) {
      const target = join(work, "help-out");
      const r = run([flag, "--dir", target], work);
      expect(r.code).toBe(0);
      expect(r.stdout.startsWith("Usage: bun scripts/generate-test-files.ts")).toBe(true);
      expect(r.stdout).toContain("Examples:");
      expect(r.stdout).toContain("--checksums");
      expect(r.stderr).toBe("");
      expect(existsSync(target)).toBe(false);
    }
  });

  test("--help wins over other errors", () => {
    const r = run(["--bogus", "--help"], work);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage:");
  });
});

describe("parseCli in process", () => {
  const spec = { name: { type: "string" }, on: { type: "boolean" } } as const;
  test("parses known flags", () => {
    const p = parseCli(spec, "usage", ["--name", "x", "--on"]);
    expect(p.values.name).toBe("x");
    expect(p.values.on).toBe(true);
    expect(p.positionals).toEqual([]);
  });
  test("positionals up to the maximum", () => {
    expect(parseCli(spec, "usage", ["a", "b"], 2).positionals).toEqual(["a", "b"]);
    expect(() => parseCli(spec, "usage", ["a", "b", "c"], 2)).toThrow(/unexpected argument "c"/);
  });
  test("errors are UsageErrors that ask for the usage text", () => {
    try {
      parseCli(spec, "usage", ["--nope"]);
      throw new Error("no error");
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).exitCode).toBe(2);
      expect((err as UsageError).usage).toBe(true);
      expect((err as UsageError).message).toContain("--nope");
    }
  });
});

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(2);
    return err as UsageError;
  }
  throw new Error("expected a UsageError, got none");
}

describe("positiveInt", () => {
  test("accepts whole numbers above 0", () => {
    expect(positiveInt("--ram", "1", "512")).toBe(1);
    expect(positiveInt("--ram", "512", "512")).toBe(512);
    expect(positiveInt("--ram", "4096", "512")).toBe(4096);
  });
  for (const bad of [undefined, "", "0", "-1", "1.5", "01", "1e3", " 5", "5 ", "abc", "0x10"]) {
    test(`refuses ${JSON.stringify(bad)}`, () => {
      const err = usageError(() => positiveInt("--ram", bad, "512"));
      expect(err.message).toContain("--ram");
      expect(err.message).toContain(`"${bad ?? ""}"`);
      expect(err.message).toContain("e.g. --ram 512");
    });
  }
});

describe("positiveNumber", () => {
  test("accepts numbers above 0, decimals too", () => {
    expect(positiveNumber("--timeout", "1", "30")).toBe(1);
    expect(positiveNumber("--timeout", "0.5", "30")).toBe(0.5);
    expect(positiveNumber("--timeout", "2.25", "30")).toBe(2.25);
  });
  for (const bad of [undefined, "", "  ", "0", "-1", "abc", "Infinity", "NaN", "1x"]) {
    test(`refuses ${JSON.stringify(bad)}`, () => {
      const err = usageError(() => positiveNumber("--timeout", bad, "30"));
      expect(err.message).toContain("--timeout");
      expect(err.message).toContain("e.g. --timeout 30");
    });
  }
});

describe("list", () => {
  const size = (s: string) => parseSize(s, "--sizes item");
  test("splits, trims and maps every item", () => {
    expect(list("--sizes", "100M,1G", size, "100M,1G").map((s) => s.bytes)).toEqual([104_857_600, 1_073_741_824]);
    expect(list("--sizes", "100M, 1G", size, "100M,1G").map((s) => s.label)).toEqual(["100M", "1G"]);
    expect(list("--x", "a", (s) => s.toUpperCase(), "a,b")).toEqual(["A"]);
  });
  for (const text of ["100M,,1G", ",100M", "100M,", "", "100M, ,1G"]) {
    test(`refuses an empty item in ${JSON.stringify(text)}`, () => {
      const err = usageError(() => list("--sizes", text, size, "100M,1G"));
      expect(err.message).toContain("--sizes has an empty item");
      expect(err.message).toContain("e.g. --sizes 100M,1G");
    });
  }
  test("refuses a duplicate, naming it", () => {
    const err = usageError(() => list("--sizes", "100M,1G,100M", size, "100M,1G"));
    expect(err.message).toContain('lists "100M" twice');
  });
  test("a duplicate after trimming is still a duplicate", () => {
    const err = usageError(() => list("--sizes", "1G, 1G", size, "100M,1G"));
    expect(err.message).toContain('lists "1G" twice');
  });
  test("the item checker's error passes through", () => {
    const err = usageError(() => list("--sizes", "100M,1.5G", size, "100M,1G"));
    expect(err.message).toContain('invalid --sizes item "1.5G"');
  });
});

describe("required", () => {
  test("returns a present value, refuses a missing one", () => {
    expect(required("--backend", "local", "local")).toBe("local");
    const err = usageError(() => required("--backend", undefined, "local"));
    expect(err.message).toBe("--backend is required (e.g. --backend local)");
    expect(err.usage).toBe(true);
  });
});

describe("oneOf", () => {
  test("returns a listed name, refuses another naming the choices", () => {
    expect(oneOf("VM_LIBVIRT_DRIVER", "qemu", ["kvm", "qemu"] as const)).toBe("qemu");
    expect(usageError(() => oneOf("--backend", "docker", ["local", "qemu"])).message).toBe('--backend must be one of local, qemu, got "docker"');
    expect(usageError(() => oneOf("X", "", ["a"], " for the test")).message).toBe('X must be one of a for the test, got ""');
  });
});
