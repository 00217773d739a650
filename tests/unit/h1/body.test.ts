/**
 * The HTTP/1.1 body path in isolation: the decoders (a synchronous step over the buffered
 * bytes, tryRead(), pooled body buffers) and writeBody's coalescing, over fake sockets. Bulk
 * bodies must arrive byte-exact however the socket splits them, a chunk must stay intact until
 * the next read(), no read may run while the consumer still holds a chunk (backpressure) or
 * wait for bytes after the message, and buffers must go back to the pool once the body ended.
 */

import assert from "node:assert/strict";
import { ChunkedBody, CloseBody, LengthBody, TruncatedBodyError } from "../../../src/http/h1/body.ts";
import { BODY_BUFFER, freeBodyBuffers } from "../../../src/net/buffers.ts";
import { ConnReader, type Readable } from "../../../src/http/h1/reader.ts";
import { ConnWriter, writeBody } from "../../../src/http/h1/write.ts";
import { bytesBody } from "../../../src/http/exchange.ts";
import { rng } from "../h2/helpers.ts";
import { concat } from "../../helpers/common.ts";

const enc = new TextEncoder();

/**
 * A socket returning the given pieces (one per read, split if the buffer is smaller). Reads
 * resolve on a macrotask, like real ones, and it counts how many are in flight at once.
 */
class PieceConn implements Readable {
  #pieces: Uint8Array[];
  inFlight = 0;
  maxInFlight = 0;
  reads = 0;
  /** A read asked for bytes past the last piece (a peer that sent all and awaits an answer). */
  readPastEnd = false;
  constructor(pieces: Uint8Array[], readonly hangAtEnd = false) {
    this.#pieces = pieces.filter((p) => p.length > 0);
  }
  read(p: Uint8Array): Promise<number | null> {
    this.reads++;
    if (this.hangAtEnd && this.#pieces.length === 0) {
      // Such a peer never answers; resolve late only so a regression fails instead of hanging.
      this.readPastEnd = true;
      return new Promise((r) => setTimeout(() => r(null), 1000));
    }
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise((resolve) =>
      setTimeout(() => {
        this.inFlight--;
        const next = this.#pieces.shift();
        if (!next) return resolve(null);
        const n = Math.min(next.length, p.length);
        p.set(next.subarray(0, n));
        if (n < next.length) this.#pieces.unshift(next.subarray(n));
        resolve(n);
      }, 0)
    );
  }
}

function payload(n: number, seed: number): Uint8Array {
  const next = rng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 256);
  return out;
}

/** Random piece sizes between 1 byte and 3 body buffers. */
function randomPieces(bytes: Uint8Array, seed: number): Uint8Array[] {
  const next = rng(seed);
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    const n = 1 + Math.floor(next() * next() * 3 * BODY_BUFFER);
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

/** Chunked encoding of `data` with random chunk sizes (some above a body buffer), optional trailers. */
function chunked(data: Uint8Array, seed: number, trailer = ""): Uint8Array {
  const next = rng(seed);
  const parts: Uint8Array[] = [];
  for (let at = 0; at < data.length;) {
    const n = 1 + Math.floor(next() * next() * 2 * BODY_BUFFER);
    const piece = data.subarray(at, at + n);
    parts.push(enc.encode(`${piece.length.toString(16)}\r\n`), piece, enc.encode("\r\n"));
    at += n;
  }
  parts.push(enc.encode(`0\r\n${trailer}\r\n`));
  return concat(parts);
}

/**
 * Reads `body` to the end like writeBody does, checking each chunk stays intact while it is
 * "being written" (a macrotask) until the next read().
 */
async function drain(body: LengthBody | ChunkedBody | CloseBody): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (;;) {
    const chunk = body.tryRead() ?? await body.read();
    if (chunk === null) break;
    const copy = chunk.slice();
    parts.push(copy);
    // A slow consumer: other work runs while the chunk is "being written".
    await new Promise((r) => setTimeout(r, 0));
    assert.deepEqual(chunk, copy, "a chunk changed while it was being written");
  }
  return concat(parts);
}

Deno.test("Content-Length bodies arrive intact, one socket read at a time", async () => {
  for (const seed of [1, 2, 3, 4]) {
    const data = payload(700_000 + seed * 1000, seed);
    const conn = new PieceConn(randomPieces(data, seed + 10));
    const r = new ConnReader(conn);
    let clean: boolean | undefined;
    const body = new LengthBody(r, data.length, Infinity, (c) => clean = c, 502);
    assert.deepEqual(await drain(body), data);
    assert.equal(clean, true);
    assert.ok(conn.maxInFlight <= 1, `reads in flight at once: ${conn.maxInFlight}`);
    assert.equal(r.pending, undefined, "no read left pending after the body ended");
  }
});

Deno.test("chunked bodies (chunks above and below a buffer) arrive intact, trailers too", async () => {
  for (const seed of [5, 6, 7, 8]) {
    const data = payload(600_000 + seed * 777, seed);
    const wire = chunked(data, seed, seed % 2 ? "x-checksum: abc\r\n" : "");
    const conn = new PieceConn(randomPieces(wire, seed + 20));
    const r = new ConnReader(conn);
    let clean: boolean | undefined;
    const body = new ChunkedBody(r, Infinity, (c) => clean = c, 502);
    assert.deepEqual(await drain(body), data);
    assert.equal(clean, true);
    assert.deepEqual(body.trailers(), seed % 2 ? ["x-checksum", "abc"] : undefined);
    assert.ok(conn.maxInFlight <= 1, `reads in flight at once: ${conn.maxInFlight}`);
  }
});

