// The state file in the Vagrant folder: which VM a run left up, and why.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { writeFileAtomic } from "../../core/files.ts";
import { STATE_FILE, dotVagrant, harnessFile, type Provider } from "./config.ts";

export interface VmState {
  version: 1;
  vm_id: string;
  ram_mb: number;
  provider: Provider;
  box: string;
  guest_dir: string;
  /**
   * creating: `vagrant up` under way; in_use: a fresh VM's test under way (a
   * run that died left it so); reuse: kept by --reuse-vm; keep: kept by --keep-vm.
   */
  mode: "creating" | "in_use" | "reuse" | "keep";
  /** The output of `vagrant ssh-config`, read once after `vagrant up`. */
  ssh_config: string | null;
  created: string;
  updated: string;
}

export function statePath(folder: string): string {
  return harnessFile(folder, STATE_FILE);
}

export function readVmState(folder: string): VmState | null {
  try {
    const s = JSON.parse(readFileSync(statePath(folder), "utf8")) as VmState;
    return s && s.version === 1 && typeof s.vm_id === "string" ? s : null;
  } catch {
    return null;
  }
}

export function writeVmState(folder: string, s: VmState): void {
  mkdirSync(dotVagrant(folder), { recursive: true });
  writeFileAtomic(statePath(folder), `${JSON.stringify({ ...s, updated: new Date().toISOString() }, null, 2)}\n`);
}

export function removeVmState(folder: string): void {
  rmSync(statePath(folder), { force: true });
}
