/**
 * The HTTP/2 send path without sockets: FrameWriter coalescing (every frame queued in one turn
 * goes out in one socket write), END_STREAM folded onto a body's last DATA frame while that frame
 * is still buffered (and only then), the synchronous sendBodyNow() for bodies at hand, and the
 * flow-controlled path that must wait. Frames are read back with the codec's own FrameReader.
 */

import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { H2Session } from "../../../src/http/h2/connection.ts";
import { Flags, FrameReader, FrameType } from "../../../src/http/h2/frames.ts";
import { HpackDecoder, HpackEncoder } from "../../../src/http/h2/hpack.ts";
import { h2Limits } from "../../../src/http/h2/limits.ts";
import { FrameWriter, trimWhenIdle } from "../../../src/http/h2/writer.ts";
import { sweeper } from "../../../src/net/deadlines.ts";
import { type Body, bytesBody, type HeaderList } from "../../../src/http/exchange.ts";
import { turnNow } from "../../../src/net/clock.ts";

/** A socket that records every write and never has anything to read. */
class SinkConn {
  writes: Uint8Array[] = [];
  write(p: Uint8Array): Promise<number> {
    this.writes.push(p.slice());
    return Promise.resolve(p.length);
  }
  read(_p: Uint8Array): Promise<number | null> {
    return new Promise(() => {});
  }
  close(): void {}
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
}

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
}

function framesOf(writes: Uint8Array[]): Frame[] {
  const r = new FrameReader();
  for (const w of writes) r.push(w);
  const out: Frame[] = [];
  for (let f = r.next(); f; f = r.next()) {
    out.push({ type: f.header.type, flags: f.header.flags, streamId: f.header.streamId, payload: f.payload });
  }
  assert.equal(r.buffered, 0, "only whole frames were written");
  return out;
}

/** Lets the writer's flush (a microtask chain) and any immediates run. */
const turn = () => new Promise<void>((r) => setImmediate(r));

class TestSession extends H2Session {
  constructor(readonly sink: SinkConn, windowBytes = 65535) {
    super(sink as unknown as Deno.Conn, true, h2Limits({ stallTimeoutMs: 0 }));
    this.sendWindow = windowBytes;
    this.peerInitialWindow = windowBytes;
  }
  protected onHeaderBlock(): void {}
  event(_kind: string): void {}
  /** A stream as the server would have it after the request's END_STREAM. */
  open(id: number) {
    const s = this.createStream(id);
    s.recvEnded = true;
    return s;
  }
}

/** A body handing out `chunks` synchronously (tryRead) or only through read() (`async`). */
function chunkedBody(chunks: Uint8Array[], opts: { async?: boolean; trailers?: HeaderList } = {}): Body {
  let i = 0;
  let received = 0;
  const next = () => {
    if (i >= chunks.length) return null;
    received += chunks[i].length;
    return chunks[i++];
  };
  return {
    length: undefined,
    get received() {
      return received;
    },
    tryRead: opts.async ? () => undefined : next,
    read: () => new Promise((r) => setImmediate(() => r(next()))),
    trailers: () => opts.trailers,
    cancel() {},
  };
}

const bytes = (n: number, fill = 0x61) => new Uint8Array(n).fill(fill);

Deno.test("FrameWriter: frames queued in one turn go out in one socket write", async () => {
  const sink = new SinkConn();
  const w = new FrameWriter(sink, 1 << 20, () => assert.fail("no write error"));
  for (let id = 1; id <= 19; id += 2) {
    w.headers(id, Uint8Array.of(0x88), false, 16384);
    w.frame(FrameType.DATA, Flags.END_STREAM, id, bytes(32), 0, 32);
  }
  await w.settled();
  assert.equal(sink.writes.length, 1, "ten responses, one write");
  const frames = framesOf(sink.writes);
  assert.equal(frames.length, 20);
  assert.deepEqual(frames.slice(0, 2).map((f) => f.type), [FrameType.HEADERS, FrameType.DATA]);
  // Appended while a write is in flight: the next write, not a write per frame.
  w.u32(FrameType.WINDOW_UPDATE, 0, 1000);
  w.u32(FrameType.WINDOW_UPDATE, 1, 1000);
  await w.settled();
  assert.equal(sink.writes.length, 2);
});

