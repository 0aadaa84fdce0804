// PicoShare's end in the VM, seen by one long-lived ssh stream that prints
// one line when it has ended (exitWatchScript); a stream that breaks (not
// PicoShare) is reconnected and started again, a few times.
import type { ExitInfo } from "../types.ts";
import { interrupted } from "../../core/cleanup.ts";
import { errorMessage } from "../../core/errors.ts";
import { warn } from "../../core/log.ts";
import type { RemoteStream, SshConnection } from "../../vm/ssh.ts";
import { isExitLine, parseExitLine } from "./guest-scripts.ts";

export interface ExitWatchHost {
  remote(): SshConnection;
  /** The watch script for the PicoShare running now (see exitWatchScript). */
  script(): string;
  onExit(info: ExitInfo): void;
  /** PicoShare's exit is known already. */
  exited(): boolean;
  tearingDown(): boolean;
  /** Makes sure the shared connection is up again after a break. */
  reconnect(): Promise<void>;
  /** The watch is given up: nobody will say when PicoShare ends. */
  onLost(): void;
}

export class ExitWatcher {
  private stream: RemoteStream | null = null;

  constructor(private readonly host: ExitWatchHost) {}

  /** A stream was started (and not detached). */
  get started(): boolean {
    return this.stream !== null;
  }

  watch(restarts = 0): void {
    const h = this.host;
    if (h.exited()) return;
    let seen = false;
    const stream = h.remote().stream(h.script(), (line) => {
      if (isExitLine(line)) {
        seen = true;
        h.onExit(parseExitLine(line));
      }
    });
    this.stream = stream;
    void stream.done.then(async () => {
      // (A restart stops the old one on purpose.)
      if (seen || h.exited() || h.tearingDown() || this.stream !== stream) return;
      // The stream broke (not PicoShare): reconnect and watch again, a few times.
      if (restarts >= 3 || interrupted()) {
        warn("lost track of PicoShare in the VM (the ssh stream that watches it kept breaking)");
        h.onLost();
        return;
      }
      await new Promise((r) => setTimeout(r, 500 * 2 ** restarts));
      if (h.tearingDown() || h.exited()) return;
      try {
        await h.reconnect();
        this.watch(restarts + 1);
      } catch (err) {
        h.onLost();
        warn(`lost the ssh connection to the VM: ${errorMessage(err)}`);
      }
    });
  }

  /** Stops the stream (its own errors are the caller's to ignore). */
  async stop(): Promise<void> {
    await this.stream?.stop();
  }

  /** For a restart: the old stream stopped and forgotten, before the new process is watched. */
  async detach(): Promise<void> {
    const stream = this.stream;
    this.stream = null;
    await stream?.stop().catch(() => {});
  }
}
