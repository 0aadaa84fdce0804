// lib/core/sizes.ts: the one accepted size form, its byte values, and the labels
// and figures derived from byte counts.
import { describe, expect, test } from "bun:test";
import {
  GiB, KiB, MiB, SIZE_FORM_HELP, formatBytes, parseSize, sizeLabel, toMiB,
} from "../lib/core/sizes.ts";
import { EXIT, Fatal, UsageError } from "../lib/core/errors.ts";

describe("parseSize: valid forms", () => {
  const cases: [string, number][] = [
    ["512K", 524_288],
    ["1K", 1024],
    ["100M", 104_857_600],
    ["1024M", 1_073_741_824],
    ["1G", 1_073_741_824],
    ["5G", 5_368_709_120],
  ];
  for (const [text, bytes] of cases) {
    test(`${text} is ${bytes} bytes and keeps its label`, () => {
      const size = parseSize(text);
      expect(size.bytes).toBe(bytes);
      expect(size.label).toBe(text);
    });
  }

  test("units are binary", () => {
    expect(KiB).toBe(1024);
    expect(MiB).toBe(1024 * 1024);
    expect(GiB).toBe(1024 * 1024 * 1024);
    expect(parseSize("1024M").bytes).toBe(parseSize("1G").bytes);
    expect(parseSize("1024K").bytes).toBe(parseSize("1M").bytes);
  });
});

describe("parseSize: invalid forms", () => {
  const invalid = ["1.5G", "100m", "0M", "10X", "-1G", "", "100", " 1G", "01G", "1G ", "1 G", "1GB", "G"];
  for (const text of invalid) {
    test(`${JSON.stringify(text)} is a UsageError (exit 2) showing the accepted form`, () => {
      let caught: unknown;
      try {
        parseSize(text, "--sizes item");
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(UsageError);
      expect(caught).toBeInstanceOf(Fatal);
      const err = caught as UsageError;
      expect(err.exitCode).toBe(EXIT.usage);
      expect(err.exitCode).toBe(2);
      // Names the flag and the offending text, and shows the form to use.
      expect(err.message).toContain("--sizes item");
      expect(err.message).toContain(`"${text}"`);
      expect(err.message).toContain(SIZE_FORM_HELP);
      expect(err.message).toContain("512K, 100M, 1G, 5G");
      expect(err.message.split("\n")).toHaveLength(1);
    });
  }

  test("a size too large for an exact byte count is refused", () => {
    expect(() => parseSize("99999999999G")).toThrow(UsageError);
    expect(() => parseSize("99999999999G")).toThrow(/too large/);
  });

  test("default flag name is used in the message", () => {
    expect(() => parseSize("1.5G")).toThrow(/^invalid size "1\.5G"/);
  });
});

describe("sizeLabel", () => {
  test("shortest exact label", () => {
    expect(sizeLabel(1_073_741_824)).toBe("1G");
    expect(sizeLabel(5 * GiB)).toBe("5G");
    expect(sizeLabel(100 * MiB)).toBe("100M");
    expect(sizeLabel(1536 * MiB)).toBe("1536M");
    expect(sizeLabel(512 * KiB)).toBe("512K");
    expect(sizeLabel(1024)).toBe("1K");
  });
  test("null when no unit divides the count exactly", () => {
    expect(sizeLabel(0)).toBeNull();
    expect(sizeLabel(1)).toBeNull();
    expect(sizeLabel(1023)).toBeNull();
    expect(sizeLabel(1025)).toBeNull();
    expect(sizeLabel(-1024)).toBeNull();
  });
  test("round-trips through parseSize", () => {
    for (const text of ["512K", "100M", "1G", "5G", "1536M"]) {
      const { bytes } = parseSize(text);
      expect(sizeLabel(bytes)).toBe(text);
      expect(parseSize(sizeLabel(bytes)!).bytes).toBe(bytes);
    }
    // 1024M has the same bytes as 1G, and the shortest label is 1G.
    expect(sizeLabel(parseSize("1024M").bytes)).toBe("1G");
  });
});

describe("toMiB", () => {
  test("bytes in MiB", () => {
    expect(toMiB(GiB)).toBe(1024);
    expect(toMiB(100 * MiB)).toBe(100);
    expect(toMiB(512 * KiB)).toBe(0.5);
    expect(toMiB(0)).toBe(0);
    expect(toMiB(parseSize("5G").bytes)).toBe(5120);
  });
});

describe("formatBytes", () => {
  test("chooses the unit by magnitude", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(17)).toBe("17 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1024)).toBe("1 KiB");
    expect(formatBytes(512 * KiB)).toBe("512 KiB");
    expect(formatBytes(MiB)).toBe("1.0 MiB");
    expect(formatBytes(100 * MiB)).toBe("100.0 MiB");
    expect(formatBytes(1536 * KiB)).toBe("1.5 MiB");
    expect(formatBytes(GiB)).toBe("1.00 GiB");
    expect(formatBytes(5 * GiB)).toBe("5.00 GiB");
    expect(formatBytes(GiB + GiB / 4)).toBe("1.25 GiB");
  });
  test("negative figures keep their unit", () => {
    expect(formatBytes(-2 * MiB)).toBe("-2.0 MiB");
    expect(formatBytes(-5)).toBe("-5 B");
  });
});
