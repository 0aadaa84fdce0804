// Logging for every script: one timestamped line per message on stderr, so
// that stdout stays free for machine-readable output (a result path, a table).
import { Chalk } from "chalk";

const colour = new Chalk({
  level: process.stderr.isTTY && !process.env.NO_COLOR ? 1 : 0,
});

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** Local time as YYYY-MM-DD HH:MM:SS. */
export function timestamp(d: Date = new Date()): string {
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** Hooks that keep a live progress bar intact while a line is printed. */
let around: ((write: () => void) => void) | null = null;
export function setLogWrapper(wrapper: ((write: () => void) => void) | null): void {
  around = wrapper;
}

function emit(text: string): void {
  const line = `${colour.dim(`[${timestamp()}]`)} ${text}\n`;
  const write = () => process.stderr.write(line);
  if (around) around(write);
  else write();
}

export function log(message: string): void {
  emit(message);
}

export function success(message: string): void {
  emit(colour.green(message));
}

/** A failure to report (not a fatal error of the script itself). */
export function failure(message: string): void {
  emit(colour.red(message));
}

export function warn(message: string): void {
  emit(colour.yellow(`WARNING: ${message}`));
}

export function error(message: string): void {
  emit(colour.red(`ERROR: ${message}`));
}

export { colour };
