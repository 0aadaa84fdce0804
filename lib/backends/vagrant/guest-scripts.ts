// The shell scripts the vagrant backend runs in the guest, and what they
// print back. Plain POSIX sh, since ssh hands every command to the remote
// user's login shell (bash for vagrant, possibly dash).
import { goRuntimeVarsSet } from "../../upload/provenance.ts";
import type { ExitInfo } from "../types.ts";
import { shq } from "../../core/exec.ts";
import { systemdExit, waitStatusExit } from "../../vm/guest.ts";

export type StartMethod = "systemd-run" | "setsid";

/** `alive PID`: true while the process runs and is not a zombie. */
export const ALIVE_FN =
  "alive() { [ -r /proc/$1/status ] || return 1; while read -r k v _; do if [ \"$k\" = State: ]; then [ \"$v\" != Z ]; return; fi; done < /proc/$1/status 2>/dev/null; return 1; }";

/**
 * Stops whatever PicoShare a guest folder's unit name or pid files point at:
 * SIGTERM (PicoShare shuts down within 5 s), SIGKILL after 6 s, then the
 * wrapper's whole process group.
 */
export function stopScript(dir: string): string {
  return [
    ALIVE_FN,
    'S=; [ "$(id -u)" = 0 ] || S="sudo -n"',
    `cd ${shq(dir)} 2>/dev/null || exit 0`,
    'if [ -s unit ]; then u=$(cat unit); $S systemctl stop "$u" 2>/dev/null; $S systemctl reset-failed "$u" 2>/dev/null; fi',
    "p=$(cat picoshare.pid 2>/dev/null); w=$(cat wrapper.pid 2>/dev/null)",
    'if [ -n "$p" ] && alive "$p"; then kill -TERM "$p" 2>/dev/null; i=0; while alive "$p" && [ $i -lt 60 ]; do sleep 0.1; i=$((i + 1)); done; kill -KILL "$p" 2>/dev/null; fi',
    'if [ -n "$w" ] && alive "$w"; then kill -KILL -- "-$w" 2>/dev/null; fi',
    "true",
  ].join("\n");
}

export interface StartSpec {
  guestDir: string;
  /** "" as root, else "sudo -n ". */
  sudo: string;
  uid: number;
  gid: number;
  /** The systemd unit's name (systemd-run only). */
  unit: string | null;
  /** Ports to try, in order: the first nobody listens on is used. */
  candidatePorts: number[];
}

/**
 * The guest-side script that starts PicoShare, run by the ssh user's shell
 * with the secret on stdin. It writes the secret to a file only this user
 * reads, picks the first candidate port absent from /proc/net/tcp{,6}
 * (candidates lie below the usual ephemeral range, so that no outgoing
 * connection holds one), starts PicoShare detached from the ssh session, and
 * prints "port=N" and "pid=N".
 *   systemd-run: a transient unit (as the ssh user, RemainAfterExit so that
 *     its exit status stays readable, output appended to picoshare.log);
 *   setsid: `setsid -f` runs start.sh in a new session with every stream
 *     redirected; start.sh records both pids and, once PicoShare ends, its
 *     wait status in exit-status.
 */
