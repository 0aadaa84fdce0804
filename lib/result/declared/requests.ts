// The requests phase (lib/upload/phases/requests.ts): after the download,
// with the uploaded file still stored, K requests of each of the file list
// page, the entry's info page and a download's first byte, one kind after
// the other; each figure is the median of its K. Null with --requests 0 or
// when the upload failed. Compared as secondary metrics (see declared/download.ts);
// their instructions per request are the twin's (declared/instructions.ts).
import { intOrNull, realOrNull, textOrNull } from "../field.ts";
import { secondary } from "./download.ts";

/** A request's median time, shown in ms; timed with performance.now() and kept to the microsecond. */
const timed = (key: string, name: string) =>
  ({ ...secondary(key, name, "ms", 1e-3, 3), higherIsBetter: false, higher: "slower", lower: "faster", resolution: () => 1e-6 }) as const;

const TIMED = "a monotonic clock in the harness (performance.now()), per request; the median of K";

export const REQUEST_FIELDS = [
  intOrNull("requests_per_kind", {
    doc: "K: the requests made of each kind (--requests, default 20); null when the phase did not run (--requests 0, a failed upload)",
    phase: "requests", source: "the requests made", migration: 10, csv: "counters",
  }),
  realOrNull("list_page_seconds", {
    doc: "the file list page (`GET /files`, the uploaded entry listed): from sending the request to the last byte of its body, on a kept-alive connection",
    unit: "s", phase: "requests", source: TIMED, migration: 10, csv: "counters", compare: timed("list_page_seconds", "list page"),
  }),
  realOrNull("info_page_seconds", {
    doc: "the entry's info page (`GET /files/ID/info`, whole body read)", unit: "s", phase: "requests", source: TIMED, migration: 10, csv: "counters",
    compare: timed("info_page_seconds", "info page"),
  }),
  realOrNull("download_first_byte_seconds", {
    doc: "a download's first byte: `GET /-ID` with `Range: bytes=0-0`, from sending the request to its one body byte (PicoShare starts it as a whole " +
      "download: the entry looked up, the download recorded, the first chunk read)",
    unit: "s", phase: "requests", source: TIMED, migration: 10, csv: "counters", compare: timed("download_first_byte_seconds", "download first byte"),
  }),
  textOrNull()("requests_error", {
    doc: "what went wrong in the requests phase (its figures are then null); null when it succeeded", phase: "requests", source: "the harness", migration: 10,
  }),
] as const;
