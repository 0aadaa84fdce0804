// The one place that reads and writes file sizes such as 512K, 100M, 1G, 5G.
// Units are binary: 1K = 1024 bytes, 1M = 1024 K, 1G = 1024 M.
import { UsageError } from "./errors.ts";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

const UNITS = { K: KiB, M: MiB, G: GiB } as const;
const FORM = /^([1-9][0-9]*)([KMG])$/;
export const SIZE_FORM_HELP =
  "a whole number above 0 followed by K, M or G (binary units), e.g. 512K, 100M, 1G, 5G";

export interface Size {
  /** As written by the user, e.g. "1G"; names test files and results. */
  label: string;
  bytes: number;
}

export function parseSize(text: string, flag = "size"): Size {
  const m = FORM.exec(text);
  if (!m) throw new UsageError(`invalid ${flag} "${text}": use ${SIZE_FORM_HELP}`);
  const bytes = Number(m[1]) * UNITS[m[2] as keyof typeof UNITS];
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`${flag} "${text}" is too large`);
  return { label: text, bytes };
}

/** Bytes in MiB, as the results report file sizes (1G -> 1024). */
export function toMiB(bytes: number): number {
  return bytes / MiB;
}

/** The shortest exact label for a byte count (1073741824 -> "1G"), or null. */
export function sizeLabel(bytes: number): string | null {
  for (const unit of ["G", "M", "K"] as const) {
    if (bytes > 0 && bytes % UNITS[unit] === 0) return `${bytes / UNITS[unit]}${unit}`;
  }
  return null;
}

/** A human figure for logs: "1.00 GiB", "512 KiB", "17 B". */
export function formatBytes(bytes: number): string {
  if (Math.abs(bytes) >= GiB) return `${(bytes / GiB).toFixed(2)} GiB`;
  if (Math.abs(bytes) >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  if (Math.abs(bytes) >= KiB) return `${(bytes / KiB).toFixed(0)} KiB`;
  return `${bytes} B`;
}
