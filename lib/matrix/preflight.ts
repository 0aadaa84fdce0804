// The checks a parent (the matrix, live compare) makes once before its first
// test, so that an environment that would make the numbers lie (a tmpfs work
// dir, a --ram above what the harness can have, a missing VM tool) refuses
// with exit 2 before anything is written, not in every child.
import { interruptSignal } from "../core/cleanup.ts";
import { defaultWorkDir, ensureWritableDir } from "../core/files.ts";
import type { Size } from "../core/sizes.ts";
import { loadBackend } from "../backends/index.ts";
import type { BackendName } from "../backends/types.ts";
import type { PicoShareBinary } from "../upload/picoshare.ts";
import { checkDropCaches } from "../upload/noise.ts";
import { checkCountInstructions, type TwinChoice } from "../upload/instructions.ts";

export async function preflight(
  backendName: BackendName,
  picoshare: PicoShareBinary,
  memory: number[],
  sizes: Size[],
  workDir: string | null,
  allowMemoryBackedWorkDir: boolean | undefined,
  dropCaches = false,
  /** The most uploads at once: the disk must hold that many copies. */
  concurrency = 1,
  /** --count-instructions, --instruction-twins and --instruction-sizes: valgrind here, the local backend, sizes among `sizes`. */
  instructions: TwinChoice = {},
): Promise<void> {
  if (dropCaches) checkDropCaches();
  checkCountInstructions(backendName, instructions, sizes.map((s) => s.label));
  const backend = await loadBackend(backendName);
  const dir = workDir ?? defaultWorkDir();
  ensureWritableDir(dir, "--work-dir");
  await backend.preflight({
    ramMiB: Math.max(...memory),
    workDir: dir,
    picoshare,
    uploadBytes: concurrency * Math.max(...sizes.map((s) => s.bytes)),
    signal: interruptSignal,
    allowMemoryBackedWorkDir,
  });
}
