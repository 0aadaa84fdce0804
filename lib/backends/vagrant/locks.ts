// The harness's two locks on a Vagrant folder (a folder holds one VM): the
// folder lock, taken by a matrix and shared with the run-test processes it
// starts (its descendants), and the test lock, taken by the one process that
// makes and uses a VM, so that a run-test orphaned by a killed matrix still
// keeps others out.
import { mkdirSync } from "node:fs";
import { acquireLock, type Lock } from "../../core/lock.ts";
import { LOCK_FILE, TEST_LOCK_FILE, dotVagrant, harnessFile, type VagrantConfig } from "./config.ts";

function take(cfg: VagrantConfig, file: string, shareWithAncestors: boolean): Promise<Lock> {
  mkdirSync(dotVagrant(cfg.folder), { recursive: true });
  const what = `the Vagrant folder ${cfg.folder}`;
  return acquireLock(harnessFile(cfg.folder, file), what, cfg.lockWaitMs, shareWithAncestors ? { shareWithAncestors: true } : {});
}

/** The folder lock; waits up to the configured bound, then throws LockHeldError. */
export function lockFolder(cfg: VagrantConfig): Promise<Lock> {
  return take(cfg, LOCK_FILE, true);
}

/** The test lock; waits up to the configured bound, then throws LockHeldError. */
export function lockForTest(cfg: VagrantConfig): Promise<Lock> {
  return take(cfg, TEST_LOCK_FILE, false);
}
