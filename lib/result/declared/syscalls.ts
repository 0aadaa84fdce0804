// System calls by kind of PicoShare's processes, for the upload (request to
// response) and the download: perf's syscall tracepoints (lib/upload/syscalls.ts
// names the calls of each kind). Null where they cannot be counted (no perf,
// no root, a VM backend); the log says why, once per run-test.
import { intOrNull, textOrNull } from "../field.ts";
import { count } from "./counters.ts";

const SOURCE = "`perf stat -e raw_syscalls:sys_enter --filter 'id == N || ...' -p PIDS`, one per kind, (Debian's `linux-perf`) in a private mount namespace with tracefs, enabled at the phase's start and disabled at its end";
const FSYNC = "fsync-class calls (fsync, fdatasync, sync_file_range, msync): what makes written data durable";
const WRITE = "write-class calls (write, pwrite64, writev, pwritev, pwritev2), to files, sockets and pipes";
const READ = "read-class calls (read, pread64, readv, preadv, preadv2), from files, sockets and pipes";

export const SYSCALL_FIELDS = [
  textOrNull()("syscalls_source", {
    doc: "what counted the `*_fsync_calls`, `*_write_calls`, `*_read_calls`: `perf tracepoints`; null where nothing could (the log says why)",
    phase: "upload", source: "the harness", migration: 9,
  }),
  intOrNull("upload_fsync_calls", {
    doc: `${FSYNC}, during the upload`, phase: "upload", source: SOURCE, migration: 9,
    compare: count("upload_fsync_calls", "fsync calls", "more fsyncs", "fewer fsyncs"),
  }),
  intOrNull("upload_write_calls", {
    // Not compared: the same count as write_syscalls (/proc's syscw) in every upload measured, which is.
    doc: `${WRITE}, during the upload`, phase: "upload", source: SOURCE, migration: 9,
  }),
  intOrNull("upload_read_calls", {
    doc: `${READ}, during the upload`, phase: "upload", source: SOURCE, migration: 9,
  }),
  intOrNull("download_fsync_calls", { doc: `${FSYNC}, during the download`, phase: "download", source: SOURCE, migration: 9 }),
  intOrNull("download_write_calls", { doc: `${WRITE}, during the download`, phase: "download", source: SOURCE, migration: 9 }),
  intOrNull("download_read_calls", { doc: `${READ}, during the download`, phase: "download", source: SOURCE, migration: 9 }),
] as const;
