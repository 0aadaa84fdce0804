// A byte progress bar (bytes, MiB/s, ETA) on a terminal; nothing at all when
// stderr is not a TTY, so logs and CI output stay clean.
import cliProgress from "cli-progress";
import { setLogWrapper } from "./log.ts";
import { MiB, formatBytes } from "./sizes.ts";

export interface Progress {
  update(doneBytes: number): void;
  stop(): void;
}

const NONE: Progress = { update() {}, stop() {} };

export function byteProgress(label: string, totalBytes: number): Progress {
  if (!process.stderr.isTTY) return NONE;
  const started = performance.now();
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} {bar} {percentage}% | {done} / {total} | {speed} MiB/s | ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 50,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  const fields = (done: number) => ({
    done: formatBytes(done),
    total: formatBytes(totalBytes),
    speed: (done / MiB / Math.max((performance.now() - started) / 1000, 1e-3)).toFixed(1),
  });
  bar.start(totalBytes, 0, fields(0));
  const detach = keepLogsAbove(bar);
  return {
    update(done) {
      bar.update(done, fields(done));
    },
    stop() {
      detach();
      bar.stop();
    },
  };
}

/** While a bar is live, log lines are printed above it; returns the undo. */
export function keepLogsAbove(bar: cliProgress.SingleBar): () => void {
  setLogWrapper((write) => {
    process.stderr.write("\r\x1b[2K");
    write();
    bar.render();
  });
  return () => setLogWrapper(null);
}
