// Matrix progress: tests done of total, elapsed time, and an ETA from the
// bytes uploaded so far (seconds per byte of the finished cells, applied to
// the bytes still to upload). A live bar on a terminal; otherwise one plain
// log line per finished test.
import cliProgress from "cli-progress";
import { formatDuration } from "../core/durations.ts";
import { log } from "../core/log.ts";
import { keepLogsAbove } from "../core/progress.ts";

/** Seconds left, from the finished cells' pace; null until a cell has finished. */
export function etaSeconds(doneBytes: number, doneSeconds: number, remainingBytes: number, currentElapsed = 0): number | null {
  if (doneBytes <= 0 || doneSeconds <= 0) return null;
  return Math.max(0, (remainingBytes * doneSeconds) / doneBytes - currentElapsed);
}

export interface ProgressStart {
  totalTests: number;
  doneTests: number;
  /** Bytes of all the cells not done yet. */
  remainingBytes: number;
  /** Pace of the cells finished in earlier sessions. */
  doneBytes: number;
  doneSeconds: number;
}

export interface MatrixProgress {
  cellStarted(label: string, bytes: number): void;
  /** `seconds` is the cell's wall time; cells without one (0) don't count for the pace. */
  cellFinished(bytes: number, seconds: number): void;
  stop(): void;
}

export function matrixProgress(start: ProgressStart): MatrixProgress {
  const t0 = performance.now();
  let { doneTests, remainingBytes, doneBytes, doneSeconds } = start;
  let current = "";
  let currentStarted = 0;
  const elapsed = () => (performance.now() - t0) / 1000;
  const eta = () => {
    const inCell = current ? (performance.now() - currentStarted) / 1000 : 0;
    const s = etaSeconds(doneBytes, doneSeconds, remainingBytes, inCell);
    return s === null ? "unknown" : formatDuration(s);
  };

  const started = (label: string) => {
    current = label;
    currentStarted = performance.now();
  };
  const finished = (bytes: number, seconds: number) => {
    doneTests++;
    remainingBytes -= bytes;
    if (seconds > 0) {
      doneBytes += bytes;
      doneSeconds += seconds;
    }
    current = "";
  };

  if (!process.stderr.isTTY) {
    return {
      cellStarted: started,
      cellFinished(bytes, seconds) {
        finished(bytes, seconds);
        log(`Progress: ${doneTests}/${start.totalTests} tests done, elapsed ${formatDuration(elapsed())}, ETA ${eta()}`);
      },
      stop() {},
    };
  }

  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      // (eta and duration are cli-progress's own fields: these are named apart.)
      format: "Matrix {bar} {value}/{total} tests | elapsed {run_elapsed} | ETA {run_eta} | {current}",
      hideCursor: true,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const fields = () => ({ run_elapsed: formatDuration(elapsed()), run_eta: eta(), current: current ? `now ${current}` : "" });
  bar.start(start.totalTests, doneTests, fields());
  const ticker = setInterval(() => bar.update(doneTests, fields()), 1000);
  ticker.unref();
  const detach = keepLogsAbove(bar);
  let stopped = false;
  return {
    cellStarted(label) {
      started(label);
      bar.update(doneTests, fields());
    },
    cellFinished(bytes, seconds) {
      finished(bytes, seconds);
      bar.update(doneTests, fields());
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(ticker);
      detach();
      bar.stop();
    },
  };
}