export function startCommand(method: StartMethod, spec: StartSpec): string {
  const d = shq(spec.guestDir);
  const env = {
    PS_SHARED_SECRET_FILE: `${spec.guestDir}/secret`,
    // Go's multipart parser spills uploads here: one folder, wiped between tests.
    TMPDIR: `${spec.guestDir}/tmp`,
    ...goRuntimeVarsSet(),
  };
  const argv = [`${spec.guestDir}/bin/picoshare`, "-db", `${spec.guestDir}/data/store.db`].map(shq).join(" ");
  const lines = [
    "set -e",
    `cd ${d}`,
    "rm -f picoshare.pid wrapper.pid exit-status unit",
    "(umask 077 && cat > secret)",
    "port=",
    `for p in ${spec.candidatePorts.join(" ")}; do`,
    `  h=$(printf '%04X' "$p")`,
    '  if ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -Eq "^ *[0-9]+: [0-9A-F]+:$h [0-9A-F]+:0000 0A "; then port=$p; break; fi',
    "done",
    '[ -n "$port" ] || { echo "no free TCP port found in the VM" >&2; exit 1; }',
    // Kernel log lines stamped before this moment are not about this PicoShare.
    "read -r up _ < /proc/uptime",
  ];
  if (method === "systemd-run") {
    if (!spec.unit) throw new Error("systemd-run needs a unit name");
    const unit = shq(spec.unit);
    const log = `${spec.guestDir}/picoshare.log`;
    lines.push(
      `echo ${unit} > unit`,
      `${spec.sudo}systemd-run --quiet --unit=${unit} --uid=${spec.uid} --gid=${spec.gid} --working-directory=${d} ` +
        `-p RemainAfterExit=yes -p TimeoutStopSec=5 -p ${shq(`StandardOutput=append:${log}`)} -p ${shq(`StandardError=append:${log}`)} ` +
        `"--setenv=PORT=$port" ${Object.entries(env).map(([k, v]) => `--setenv=${shq(`${k}=${v}`)}`).join(" ")} ${argv}`,
      `${spec.sudo}systemctl show -p MainPID --value ${unit} > picoshare.pid`,
    );
  } else {
    const script = [
      "#!/bin/sh",
      "# Written by the picoshare-perf harness: runs PicoShare detached and records how it ended.",
      `cd ${d} || exit 1`,
      "echo $$ > wrapper.pid",
      'export PORT="$1"',
      ...Object.entries(env).map(([k, v]) => `export ${k}=${shq(v)}`),
      `${argv} &`,
      "echo $! > picoshare.pid",
      'wait "$!"',
      "echo $? > exit-status",
    ].join("\n");
    lines.push(
      `cat > start.sh <<'PICOSHARE_PERF_EOF'\n${script}\nPICOSHARE_PERF_EOF`,
      // A new session, all of its output to the log: nothing ties it to this ssh session.
      'setsid -f sh ./start.sh "$port" < /dev/null >> picoshare.log 2>&1',
      "i=0; while [ ! -s picoshare.pid ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done",
    );
  }
  lines.push('echo "port=$port"; echo "pid=$(cat picoshare.pid)"; echo "uptime=$up"');
  return lines.join("\n");
}

/** What startCommand prints: PicoShare's port, its pid and the guest's uptime (s) just before it started (null: not known). */
export function parseStartOutput(out: string): { port: number; pid: number | null; uptime: number | null } {
  const port = Number(/^port=(\d+)$/m.exec(out)?.[1]);
  const pid = Number(/^pid=(\d+)$/m.exec(out)?.[1]);
  if (!port) throw new Error(`starting PicoShare in the VM printed no port: ${out.trim().slice(0, 200)}`);
  const up = Number(/^uptime=(\d+(?:\.\d+)?)$/m.exec(out)?.[1]);
  return { port, pid: Number.isInteger(pid) && pid > 0 ? pid : null, uptime: Number.isFinite(up) && up > 0 ? up : null };
}

/**
 * The exit watcher: one line once PicoShare (pid 0: none known) has ended,
 * "exit-status N" from the setsid wrapper or "systemd ExecMainCode=C
 * ExecMainStatus=S" from its unit. Until then it prints a heartbeat dot, which
 * ends the loop (SIGPIPE) once nobody reads it, e.g. after --keep-vm, where
 * PicoShare outlives the harness.
 */
export function exitWatchScript(method: StartMethod, o: { guestDir: string; sudo: string; unit: string | null; pid: number }): string {
  const status = shq(`${o.guestDir}/exit-status`);
  const tail =
    method === "systemd-run"
      ? `echo "systemd $(${o.sudo}systemctl show -p ExecMainCode -p ExecMainStatus ${shq(o.unit!)} | tr '\\n' ' ')"`
      : `i=0; while [ ! -s ${status} ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done; echo "exit-status $(cat ${status} 2>/dev/null)"`;
  return `${ALIVE_FN}\nwhile alive ${o.pid}; do sleep 0.05; echo .; done\n${tail}`;
}

/** Whether a line of the exit watcher is its report (not a heartbeat). */
export function isExitLine(line: string): boolean {
  return /^(exit-status|systemd)\b/.test(line);
}

/**
 * How PicoShare ended, from the watcher's last line: "exit-status N" (the
 * wrapper's `wait` status: 128+n is signal n) or "systemd ExecMainCode=C
 * ExecMainStatus=S" (C 1: exited with status S; 2 or 3: killed or dumped by signal S).
 */
export function parseExitLine(line: string): ExitInfo {
  const w = /^exit-status\s+(\d+)?/.exec(line);
  if (w) return w[1] === undefined ? { code: null, signal: null } : waitStatusExit(Number(w[1]));
  const code = Number(/ExecMainCode=(\d+)/.exec(line)?.[1] ?? NaN);
  const status = Number(/ExecMainStatus=(\d+)/.exec(line)?.[1] ?? NaN);
  if (line.startsWith("systemd") && Number.isInteger(code) && Number.isInteger(status)) return systemdExit(code, status);
  return { code: null, signal: null };
}
