/**
 * Head buffers are recycled across client connections (src/net/buffers.ts), and only when that
 * is safe: a connection whose reads have all settled and whose buffer nobody else holds a view
 * of. A request body's chunks are views of the read buffer, so a connection that carried a
 * body keeps its buffer out of the pool. The server runs over a scripted connection here so
 * the test can see which ArrayBuffer each read went into.
 */

import assert from "node:assert/strict";
import { H1ServerConn } from "../../../src/http/h1/server.ts";
import { ConnReader } from "../../../src/http/h1/reader.ts";
import { gatewayResponse } from "../../../src/http/exchange.ts";
import {
  freeHeadBuffers,
  giveHeadBuffer,
  HEAD_BUFFER,
  isHeadBuffer,
  takeHeadBuffer,
} from "../../../src/net/buffers.ts";
import { listener, loadToml, pool } from "../config/helpers.ts";

/** Yields `request`, then EOF; remembers the buffers it was asked to read into; writes succeed. */
class ScriptedConn {
  readonly readInto = new Set<ArrayBufferLike>();
  written = "";
  #request: Uint8Array | null;

  constructor(request: string) {
    this.#request = new TextEncoder().encode(request);
  }

  read(p: Uint8Array): Promise<number | null> {
    this.readInto.add(p.buffer);
    const next = this.#request;
    this.#request = null;
    if (next === null) return Promise.resolve(null);
    p.set(next);
    return Promise.resolve(next.length);
  }

  write(p: Uint8Array): Promise<number> {
    this.written += new TextDecoder().decode(p);
    return Promise.resolve(p.length);
  }

  close(): void {}

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
}

async function serve(request: string): Promise<ScriptedConn> {
  const loaded = await loadToml(listener() + pool());
  assert.ok(loaded.snapshot, loaded.message);
  const cfg = loaded.snapshot.config.listeners[0];
  const conn = new ScriptedConn(request);
  await new H1ServerConn(
    conn as unknown as Deno.Conn,
    cfg,
    { ip: "127.0.0.1", port: 1, listener: cfg.name, tls: false },
    {
      handle: () => Promise.resolve(gatewayResponse(200, "answered\n")),
      complete: () => {},
      event: () => {},
    },
  ).run();
  assert.match(conn.written, /^HTTP\/1\.1 200 OK\r\n/, "the request was answered");
  return conn;
}

/** Empties the pool; the ArrayBuffers that were in it. */
function drainPool(): Set<ArrayBufferLike> {
  const out = new Set<ArrayBufferLike>();
  while (freeHeadBuffers() > 0) out.add(takeHeadBuffer().buffer);
  return out;
}

Deno.test("head buffers: only whole 4 KiB buffers enter the pool, and the pool is bounded", () => {
  drainPool();
  giveHeadBuffer(new Uint8Array(HEAD_BUFFER * 2).subarray(0, HEAD_BUFFER)); // a view of a larger buffer
  giveHeadBuffer(new Uint8Array(HEAD_BUFFER + 1));
  assert.equal(freeHeadBuffers(), 0, "views and other sizes are refused");
  const b = takeHeadBuffer();
  assert.ok(isHeadBuffer(b));
  giveHeadBuffer(b);
  assert.equal(freeHeadBuffers(), 1);
  assert.equal(takeHeadBuffer(), b, "the same buffer comes back");
  for (let i = 0; i < 1000; i++) giveHeadBuffer(new Uint8Array(HEAD_BUFFER));
  assert.equal(freeHeadBuffers(), 256, "at most 256 (1 MiB) wait in the pool");
  drainPool();
});

Deno.test("ConnReader.release: the buffer goes back and the reader is left empty; never under a pending read", async () => {
  drainPool();
  const conn = new ScriptedConn("GET / HTTP/1.1\r\n\r\n");
  const r = new ConnReader(conn);
  assert.ok(await r.fill());
  const buf = r.buf;
  r.release();
  assert.equal(r.available, 0);
  assert.equal(r.eof, true);
  assert.deepEqual(drainPool(), new Set([buf.buffer]), "the reader's buffer is in the pool");

  const busy = new ConnReader(new ScriptedConn(""));
  const pending = busy.readAhead(); // a read the reader did not wait for
  busy.release();
  assert.equal(freeHeadBuffers(), 0, "a buffer with a read in flight stays where it is");
  await pending;
});

Deno.test("h1 server: a connection without a body gives its head buffer to the next one", async () => {
  drainPool();
  const conn = await serve("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  assert.equal(conn.readInto.size, 1, "one buffer for the connection");
  const [used] = conn.readInto;
  assert.deepEqual(drainPool(), new Set([used]), "that buffer is in the pool once the connection ended");
});

Deno.test("h1 server: a connection that carried a request body never recycles its buffer", async () => {
  drainPool();
  const conn = await serve("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
  assert.ok(conn.readInto.size >= 1);
  const pooled = drainPool();
  for (const b of conn.readInto) assert.ok(!pooled.has(b), "a buffer the body saw is not in the pool");
});
