// The shell scripts the qemu backend runs in the guest as root (the image's
// user has password-less sudo): PicoShare's start as a systemd unit, and the
// sampler that reports the guest's memory and PicoShare's exit.
import { goRuntimeVarsSet } from "../../upload/provenance.ts";
import { shq } from "../../core/exec.ts";
import { COUNTERS_FN, MEM_FN, storageScript } from "../../vm/guest.ts";
import { GUEST_HTTP_PORT } from "../../vm/qemu.ts";

/** Guest paths (made in the image). */
export const GUEST_HOME = "/var/lib/picoshare";
const GUEST_BIN = "/usr/local/bin/picoshare";
export const UNIT = "picoshare.service";

/**
 * Installs the binary copied to /tmp/picoshare (unless `restart`) and starts
 * it as UNIT; prints its main pid. The secret goes in on stdin, into a 0600
 * file PicoShare reads (PS_SHARED_SECRET_FILE). One root shell in the guest
 * (each sudo costs a few hundred ms under TCG). A restart first stops the
 * unit, if it still runs, and clears a failed one, so that its name is free.
 */
export function startCommand(o: { restart?: boolean } = {}): string {
  const script = [
    "set -e",
    ...(o.restart
      ? [`systemctl stop ${UNIT} 2>/dev/null || :`, `systemctl reset-failed ${UNIT} 2>/dev/null || :`]
      : [`mv /tmp/picoshare ${GUEST_BIN}`, `chown root:root ${GUEST_BIN}`, `chmod 0755 ${GUEST_BIN}`]),
    `(umask 077; cat > ${GUEST_HOME}/secret)`,
    `chown picoshare:picoshare ${GUEST_HOME}/secret`,
    // PicoShare's output goes to the virtio serial port named "picoshare" (a file on the host).
    "port=",
    'for d in /sys/class/virtio-ports/*; do [ "$(cat "$d/name" 2>/dev/null)" = picoshare ] && port=/dev/${d##*/}; done',
    '[ -n "$port" ] || { echo "no virtio port named picoshare" >&2; exit 1; }',
    [
      "systemd-run --quiet",
      `--unit=${UNIT}`,
      "--uid=picoshare --gid=picoshare",
      `--working-directory=${GUEST_HOME}`,
      '--property=StandardOutput=file:"$port"',
      "--property=StandardError=inherit",
      "--property=KillMode=mixed",
      "--property=TimeoutStopSec=5",
      `--setenv=PORT=${GUEST_HTTP_PORT}`,
      `--setenv=PS_SHARED_SECRET_FILE=${GUEST_HOME}/secret`,
      `--setenv=TMPDIR=${GUEST_HOME}/tmp`,
      ...Object.entries(goRuntimeVarsSet()).map(([k, v]) => shq(`--setenv=${k}=${v}`)),
      `${GUEST_BIN} -db ${GUEST_HOME}/data/store.db`,
    ].join(" "),
    `systemctl show --property=MainPID --value ${UNIT}`,
  ].join("\n");
  return `sudo sh -c ${shq(script)}`;
}

/**
 * The long-lived sampler: "m USED USED_WITH_CACHE" (see MEM_FN) and, while
 * the process `pid` runs, its counters "c ..." (see COUNTERS_FN) every
 * `sampleMs`, fork-free in the guest (bash builtins only), and once it is
 * gone "x CODE STATUS", the unit's ExecMainCode and ExecMainStatus.
 */
export function samplerCommand(sampleMs: number, pid: number): string {
  const seconds = (sampleMs / 1000).toFixed(3);
  const loop = [
    MEM_FN,
    COUNTERS_FN,
    "f=$(mktemp -u); mkfifo -m 600 \"$f\"; exec 3<>\"$f\"; rm -f \"$f\"",
    `pid=$1; dead=0`,
    "while :; do",
    '  if [ $dead = 0 ] && ! kill -0 "$pid" 2>/dev/null; then dead=1; echo "x $(systemctl show --property=ExecMainCode --property=ExecMainStatus --value ' + UNIT + ' | tr "\\n" " ")"; fi',
    "  mem",
    '  [ $dead = 0 ] && ctr "$pid"',
    `  read -t ${seconds} -u 3 _ || :`,
    "done",
  ].join("\n");
  return `sudo bash -c ${shq(loop)} sampler ${pid}`;
}

/** Prints the unit's ExecMainCode and ExecMainStatus, one a line. */
export const UNIT_EXIT_COMMAND = `sudo systemctl show --property=ExecMainCode --property=ExecMainStatus --value ${UNIT}`;

/** PicoShare's data folder and multipart temp files in the guest (see parseStorage). */
export const STORAGE_COMMAND = `sudo sh -c ${shq(storageScript(`${GUEST_HOME}/data`, `${GUEST_HOME}/tmp`))}`;
