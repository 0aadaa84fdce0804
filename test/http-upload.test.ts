// The upload client against real HTTP servers on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseResponse, postFileMultipart } from "../lib/upload/http-upload.ts";
import { writeTestFile } from "../lib/upload/testfiles.ts";
import { MiB } from "../lib/core/sizes.ts";

let dir: string;
let file: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "http-upload-"));
  file = join(dir, "3M.bin");
  await writeTestFile(file, 3 * MiB + 17);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("parseResponse", () => {
  test("content-length: complete only when the whole body is there", () => {
    const head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    expect(parseResponse(Buffer.from(`${head}abc`), false)).toBeNull();
    expect(parseResponse(Buffer.from(`${head}abcde`), false)).toEqual({ status: 200, body: "abcde" });
  });
  test("chunked bodies are decoded", () => {
    const text = "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    expect(parseResponse(Buffer.from(text), false)).toEqual({ status: 400, body: "abcde" });
    expect(parseResponse(Buffer.from(text.slice(0, 60)), false)).toBeNull();
  });
  test("no length: the body runs to the close", () => {
    const text = Buffer.from("HTTP/1.1 500 Oops\r\n\r\nbroken");
    expect(parseResponse(text, false)).toBeNull();
    expect(parseResponse(text, true)).toEqual({ status: 500, body: "broken" });
  });
});

describe("postFileMultipart", () => {
  test("the server receives the file, byte for byte, as the multipart field `file`, with our headers", async () => {
    let got: { name: string | null; bytes: Uint8Array; cookie: string | null } | null = null;
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const form = await req.formData();
        const part = form.get("file") as File;
        got = { name: part.name, bytes: new Uint8Array(await part.arrayBuffer()), cookie: req.headers.get("cookie") };
        return Response.json({ id: "abc" });
      },
    });
    try {
      let progress = 0;
      const res = await postFileMultipart(`http://127.0.0.1:${server.port}/api/entry?x=1`, { Cookie: "s=1" }, file, {
        onProgress: (n) => (progress = n),
      });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toEqual({ id: "abc" });
      expect(res.sentBytes).toBe(3 * MiB + 17);
      expect(progress).toBe(3 * MiB + 17);
      expect(got!.name).toBe("3M.bin");
      expect(got!.cookie).toBe("s=1");
      expect(Buffer.from(got!.bytes).equals(readFileSync(file))).toBe(true);
    } finally {
      server.stop(true);
    }
  });

  test("an error status is returned, not thrown", async () => {
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("no", { status: 401 }) });
    try {
      const res = await postFileMultipart(`http://127.0.0.1:${server.port}/`, {}, file);
      expect(res.status).toBe(401);
      expect(res.body).toBe("no");
    } finally {
      server.stop(true);
    }
  });

  test("a server that closes without answering is an error", async () => {
    const srv = createServer((sock) => sock.once("data", () => sock.destroy()));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as { port: number }).port;
    try {
      await expect(postFileMultipart(`http://127.0.0.1:${port}/`, {}, file)).rejects.toThrow();
    } finally {
      srv.close();
    }
  });

  test("an abort stops the upload at once", async () => {
    // A server that accepts but never reads: the upload stalls on backpressure.
    const srv = createServer((sock) => sock.pause());
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as { port: number }).port;
    try {
      const t0 = performance.now();
      await expect(
        postFileMultipart(`http://127.0.0.1:${port}/`, {}, file, { signal: AbortSignal.timeout(200) }),
      ).rejects.toThrow();
      expect(performance.now() - t0).toBeLessThan(2000);
    } finally {
      srv.close();
    }
  });

  test("a refused connection is an error", async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
    await expect(postFileMultipart(`http://127.0.0.1:${port}/`, {}, file)).rejects.toThrow();
  });
});
