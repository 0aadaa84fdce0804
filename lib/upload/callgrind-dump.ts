// A callgrind dump read back: the self cost (instructions, `Ir`) of each
// function it names. The format (valgrind's "Callgrind Format
// Specification"): header lines `key: value`, then a body where `ob=` /
// `fl=` / `fi=` / `fe=` / `fn=` set the object, file (fi/fe: inlined code
// in another file) and function of the cost lines that follow, each name
// compressed as `fn=(id) name` the first time and `fn=(id)` after; a cost
// line is its position(s) then one count per event; `calls=N target` makes
// the next cost line the inclusive cost of that call, which belongs to the
// callee's total, not to the caller's self cost.
import { readFileSync } from "node:fs";

/** One function's self cost in one file (as callgrind_annotate lists it: `file:function`). */
export interface DumpEntry {
  file: string;
  fn: string;
  object: string;
  /** Self instructions: the costs of its own lines, calls made from it left out. */
  ir: number;
}

export interface CallgrindDump {
  events: string[];
  /** The `totals:` line's Ir (null when the dump has none). */
  totals: number | null;
  /** Per file and function, in the order first met. */
  entries: DumpEntry[];
}

/** Which compressed-name table each key reads and writes: files, functions and objects have one each. */
const TABLE: Record<string, "fl" | "fn" | "ob"> = {
  fl: "fl", fi: "fl", fe: "fl", cfi: "fl", cfl: "fl", jfi: "fl",
  fn: "fn", cfn: "fn", jfn: "fn",
  ob: "ob", cob: "ob",
};

/** Parses a dump's text; `Ir` must be one of its events. */
export function parseCallgrindDump(text: string): CallgrindDump {
  const names = { fl: new Map<string, string>(), fn: new Map<string, string>(), ob: new Map<string, string>() };
  const name = (key: string, value: string): string => {
    const m = /^\((\d+)\)\s*(.*)$/.exec(value);
    if (!m) return value;
    const table = names[TABLE[key]];
    if (m[2] !== "") table.set(m[1], m[2]);
    return table.get(m[1]) ?? `(${m[1]})`;
  };
  let events: string[] = [];
  let positions = 1;
  let irAt = -1;
  let totals: number | null = null;
  const entries = new Map<string, DumpEntry>();
  let object = "";
  let file = "";
  let fn: string | null = null;
  let current: DumpEntry | null = null;
  let skipNextCost = false;
  const enter = () => {
    if (fn === null) return;
    const key = `${object}\0${file}\0${fn}`;
    current = entries.get(key) ?? null;
    if (!current) entries.set(key, (current = { file, fn, object, ir: 0 }));
  };

  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (line === "" || line.startsWith("#")) continue;
    const first = line.charCodeAt(0);
    // A cost line starts with a position: a number, 0x..., +N, -N or *.
    if ((first >= 48 && first <= 57) || first === 43 || first === 45 || first === 42) {
      if (skipNextCost) {
        skipNextCost = false;
        continue;
      }
      if (irAt < 0) throw new Error("callgrind dump: a cost line before its `events:` line names Ir");
      const cost = line.split(/\s+/)[positions + irAt];
      if (cost !== undefined && current !== null) (current as DumpEntry).ir += Number(cost);
      continue;
    }
    const header = /^([a-z]+):\s*(.*)$/.exec(line);
    if (header) {
      const [, key, value] = header;
      if (key === "events") {
        events = value.split(/\s+/).filter(Boolean);
        irAt = events.indexOf("Ir");
      } else if (key === "positions") positions = value.split(/\s+/).filter(Boolean).length;
      else if (key === "totals") totals = Number(value.split(/\s+/)[Math.max(irAt, 0)]);
      continue;
    }
    const spec = /^([a-z]+)=(.*)$/.exec(line);
    if (!spec) throw new Error(`callgrind dump: a line neither cost, header nor spec: ${line.slice(0, 80)}`);
    const [, key, value] = spec;
    if (key === "calls") skipNextCost = true;
    else if (key === "ob") object = name(key, value);
    else if (key === "fl") file = name(key, value);
    else if (key === "fi" || key === "fe") {
      file = name(key, value);
      enter();
    } else if (key === "fn") {
      fn = name(key, value);
      enter();
    } else if (key in TABLE) name(key, value); // cfn=, cfi=, cob=...: only their names are recorded
    // jump= / jcnd= (with --collect-jumps): no cost of their own
  }
  return { events, totals, entries: [...entries.values()] };
}

export function readCallgrindDump(path: string): CallgrindDump {
  return parseCallgrindDump(readFileSync(path, "utf8"));
}

/** Self instructions per function name, whatever file or object its code is in (inlined code counts for the function it was inlined into). */
export function selfByFunction(dump: CallgrindDump): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of dump.entries) out.set(e.fn, (out.get(e.fn) ?? 0) + e.ir);
  return out;
}