Deno.test("FrameWriter.endStreamOnLastData: only the stream's last DATA frame, only while buffered", async () => {
  const sink = new SinkConn();
  const w = new FrameWriter(sink, 1 << 20, () => {});
  w.frame(FrameType.DATA, 0, 1, bytes(10), 0, 10);
  assert.equal(w.endStreamOnLastData(3), false, "another stream's frame");
  w.frame(FrameType.DATA, 0, 3, bytes(100), 0, 100); // > 64 bytes: the set() copy path
  assert.equal(w.endStreamOnLastData(1), false, "stream 1 is no longer the last DATA frame");
  assert.equal(w.endStreamOnLastData(3), true);
  assert.equal(w.endStreamOnLastData(3), false, "at most once");
  w.frame(FrameType.DATA, 0, 5, bytes(5), 0, 5);
  w.u32(FrameType.RST_STREAM, 5, 8);
  assert.equal(w.endStreamOnLastData(5), false, "a later frame of the stream followed it");
  w.frame(FrameType.DATA, 0, 7, bytes(5), 0, 5);
  w.headers(7, Uint8Array.of(0x88), true, 16384);
  assert.equal(w.endStreamOnLastData(7), false, "trailers followed it");
  w.frame(FrameType.DATA, 0, 9, bytes(5), 0, 5);
  await w.settled();
  assert.equal(w.endStreamOnLastData(9), false, "already handed to the socket");
  const frames = framesOf(sink.writes);
  const data = frames.filter((f) => f.type === FrameType.DATA);
  assert.deepEqual(data.map((f) => [f.streamId, f.flags & Flags.END_STREAM, f.payload.length]), [
    [1, 0, 10],
    [3, Flags.END_STREAM, 100],
    [5, 0, 5],
    [7, 0, 5],
    [9, 0, 5],
  ]);
  assert.deepEqual(data[1].payload, bytes(100), "payload intact");
});

Deno.test("sendBodyNow: a body at hand goes out synchronously, END_STREAM on its last DATA frame", async () => {
  const sink = new SinkConn();
  const h2 = new TestSession(sink);
  const s = h2.open(1);
  h2.sendHeaders(s, [[":status", "200"]], false);
  const pending = h2.sendBodyNow(s, bytesBody(bytes(32)));
  assert.equal(pending, undefined, "no promise: nothing had to wait");
  assert.equal(s.sendEnded, true);
  assert.equal(s.closed, true, "both sides ended: the stream left the table");
  // Two chunks at hand: two DATA frames, END_STREAM on the second only.
  const s3 = h2.open(3);
  assert.equal(h2.sendBodyNow(s3, chunkedBody([bytes(5, 1), bytes(7, 2)])), undefined);
  await h2.writer.settled();
  assert.equal(sink.writes.length, 1, "both responses in one write");
  const frames = framesOf(sink.writes);
  assert.deepEqual(frames.map((f) => [f.type, f.streamId, f.flags, f.payload.length]), [
    [FrameType.HEADERS, 1, Flags.END_HEADERS, 1],
    [FrameType.DATA, 1, Flags.END_STREAM, 32],
    [FrameType.DATA, 3, 0, 5],
    [FrameType.DATA, 3, Flags.END_STREAM, 7],
  ]);
  assert.equal(s.bytesSent, 1 + 32);
  assert.equal(h2.sendWindow, 65535 - 32 - 12);
  h2.abort();
});

Deno.test("sendBodyNow: trailers end the stream; an empty body ends with an empty END_STREAM frame", async () => {
  const sink = new SinkConn();
  const h2 = new TestSession(sink);
  const s1 = h2.open(1);
  assert.equal(h2.sendBodyNow(s1, chunkedBody([bytes(4)], { trailers: ["grpc-status", "0"] })), undefined);
  const s3 = h2.open(3);
  assert.equal(h2.sendBodyNow(s3, chunkedBody([])), undefined);
  await h2.writer.settled();
  const frames = framesOf(sink.writes);
  assert.deepEqual(frames.map((f) => [f.type, f.streamId, f.flags & Flags.END_STREAM, f.payload.length]), [
    [FrameType.DATA, 1, 0, 4],
    [FrameType.HEADERS, 1, Flags.END_STREAM, frames[1].payload.length],
    [FrameType.DATA, 3, Flags.END_STREAM, 0],
  ]);
  assert.deepEqual(new HpackDecoder().decode(frames[1].payload), [["grpc-status", "0"]]);
  h2.abort();
});

