// lib/core/cli.ts: strict parsing as users meet it (real script runs as
// subprocesses), and the value checkers used by every script.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { list, oneOf, parseCli, positiveInt, positiveNumber, required } from "../lib/core/cli.ts";
import { UsageError } from "../lib/core/errors.ts";
import { parseSize } from "../lib/core/sizes.ts";
import { numberFlag, optionLines, requiredFlag, switchFlag, valueOf, withDefault } from "../lib/core/flag-kit.ts";
import { BUN } from "../lib/core/paths.ts";
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
  const p = $({ cwd, env: { NO_COLOR: "1" }, nothrow: true }).sync`${BUN} ${GENERATOR} ${args}`;
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
  const usage = "Usage: x [OPTIONS]\n\nOptions:\n  --name X    a name\n  --on        on\n";
  test("parses known flags", () => {
    const p = parseCli(spec, usage, ["--name", "x", "--on"]);
    expect(p.values.name).toBe("x");
    expect(p.values.on).toBe(true);
    expect(p.positionals).toEqual([]);
  });
  test("positionals up to the maximum", () => {
    expect(parseCli(spec, usage, ["a", "b"], 2).positionals).toEqual(["a", "b"]);
    expect(() => parseCli(spec, usage, ["a", "b", "c"], 2)).toThrow(/unexpected argument "c"/);
  });
  test("a flag its usage text does not describe is a fault of the script, found before anything is parsed", () => {
    expect(() => parseCli(spec, "Usage: x\n\n  --name X    a name\n", ["--help"])).toThrow("the usage text does not describe --on");
    // Named in prose only: not described.
    expect(() => parseCli(spec, "Usage: x --on\n\n  --name X    a name\n", [])).toThrow("does not describe --on");
  });
  test("errors are UsageErrors that ask for the usage text", () => {
    try {
      parseCli(spec, usage, ["--nope"]);
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

// ---------------------------------------------------------------- a flag's declaration

describe("a declared flag (flag-kit.ts)", () => {
  const ram = numberFlag("ram", positiveInt, { value: "MB", example: "512", help: "Memory limit in MiB" });
  test("its value: the text given, else the default, else undefined; required: refused when missing", () => {
    expect(valueOf(ram, "64")).toBe(64);
    expect(valueOf(ram, undefined)).toBeUndefined();
    expect(valueOf(withDefault(ram, "256"), undefined)).toBe(256);
    expect(usageError(() => valueOf(requiredFlag(ram), undefined)).message).toBe("--ram is required (e.g. --ram 512)");
  });
  test("a script's own default and example reach its messages", () => {
    expect(usageError(() => valueOf(withDefault(ram, "2048", "2048"), "x")).message).toBe('--ram must be a whole number above 0, got "x" (e.g. --ram 2048)');
    expect(usageError(() => valueOf(ram, "x")).message).toContain("(e.g. --ram 512)");
  });
  test("its usage lines: the description beside the flag, or under it when the flag is long, wrapped, the default last", () => {
    expect(optionLines(withDefault(ram, "256"))).toEqual(["  --ram MB              Memory limit in MiB (default: 256)"]);
    const long = switchFlag("a-very-long-flag-name", "word ".repeat(30).trim());
    const lines = optionLines(long);
    expect(lines[0]).toBe("  --a-very-long-flag-name");
    expect(lines.length).toBeGreaterThan(2);
    for (const l of lines.slice(1)) {
      expect(l.startsWith(`${" ".repeat(24)}word`)).toBe(true);
      expect(l.length).toBeLessThanOrEqual(80);
    }
    expect(lines.slice(1).join(" ").replace(/\s+/g, " ").trim()).toBe(long.help);
  });
});

// ---------------------------------------------------------------- every script's flags and --help

interface Documented {
  /** The value's placeholder, "" for a flag without one. */
  value: string;
  /** The description as one line, its "(default: ...)" apart. */
  description: string;
  shownDefault: string | null;
}

/** The option entries of a usage text: "  --name VALUE  description" and the lines under it. */
function documentedFlags(usage: string): Map<string, Documented> {
  const found = new Map<string, Documented>();
  let current: { name: string; value: string; text: string[] } | null = null;
  const close = () => {
    if (!current) return;
    const text = current.text.join(" ").replace(/\s+/g, " ").trim();
    const at = text.lastIndexOf(" (default: ");
    const hasDefault = at >= 0 && text.endsWith(")");
    found.set(current.name, {
      value: current.value,
      description: hasDefault ? text.slice(0, at) : text,
      shownDefault: hasDefault ? text.slice(at + " (default: ".length, -1) : null,
    });
    current = null;
  };
  for (const line of usage.split("\n")) {
    const head = /^ {2}--([a-z][\w-]*)(?: (\S+))?(?: {2,}(.*))?$/.exec(line);
    if (head) {
      close();
      current = { name: head[1], value: head[2] ?? "", text: [head[3] ?? ""] };
    } else if (current && /^ {10,}\S/.test(line)) {
      current.text.push(line.trim());
    } else {
      close();
    }
  }
  close();
  return found;
}

const SCRIPTS = readdirSync(join(ROOT, "scripts")).filter((f) => f.endsWith(".ts")).map((f) => f.replace(/\.ts$/, "")).sort();

function runScriptSync(name: string, args: string[]) {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "scripts", `${name}.ts`), ...args], {
    cwd: work,
    env: { ...process.env, NO_COLOR: "1" },
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

describe("every script's --help documents the flags it takes, each shared flag described alike", () => {
  const helps = new Map<string, Map<string, Documented>>();
  beforeAll(() => {
    for (const name of SCRIPTS) {
      // parseCli refuses (exit 1) a usage text that leaves out a flag of the script's table.
      const r = runScriptSync(name, ["--help"]);
      expect({ name, code: r.code, stderr: r.stderr }).toEqual({ name, code: 0, stderr: "" });
      expect(r.stdout).toContain("Examples:");
      helps.set(name, documentedFlags(r.stdout));
    }
  });

  test("the scripts are all there, each with its options", () => {
    expect(SCRIPTS).toContain("run-test");
    expect(SCRIPTS).toContain("compare");
    expect(SCRIPTS.length).toBeGreaterThanOrEqual(11);
    for (const name of SCRIPTS) expect(helps.get(name)!.has("help")).toBe(true);
    expect([...helps.get("run-test")!.keys()]).toContain("allow-memory-backed-work-dir");
  });

  test("every flag a script documents, its parser takes", () => {
    for (const name of SCRIPTS) {
      // Each documented flag once, with a value where it has one, then an unknown one:
      // the parser names the first flag it does not know.
      const args = [...helps.get(name)!].filter(([flag]) => flag !== "help").flatMap(([flag, d]) => (d.value ? [`--${flag}`, "1"] : [`--${flag}`]));
      const r = runScriptSync(name, [...args, "--zz-not-a-flag"]);
      expect({ name, code: r.code, error: r.stderr.split("\n")[0] }).toEqual({
        name, code: 2, error: expect.stringContaining("unknown option --zz-not-a-flag") as unknown as string,
      });
    }
  });

  test("a flag that several scripts take has one description and one placeholder (the default may differ)", () => {
    const byFlag = new Map<string, { script: string; d: Documented }[]>();
    for (const [script, flags] of helps) {
      for (const [flag, d] of flags) byFlag.set(flag, [...(byFlag.get(flag) ?? []), { script, d }]);
    }
    const shared = [...byFlag].filter(([, uses]) => uses.length > 1);
    // --timeout and --db, described once each for all the scripts that take them.
    expect(byFlag.get("timeout")!.map((u) => u.script).sort()).toEqual(["bench-detection", "bench-study", "compare", "find-ram-floor", "run-test", "run-test-matrix"]);
    expect(byFlag.get("db")!.length).toBe(6);
    for (const [flag, uses] of shared) {
      const first = uses[0];
      for (const u of uses.slice(1)) {
        expect({ flag, script: u.script, value: u.d.value, description: u.d.description }).toEqual({
          flag, script: u.script, value: first.d.value, description: first.d.description,
        });
      }
    }
  });

  test("each script shows its own default for a shared flag", () => {
    expect(helps.get("run-test")!.get("iterations")!.shownDefault).toBe("1");
    expect(helps.get("compare")!.get("iterations")!.shownDefault).toBe("5");
    expect(helps.get("compare")!.get("warmup")!.shownDefault).toBe("1");
    expect(helps.get("run-test-matrix")!.get("warmup")!.shownDefault).toBe("0");
    expect(helps.get("run-test")!.get("ram")!.shownDefault).toBeNull();
    expect(helps.get("bench-upload")!.get("ram")!.shownDefault).toBe("2048");
  });
});
