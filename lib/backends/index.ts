// Backend by name: each backend is one module behind the same interface.
import { oneOf } from "../core/cli.ts";
import { UsageError } from "../core/errors.ts";
import { BACKENDS, type Backend, type BackendName } from "./types.ts";
import { localBackend } from "./local.ts";
import { vagrantBackend } from "./vagrant/index.ts";
import { qemuBackend } from "./qemu/index.ts";
import { log } from "../core/log.ts";

export function parseBackend(text: string | undefined): BackendName {
  return oneOf("--backend", text ?? "local", BACKENDS);
}

export interface BackendOptions {
  /** --reuse-vm: keep one VM across tests with the same RAM (vagrant only). */
  reuseVm?: boolean;
}

export async function loadBackend(name: BackendName, opts: BackendOptions = {}): Promise<Backend> {
  if (opts.reuseVm && name !== "vagrant") log(`--reuse-vm applies to --backend vagrant only: ignored for ${name}`);
  switch (name) {
    case "local":
      return localBackend;
    case "vagrant":
      return vagrantBackend({ reuseVm: opts.reuseVm });
    case "qemu":
      return qemuBackend;
    default:
      throw new UsageError(`the ${name} backend is not available in this version: use --backend local`);
  }
}