Deno.test("sendBody: a body that must be awaited; END_STREAM folded only if its frame is still buffered", async () => {
  const sink = new SinkConn();
  const h2 = new TestSession(sink);
  const s1 = h2.open(1);
  // read() resolves on a later turn each time: the chunk's frame is flushed before the end is
  // known, so the end is an empty END_STREAM frame.
  const p = h2.sendBodyNow(s1, chunkedBody([bytes(3), bytes(4)], { async: true }));
  assert.ok(p instanceof Promise);
  await p;
  await h2.writer.settled();
  const frames = framesOf(sink.writes);
  assert.deepEqual(frames.map((f) => [f.type, f.streamId, f.flags & Flags.END_STREAM, f.payload.length]), [
    [FrameType.DATA, 1, 0, 3],
    [FrameType.DATA, 1, 0, 4],
    [FrameType.DATA, 1, Flags.END_STREAM, 0],
  ]);
  assert.equal(s1.closed, true);
  h2.abort();
});

Deno.test("sendBody: flow control holds the rest until WINDOW_UPDATE; every byte once, END_STREAM once", async () => {
  const sink = new SinkConn();
  const h2 = new TestSession(sink, 10);
  const s = h2.open(1);
  const body = bytes(25, 7);
  const p = h2.sendBodyNow(s, chunkedBody([body.subarray(0, 12), body.subarray(12)]));
  assert.ok(p instanceof Promise, "the window (10) is smaller than the body (25): it must wait");
  await h2.writer.settled();
  assert.equal(s.sendWindow, 0);
  assert.equal(framesOf(sink.writes).reduce((n, f) => n + f.payload.length, 0), 10);
  // The peer opens both windows step by step.
  for (let i = 0; i < 3 && !s.sendEnded; i++) {
    h2.sendWindow += 10;
    s.sendWindow += 10;
    s.wakeSend();
    await turn();
  }
  await p;
  await h2.writer.settled();
  const data = framesOf(sink.writes).filter((f) => f.type === FrameType.DATA);
  const sent = new Uint8Array(data.reduce((n, f) => n + f.payload.length, 0));
  let o = 0;
  for (const f of data) {
    sent.set(f.payload, o);
    o += f.payload.length;
  }
  assert.deepEqual(sent, body);
  assert.ok(data.every((f) => f.payload.length <= 10), "never beyond the window");
  assert.equal(data.filter((f) => f.flags & Flags.END_STREAM).length, 1);
  assert.equal(data.at(-1)!.flags & Flags.END_STREAM, Flags.END_STREAM, "END_STREAM last");
  assert.equal(s.closed, true);
  h2.abort();
});

Deno.test("sendData/sendBody reject (never throw) once the stream is gone", async () => {
  const sink = new SinkConn();
  const h2 = new TestSession(sink);
  const s = h2.open(1);
  h2.resetStream(s, 8);
  await assert.rejects(h2.sendData(s, bytes(3), true));
  await assert.rejects(h2.sendBody(s, bytesBody(bytes(3))));
  assert.throws(() => h2.sendBodyNow(s, bytesBody(bytes(3))));
  h2.abort();
});

Deno.test("FrameWriter.headers: only the first `length` octets of a longer buffer, split by maxFrame", async () => {
  const sink = new SinkConn();
  const w = new FrameWriter(sink, 1 << 20, () => assert.fail("no write error"));
  // A buffer like the encoder's: the block, then stale octets the frames must not carry.
  const buf = new Uint8Array(400).fill(0xee);
  for (let i = 0; i < 300; i++) buf[i] = i & 0x7f;
  w.headers(1, buf, true, 16384, 40); // one small frame (copied byte by byte)
  w.headers(3, buf, false, 100, 300); // HEADERS + 2 CONTINUATION, the last of 100 octets
  w.headers(5, buf, false, 128, 300); // the last frame of 44 octets
  w.headers(7, buf.subarray(0, 200), false, 16384); // the whole array (length defaults to it)
  await w.settled();
  const frames = framesOf(sink.writes);
  const got = (id: number) => frames.filter((f) => f.streamId === id);
  assert.equal(got(1).length, 1);
  assert.equal(got(1)[0].flags, Flags.END_HEADERS | Flags.END_STREAM);
  assert.deepEqual(got(1)[0].payload, buf.subarray(0, 40));
  for (const [id, sizes] of [[3, [100, 100, 100]], [5, [128, 128, 44]]] as const) {
    assert.deepEqual(got(id).map((f) => f.payload.length), sizes);
    assert.deepEqual(got(id).map((f) => f.type), [
      FrameType.HEADERS,
      FrameType.CONTINUATION,
      FrameType.CONTINUATION,
    ]);
    assert.deepEqual(got(id).map((f) => f.flags), [0, 0, Flags.END_HEADERS]);
    const joined = new Uint8Array(300);
    let o = 0;
    for (const f of got(id)) {
      joined.set(f.payload, o);
      o += f.payload.length;
    }
    assert.deepEqual(joined, buf.subarray(0, 300), "no stale octet past `length`");
  }
  assert.deepEqual(got(7)[0].payload, buf.subarray(0, 200));
});

