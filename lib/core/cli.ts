// Strict command-line parsing: an unknown flag, a flag without its value or
// a stray argument stops the script with the usage text and exit 2.
import { parseArgs } from "node:util";
import { EXIT, Exit, UsageError } from "./errors.ts";

export type FlagSpec = Record<
  string,
  { type: "string" | "boolean"; short?: string; multiple?: boolean }
>;

type Values<S extends FlagSpec> = {
  [K in keyof S]?: S[K]["type"] extends "boolean" ? boolean : string;
};

export interface Parsed<S extends FlagSpec> {
  values: Values<S>;
  positionals: string[];
}

/**
 * Parses argv against `spec`. `--help` prints `usage` to stdout and ends the
 * script with exit 0 (an `Exit` that runMain takes).
 * `maxPositionals` bounds the arguments that are not flags (default none).
 */
export function parseCli<S extends FlagSpec>(
  spec: S,
  usage: string,
  argv: string[] = process.argv.slice(2),
  maxPositionals = 0,
): Parsed<S> {
  // A flag the script takes has its own line in the usage text (usageText makes it from its declaration).
  const undocumented = Object.keys(spec).filter((name) => !new RegExp(`^ +--${name}(?=[ ,]|$)`, "m").test(usage));
  if (undocumented.length > 0) throw new Error(`the usage text does not describe ${undocumented.map((n) => `--${n}`).join(", ")}`);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${usage.trimEnd()}\n`);
    // Not process.exit(): runMain ends the script once the usage is written out.
    throw new Exit(EXIT.ok);
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError(describeParseError(err), true);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(
      `unexpected argument "${parsed.positionals[maxPositionals]}": every option is a --flag (see --help)`,
      true,
    );
  }
  return { values: parsed.values as Values<S>, positionals: parsed.positionals };
}

function describeParseError(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const unknown = /Unknown option '([^']+)'/.exec(msg);
  if (unknown) return `unknown option ${unknown[1]}: see the list of options below`;
  const missing = /Option '(--[\w-]+)[^']*' argument (missing|is ambiguous)/.exec(msg);
  if (missing) return `option ${missing[1]} needs a value, e.g. ${missing[1]} VALUE`;
  const takesNone = /Option '(--[\w-]+)' does not take an argument/.exec(msg);
  if (takesNone) return `option ${takesNone[1]} takes no value: drop the value after it`;
  return `${msg.split("\n")[0]} (see --help)`;
}

/** A whole number > 0, e.g. for --ram. */
export function positiveInt(flag: string, text: string | undefined, example: string): number {
  if (text === undefined || !/^[1-9][0-9]*$/.test(text)) {
    throw new UsageError(`${flag} must be a whole number above 0, got "${text ?? ""}" (e.g. ${flag} ${example})`);
  }
  return Number(text);
}

/** A whole number >= 0, e.g. for --warmup. */
export function nonNegativeInt(flag: string, text: string | undefined, example: string): number {
  if (text === undefined || !/^(0|[1-9][0-9]*)$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`${flag} must be a whole number of 0 or more, got "${text ?? ""}" (e.g. ${flag} ${example})`);
  }
  return Number(text);
}

/** A number > 0 (decimals allowed), e.g. for --timeout. */
export function positiveNumber(flag: string, text: string | undefined, example: string): number {
  const n = Number(text);
  if (text === undefined || text.trim() === "" || !Number.isFinite(n) || n <= 0) {
    throw new UsageError(`${flag} must be a number above 0, got "${text ?? ""}" (e.g. ${flag} ${example})`);
  }
  return n;
}

/** A comma-separated list with no empty item and no duplicate, each item checked by `item`. */
export function list<T>(flag: string, text: string, item: (s: string) => T, example: string): T[] {
  const parts = text.split(",").map((s) => s.trim());
  const seen = new Set<string>();
  return parts.map((part) => {
    if (part === "") {
      throw new UsageError(`${flag} has an empty item in "${text}": separate values by single commas (e.g. ${flag} ${example})`);
    }
    if (seen.has(part)) {
      throw new UsageError(`${flag} lists "${part}" twice: give each value once (e.g. ${flag} ${example})`);
    }
    seen.add(part);
    return item(part);
  });
}

/** One of a fixed set of names (a flag's or a setting's value); `context` follows the list in the message. */
export function oneOf<T extends string>(name: string, value: string, allowed: readonly T[], context = ""): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`${name} must be one of ${allowed.join(", ")}${context}, got "${value}"`);
  }
  return value as T;
}

/** Requires a flag to be present. */
export function required<T>(flag: string, value: T | undefined, example: string): T {
  if (value === undefined) throw new UsageError(`${flag} is required (e.g. ${flag} ${example})`, true);
  return value;
}
