// Backend by name: each backend is one module behind the same interface.
import { UsageError } from "../errors.ts";
import { BACKENDS, type Backend, type BackendName } from "./types.ts";
import { localBackend } from "./local.ts";

export function parseBackend(text: string | undefined): BackendName {
  const name = text ?? "local";
  if (!(BACKENDS as readonly string[]).includes(name)) {
    throw new UsageError(`--backend must be one of ${BACKENDS.join(", ")}, got "${name}"`);
  }
  return name as BackendName;
}

export async function loadBackend(name: BackendName): Promise<Backend> {
  switch (name) {
    case "local":
      return localBackend;
    default:
      throw new UsageError(`the ${name} backend is not available in this version: use --backend local`);
  }
}