Deno.test("HpackEncoder.encodeFlat: the same block and table state as encode(), in lastBlock", () => {
  const a = new HpackEncoder();
  const b = new HpackEncoder();
  const lists: string[][] = [
    [":status", "200", "server", "nginx", "content-type", "text/plain", "content-length", "32"],
    [":status", "200", "server", "nginx", "set-cookie", "a=b", "x-long", "v".repeat(300)],
    [":status", "404", "server", "nginx", "content-length", "9"],
    // Larger than the encoder's first buffer (512 octets): lastBlock is the grown one.
    [":status", "200", "x-longer", "w".repeat(700)],
  ];
  for (const l of lists) {
    const pairs: [string, string][] = [];
    for (let i = 0; i < l.length; i += 2) pairs.push([l[i], l[i + 1]]);
    const n = b.encodeFlat(l);
    assert.deepEqual(b.lastBlock.subarray(0, n), a.encode(pairs));
    assert.equal(b.dynamicTableSize, a.dynamicTableSize);
  }
  const n = b.encodeFlat(lists[0]);
  const copy = b.lastBlock.slice(0, n);
  b.encodeFlat(lists[2]);
  assert.notDeepEqual(b.lastBlock.subarray(0, n), copy, "valid only until the next call (callers copy it)");
});

Deno.test("trimWhenIdle: grown write buffers go back at the next sweep, only if still idle", async () => {
  const grown = async () => {
    const w = new FrameWriter(new SinkConn(), 1 << 20, () => {});
    const big = bytes(60_000);
    w.frame(FrameType.DATA, 0, 1, big, 0, big.length);
    w.frame(FrameType.DATA, 0, 1, big, 0, big.length);
    await w.settled();
    assert.ok(w.capacity > 64 * 1024, `grown: ${w.capacity}`);
    return w;
  };
  const idle = { writer: await grown(), active: false, closed: false, trimQueued: false };
  const busy = { writer: await grown(), active: true, closed: false, trimQueued: false };
  const before = [idle.writer.capacity, busy.writer.capacity];
  trimWhenIdle(idle);
  trimWhenIdle(idle); // queued once
  trimWhenIdle(busy);
  assert.ok(idle.trimQueued && busy.trimQueued);
  assert.deepEqual([idle.writer.capacity, busy.writer.capacity], before, "nothing happens at once");
  sweeper.sweep(performance.now());
  assert.equal(idle.writer.capacity, 16 * 1024, "idle at the sweep: back to one 16 KiB buffer");
  assert.equal(busy.writer.capacity, before[1], "streams again: buffers kept");
  assert.equal(sweeper.size, 0, "the sweep entry removed itself");
  assert.ok(!idle.trimQueued && !busy.trimQueued, "the sweep forgets what it trimmed or kept");
  // The busy one goes idle later: queued again, trimmed at the next sweep.
  busy.active = false;
  trimWhenIdle(busy);
  sweeper.sweep(performance.now());
  assert.equal(busy.writer.capacity, 16 * 1024);
});

Deno.test("turnNow: one reading per event-loop turn", async () => {
  const a = turnNow();
  const spinUntil = performance.now() + 2;
  while (performance.now() < spinUntil) { /* the real clock moves on */ }
  assert.equal(turnNow(), a, "the same turn reads the same value");
  await turn();
  const b = turnNow();
  assert.ok(b >= a + 2, `a later turn reads the clock again (${a} → ${b})`);
  await turn();
});
