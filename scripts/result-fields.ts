#!/usr/bin/env bun
// Prints the results-field reference made from the declared fields
// (lib/result/declared/), or writes it into docs/result-fields.md.
import { readFileSync, writeFileSync } from "node:fs";
import { flagsOf, parseFlags, switchFlag, usageText, type Flag } from "../lib/core/flag-kit.ts";
import { runMain } from "../lib/core/main.ts";
import { log } from "../lib/core/log.ts";
import { REFERENCE_PAGE, referenceTable, withReference } from "../lib/result/reference.ts";

const WRITE = switchFlag("write", "Replace the table in docs/result-fields.md (between its markers) instead of printing it");
const GROUPS: Array<[string, Flag<any>[]]> = [["Options:", [WRITE]]];

const USAGE = usageText(
  `Usage: bun scripts/result-fields.ts [--write]

Prints the table of every result field (name, type, unit, phase, what measures it,
what it means, where else it goes), made from the declarations in lib/result/declared/.
`,
  GROUPS,
  `Examples:
  bun scripts/result-fields.ts
  bun scripts/result-fields.ts --write
`,
);

await runMain(async () => {
  const opt = parseFlags(flagsOf(GROUPS), USAGE);
  if (!opt(WRITE)) {
    process.stdout.write(`${referenceTable()}\n`);
    return;
  }
  writeFileSync(REFERENCE_PAGE, withReference(readFileSync(REFERENCE_PAGE, "utf8")));
  log(`wrote the field table into ${REFERENCE_PAGE}`);
}, USAGE);
