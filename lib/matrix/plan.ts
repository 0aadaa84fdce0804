// What a matrix runs: the memory limits and file sizes from the command line,
// checked before anything is made, the cells in the original's order (memory
// outer, sizes inner, each as given), each cell's repeated tests (warm-ups
// first, then the measured ones), and whether their test files are there.
import { existsSync, statSync } from "node:fs";
import { list } from "../core/cli.ts";
import { UsageError } from "../core/errors.ts";
import { command, TEST_FILES_DIR } from "../core/paths.ts";
import { parseSize, type Size } from "../core/sizes.ts";
import { DEFAULT_SIZES, testFilePath } from "../upload/testfiles.ts";
import { cellName } from "../stats/cells.ts";

export const DEFAULT_MEMORY_LIMITS = [2048, 1024, 512, 256];
export const DEFAULT_FILE_SIZES = DEFAULT_SIZES;

/** One test of the matrix: a (RAM, size, concurrency) cell and which of its repeated tests. */
export interface Cell {
  /** 1-based position among all the tests of the matrix. */
  index: number;
  ram: number;
  size: Size;
  /** Uploads at once (--concurrency-levels; 1 by default). */
  concurrency: number;
  /** Which of the cell's tests, 1-based, warm-ups first (warm-ups 1..W, measured W+1..W+N). */
  iteration: number;
  /** A warm-up test: recorded, never counted. */
  warmup: boolean;
}

export function parseMemoryLimits(text: string | undefined): number[] {
  if (text === undefined) return [...DEFAULT_MEMORY_LIMITS];
  return list("--memory-limits", text, (item) => {
    if (!/^[1-9][0-9]*$/.test(item) || !Number.isSafeInteger(Number(item))) {
      throw new UsageError(
        `--memory-limits item "${item}" is not a whole number of MiB above 0 (e.g. --memory-limits 2048,1024,512,256)`,
      );
    }
    return Number(item);
  }, "2048,1024,512,256");
}

export function parseConcurrencyLevels(text: string | undefined): number[] {
  if (text === undefined) return [1];
  return list("--concurrency-levels", text, (item) => {
    if (!/^[1-9][0-9]*$/.test(item) || Number(item) > 64) {
      throw new UsageError(`--concurrency-levels item "${item}" is not a number of uploads from 1 to 64 (e.g. --concurrency-levels 1,3)`);
    }
    return Number(item);
  }, "1,3");
}

export function parseFileSizes(text: string | undefined): Size[] {
  return list("--file-sizes", text ?? DEFAULT_FILE_SIZES.join(","), (item) => parseSize(item, "--file-sizes item"), "100M,500M,1G");
}

/**
 * Every test of the matrix in order: memory outer, sizes, then concurrency
 * levels, and for each cell its `warmups` warm-up tests, then its
 * `iterations` measured ones.
 */
export function matrixCells(memoryLimits: number[], sizes: Size[], iterations = 1, warmups = 0, levels: number[] = [1]): Cell[] {
  const cells: Cell[] = [];
  for (const ram of memoryLimits) {
    for (const size of sizes) {
      for (const concurrency of levels) {
        for (let i = 1; i <= warmups + iterations; i++) {
          cells.push({ index: cells.length + 1, ram, size, concurrency, iteration: i, warmup: i <= warmups });
        }
      }
    }
  }
  return cells;
}

/**
 * What a test log line adds to name the test within its cell: " (warm-up 1/2)",
 * " (iteration 3/5)", or nothing when each cell runs once.
 */
export function iterationSuffix(cell: Pick<Cell, "iteration" | "warmup">, iterations: number, warmups: number): string {
  if (iterations <= 1 && warmups === 0) return "";
  return cell.warmup ? ` (warm-up ${cell.iteration}/${warmups})` : ` (iteration ${cell.iteration - warmups}/${iterations})`;
}

/** A test's cell as cells are spelt everywhere ("256MB/1G", "256MB/1G/x3"). */
export function testCellName(cell: Pick<Cell, "ram" | "size" | "concurrency">): string {
  return cellName({ ram_mb: cell.ram, file_size: cell.size.label, concurrency: cell.concurrency });
}

export interface TestFileProblem {
  size: Size;
  path: string;
  problem: string;
}

/** The sizes whose test file is missing or has the wrong length. */
export function testFileProblems(sizes: Size[], dir: string): TestFileProblem[] {
  const problems: TestFileProblem[] = [];
  for (const size of sizes) {
    const path = testFilePath(size.label, dir);
    if (!existsSync(path)) problems.push({ size, path, problem: "missing" });
    else if (statSync(path).size !== size.bytes) {
      problems.push({ size, path, problem: `${statSync(path).size} bytes, expected ${size.bytes}` });
    }
  }
  return problems;
}

/** The generator command that makes these sizes in `dir`. */
export function generateCommand(labels: string[], dir: string): string {
  return command("generate-test-files", `--sizes ${labels.join(",")}${dir === TEST_FILES_DIR ? "" : ` --dir ${dir}`}`);
}
