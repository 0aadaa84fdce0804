// What a command-line flag is: declared once with its value's placeholder,
// parser, default and description, it gives both a script's flag table for
// parseCli and the option lines of its --help, so a flag a script takes is
// documented, and described the same way in every script that takes it.
import { parseCli, required, type FlagSpec } from "./cli.ts";

/** One flag; T is its value once read (the default filled in), N its name. */
export interface Flag<T = unknown, N extends string = string> {
  name: N;
  type: "string" | "boolean";
  /** Given more than once: its value is the list of texts. */
  multiple?: boolean;
  /** The value's placeholder in the usage line: SEC, PATH, LIST. */
  value?: string;
  /** What the flag does, wrapped to the usage text's width. */
  help: string;
  /** Lines after the description, kept as they are (a list too long to wrap). */
  verbatim?: string[];
  /** The text the flag has when it is not given, shown as "(default: ...)". */
  default?: string;
  /** How the default is shown when the parser fills it in itself ("./test-files"). */
  shown?: string;
  required?: boolean;
  /** A good value, for error messages: "e.g. --timeout 600". */
  example: string;
  /**
   * The value of the flag's text (given, else the default; undefined when
   * neither); a bad one is a UsageError. `as` is the flag as the script has it
   * (its example).
   */
  read: (text: string | undefined, as: { example: string }) => T;
  /** The flag's text for a value, on a child's command line. */
  text: (value: NonNullable<T>) => string;
}

/** lib/core/cli.ts's number parsers: positiveInt, nonNegativeInt, positiveNumber. */
type NumberParser = (flag: string, text: string, example: string) => number;

interface Described {
  value?: string;
  help: string;
  verbatim?: string[];
  default?: string;
  shown?: string;
  example?: string;
}

/** A flag with a value: `read` gets its text, or the default, or undefined. */
export function valueFlag<N extends string, T = string | undefined>(
  name: N,
  o: Described & { value: string },
  read: (text: string | undefined, as: { example: string }) => T = (t) => t as T,
  text: (value: NonNullable<T>) => string = String,
): Flag<T, N> {
  return { name, type: "string", example: o.value, ...o, read, text };
}

/** A number flag read by one of cli.ts's parsers; without a default, undefined when not given. */
export function numberFlag<N extends string>(name: N, parse: NumberParser, o: Described & { value: string; example: string; default: string }): Flag<number, N>;
export function numberFlag<N extends string>(name: N, parse: NumberParser, o: Described & { value: string; example: string }): Flag<number | undefined, N>;
export function numberFlag<N extends string>(name: N, parse: NumberParser, o: Described & { value: string; example: string }): Flag<any, N> {
  return valueFlag(name, o, (t, as) => (t === undefined ? undefined : parse(`--${name}`, t, as.example)));
}

/** A flag without a value: true when given. */
export function switchFlag<N extends string>(name: N, help: string): Flag<boolean, N> {
  return { name, type: "boolean", help, example: "", read: (given) => Boolean(given), text: () => "" };
}

/** The same flag with this script's default (and the example its messages give). */
export function withDefault<T, N extends string>(f: Flag<T, N>, value: string, example = f.example): Flag<NonNullable<T>, N> {
  return { ...f, default: value, shown: undefined, example } as Flag<NonNullable<T>, N>;
}

/** The same flag with its default shown as this script has it. */
export function shownAs<T, N extends string>(f: Flag<T, N>, shown: string): Flag<T, N> {
  return { ...f, shown };
}

/** The same flag, refused when not given. */
export function requiredFlag<T, N extends string>(f: Flag<T, N>, example = f.example): Flag<NonNullable<T>, N> {
  return { ...f, required: true, example } as Flag<NonNullable<T>, N>;
}

/** The flag's value from what parseCli gave for it. */
export function valueOf<T>(f: Flag<T, string>, given: string | boolean | string[] | undefined): T {
  if (f.type === "boolean") return f.read(given as string | undefined, f);
  if (given === undefined && f.required) required(`--${f.name}`, undefined, f.example);
  return f.read((given as string | undefined) ?? f.default, f);
}

/** parseCli's table for these flags. */
export function flagSpec(flags: readonly Flag<any, string>[]): FlagSpec {
  return Object.fromEntries(flags.map((f) => [f.name, { type: f.type, ...(f.multiple ? { multiple: true } : {}) }]));
}

// ---------------------------------------------------------------- usage text

/** Where descriptions start, and the width they are wrapped to. */
const COLUMN = 24;
const WIDTH = 80;

export const HELP_FLAG = switchFlag("help", "Show this text");

/** A flag's lines in a usage text: "  --name VALUE" and its description beside or under it. */
export function optionLines(f: Flag<any>): string[] {
  const head = `  --${f.name}${f.value ? ` ${f.value}` : ""}`;
  const shown = f.shown ?? f.default;
  const words = `${f.help}${shown === undefined ? "" : ` (default: ${shown})`}`.split(" ");
  const lines: string[] = [];
  for (const word of words) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + 1 + word.length <= WIDTH - COLUMN) lines[last] += ` ${word}`;
    else lines.push(word);
  }
  lines.push(...(f.verbatim ?? []));
  const pad = " ".repeat(COLUMN);
  const body = lines.map((l) => pad + l);
  if (head.length + 2 > COLUMN) return [head, ...body];
  return [head.padEnd(COLUMN) + lines[0], ...body.slice(1)];
}

/**
 * A script's usage text: its own synopsis and description, then its options
 * in groups (a heading and the flags' lines; --help closes the last group
 * unless a group has it), then its examples and the rest.
 */
export function usageText(head: string, groups: Array<[heading: string, flags: readonly Flag<any>[]]>, tail: string): string {
  const placed = groups.some(([, flags]) => flags.includes(HELP_FLAG));
  const blocks = groups.map(([heading, flags], i) =>
    [heading, ...[...flags, ...(i === groups.length - 1 && !placed ? [HELP_FLAG] : [])].flatMap(optionLines)].join("\n"),
  );
  return `${head.trimEnd()}\n\n${blocks.join("\n\n")}\n\n${tail.trimStart()}`;
}

/** The flags of a script's groups, for parseFlags. */
export function flagsOf(groups: Array<[string, readonly Flag<any, string>[]]>): Flag<any>[] {
  return groups.flatMap(([, flags]) => flags);
}

export interface ParsedFlags {
  /** The value of one of the script's flags, read (and checked) now. */
  <T>(f: Flag<T>): T;
  /** The texts as given, by flag name. */
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * Parses argv with these flags (as parseCli does: --help, unknown flags and
 * missing values first); each value is read when the script asks for it, so
 * the script keeps the order of its checks.
 */
export function parseFlags(flags: readonly Flag<any, string>[], usage: string, argv: string[] = process.argv.slice(2), maxPositionals = 0): ParsedFlags {
  const { values, positionals } = parseCli(flagSpec(flags), usage, argv, maxPositionals);
  const given = values as ParsedFlags["values"];
  const get = <T>(f: Flag<T>): T => {
    if (!flags.some((x) => x.name === f.name)) throw new Error(`--${f.name} is not one of this script's flags`);
    return valueOf(f, given[f.name]);
  };
  return Object.assign(get, { values: given, positionals });
}
