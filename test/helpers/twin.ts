// One real test with its instrumented twin (run-test --count-instructions,
// 256 MiB x 8M, about 10 s): its result, and its per-phase callgrind dumps
// by their absolute paths, for the tests that read dumps.
import { mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ROOT } from "../../lib/core/paths.ts";
import { MiB } from "../../lib/core/sizes.ts";
import { resolvePicoShare } from "../../lib/upload/picoshare.ts";
import { readResult, type TestResult } from "../../lib/upload/result.ts";
import { testFilePath, writeTestFile } from "../../lib/upload/testfiles.ts";
import { runScript } from "./run.ts";

export async function realTwin(root: string): Promise<{ result: TestResult; dumps: Record<"upload" | "download", string> }> {
  const [files, work] = [join(root, "files"), join(root, "work")];
  mkdirSync(files);
  mkdirSync(work);
  await writeTestFile(testFilePath("8M", files), 8 * MiB);
  const picoshare = (await resolvePicoShare()).path;
  const r = await runScript("run-test", [
    "--ram", "256", "--file-size", "8M", "--count-instructions", "--test-files", files, "--results-dir", join(root, "results"), "--work-dir", work, "--picoshare", picoshare,
  ]);
  if (r.code !== 0) throw new Error(`run-test: ${r.stderr}`);
  const result = readResult(JSON.parse(readFileSync(resolve(ROOT, r.stdout.trim()), "utf8")));
  const named = result.instructions_settings?.dumps ?? {};
  if (!named.upload || !named.download) throw new Error("the twin kept no dump of the upload or of the download");
  // Named as run-test shows paths: from its folder, ROOT (runScript's).
  return { result, dumps: { upload: resolve(ROOT, named.upload), download: resolve(ROOT, named.download) } };
}