Deno.test("close-delimited body reads until EOF; Content-Length body cut short is truncated", async () => {
  const data = payload(400_000, 9);
  const r = new ConnReader(new PieceConn(randomPieces(data, 30)));
  let clean: boolean | undefined;
  assert.deepEqual(await drain(new CloseBody(r, Infinity, (c) => clean = c, 502)), data);
  assert.equal(clean, true);

  const cut = new ConnReader(new PieceConn(randomPieces(data.subarray(0, 300_000), 31)));
  let cutClean: boolean | undefined;
  const body = new LengthBody(cut, data.length, Infinity, (c) => cutClean = c, 502);
  await assert.rejects(() => drain(body), TruncatedBodyError);
  assert.equal(cutClean, false);
});

Deno.test("the next message after a body is parsed from the same reader; buffers return to the pool", async () => {
  const data = payload(300_000, 11);
  const next = enc.encode("GET /next HTTP/1.1\r\nhost: a\r\n\r\n");
  const wire = new Uint8Array(data.length + next.length);
  wire.set(data);
  wire.set(next, data.length);
  const r = new ConnReader(new PieceConn(randomPieces(wire, 40)));
  const body = new LengthBody(r, data.length, Infinity, () => {}, 400);
  assert.deepEqual(await drain(body), data);
  // Whatever was read past the body is the next message's start.
  while (r.available < next.length && (await r.fill()));
  assert.equal(new TextDecoder().decode(r.take(next.length)), "GET /next HTTP/1.1\r\nhost: a\r\n\r\n");
  const before = freeBodyBuffers();
  r.shrink();
  assert.ok(freeBodyBuffers() > before, "the body buffers went back to the pool");
  assert.equal(r.buf.length, 4096, "an idle reader is back to a small buffer");
});

/** A socket writer that records what it got, one write at a time, each taking a macrotask. */
class SlowSink {
  writes: Uint8Array[] = [];
  write(p: Uint8Array): Promise<number> {
    const copy = p.slice();
    return new Promise((r) =>
      setTimeout(() => {
        this.writes.push(copy);
        r(p.length);
      }, 0)
    );
  }
  text(): string {
    return this.writes.map((w) => new TextDecoder().decode(w)).join("");
  }
}

Deno.test("writeBody: a buffered body goes out with the head in one write; a relayed one arrives intact", async () => {
  const sink = new SlowSink();
  const w = new ConnWriter(sink);
  w.pushText("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
  assert.equal(await writeBody(w, bytesBody(enc.encode("hello")), "length", false), 5);
  assert.equal(sink.writes.length, 1, "head and body in one write");
  assert.equal(sink.text(), "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");

  // Chunked re-encoding of a relayed chunked body (the upstream's chunk sizes are not kept).
  const data = payload(500_000, 12);
  const r = new ConnReader(new PieceConn(randomPieces(chunked(data, 13), 14)));
  const body = new ChunkedBody(r, Infinity, () => {}, 502);
  const out = new SlowSink();
  const ow = new ConnWriter(out);
  assert.equal(await writeBody(ow, body, "chunked", false), data.length);
  const all = new Uint8Array(out.writes.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of out.writes) {
    all.set(p, off);
    off += p.length;
  }
  const back = new ChunkedBody(new ConnReader(new PieceConn([all])), Infinity, () => {}, 502);
  assert.deepEqual(await drain(back), data);
});

Deno.test("a body whose end is already buffered never waits on a read (the peer sent it all and waits)", async () => {
  const data = payload(200_000, 15);
  for (const seed of [16, 17, 18]) {
    // The whole chunked body in pieces whose last one holds the end of the data and the terminator.
    const wire = chunked(data, seed, seed === 18 ? "x-t: 1\r\n" : "");
    const conn = new PieceConn(randomPieces(wire, seed), true);
    const r = new ConnReader(conn);
    let clean: boolean | undefined;
    const body = new ChunkedBody(r, Infinity, (c) => clean = c, 400);
    assert.deepEqual(await drain(body), data);
    assert.equal(clean, true);
    assert.equal(conn.readPastEnd, false, "a read waited for bytes after the message");
    assert.equal(r.pending, undefined);
  }
  const conn = new PieceConn(randomPieces(data, 19), true);
  const body = new LengthBody(new ConnReader(conn), data.length, Infinity, () => {}, 400);
  assert.deepEqual(await drain(body), data);
  assert.equal(conn.readPastEnd, false, "a read waited for bytes after the message");
});

Deno.test("ConnReader.fill: every byte once, then EOF, read hooks included", async () => {
  const data = enc.encode("GET / HTTP/1.1\r\nhost: a\r\n\r\n".repeat(50));
  const r = new ConnReader(new PieceConn(randomPieces(data, 7)));
  let before = 0, after = 0;
  r.beforeRead = () => before++;
  r.afterRead = () => after++;
  const got: Uint8Array[] = [];
  for (let i = 0; i < 10_000 && await r.fill(); i++) got.push(r.take(r.available).slice());
  assert.deepEqual(concat(got), data);
  assert.equal(r.eof, true);
  assert.equal(before, after, "each read's afterRead ran");
  assert.equal(await r.fill(), false, "after EOF: no more reads");
});

Deno.test("ConnReader.holding: the bytes read ahead come first, in the buffer they were read into", async () => {
  const ahead = new Uint8Array(4096);
  ahead.set(enc.encode("GET / HT"));
  const r = ConnReader.holding(new PieceConn([enc.encode("TP/1.1\r\n\r\n")]), ahead.subarray(0, 8));
  assert.equal(r.buf.buffer, ahead.buffer, "no copy, no second buffer");
  assert.equal(r.available, 8);
  assert.equal(await r.fill(), true);
  assert.equal(new TextDecoder().decode(r.take(r.available)), "GET / HTTP/1.1\r\n\r\n");
});
