/**
 * Session bookkeeping without sockets: the closed-stream memory (§5.1: how a stream that left the
 * table ended decides between ignoring a late frame and an error) is a two-way table by stream id
 * that keeps streams closing in id order for 2 × limits.closedStreamMemory closes, and
 * H2Stream.tryRead() is read() without a promise.
 */

import assert from "node:assert/strict";
import { Closed, H2Session } from "../../../src/http/h2/connection.ts";
import { h2Limits } from "../../../src/http/h2/limits.ts";
import { H2StreamReset } from "../../../src/http/h2/stream.ts";

class NullConn {
  write(p: Uint8Array): Promise<number> {
    return Promise.resolve(p.length);
  }
  read(): Promise<number | null> {
    return new Promise(() => {});
  }
  close(): void {}
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
}

class TestSession extends H2Session {
  constructor(memory: number) {
    super(new NullConn() as unknown as Deno.Conn, true, h2Limits({ closedStreamMemory: memory }));
  }
  protected onHeaderBlock(): void {}
  event(_kind: string): void {}
  rememberNow(id: number, how: Closed): void {
    this.remember(id, how);
  }
}

Deno.test("closed-stream memory: a two-way table by stream id; in-order closes kept for 2 × sets closes", () => {
  // N = 3: 4 sets of two entries; stream id goes to set (id >>> 1) & 3 (1 → 0, 3 → 1, 5 → 2, 7 → 3, 9 → 0).
  const h2 = new TestSession(3);
  assert.equal(h2.closedHow(1), undefined, "nothing remembered yet");
  h2.rememberNow(1, Closed.Ended);
  h2.rememberNow(3, Closed.ResetLocal);
  h2.rememberNow(5, Closed.ResetRemote);
  assert.deepEqual([1, 3, 5].map((id) => h2.closedHow(id)), [
    Closed.Ended,
    Closed.ResetLocal,
    Closed.ResetRemote,
  ]);
  assert.equal(h2.closedHow(7), undefined, "a stream never closed is not remembered");
  assert.equal(h2.closedHow(9), undefined, "nor one whose set holds others (1)");
  assert.equal(h2.closedHow(0), undefined, "stream 0 never matches an empty entry");
  h2.rememberNow(1, Closed.ResetLocal); // the same stream again: how changes
  assert.equal(h2.closedHow(1), Closed.ResetLocal);
  h2.rememberNow(7, Closed.Ended);
  h2.rememberNow(9, Closed.Ended); // set 0 now holds 9 and 1
  assert.equal(h2.closedHow(1), Closed.ResetLocal, "two entries per set: 1 stays");
  h2.rememberNow(9, Closed.ResetRemote); // the newer entry updated in place
  h2.rememberNow(1, Closed.Ended); // and the older one
  assert.deepEqual([1, 9].map((id) => h2.closedHow(id)), [Closed.Ended, Closed.ResetRemote]);
  h2.rememberNow(17, Closed.Ended); // a third in set 0: the older (1) goes
  assert.equal(h2.closedHow(1), undefined);
  assert.deepEqual([3, 5, 7, 9, 17].map((id) => h2.closedHow(id)), [
    Closed.ResetLocal,
    Closed.ResetRemote,
    Closed.Ended,
    Closed.ResetRemote,
    Closed.Ended,
  ]);
  // Many more, in id order: the last 2 × 4 = 8 of one side are remembered, the rest forgotten.
  for (let id = 19; id < 1009; id += 2) h2.rememberNow(id, id % 3 === 0 ? Closed.ResetLocal : Closed.Ended);
  for (let id = 1; id < 993; id += 2) assert.equal(h2.closedHow(id), undefined, `stream ${id} forgotten`);
  for (let id = 993; id < 1009; id += 2) {
    assert.equal(
      h2.closedHow(id),
      id % 3 === 0 ? Closed.ResetLocal : Closed.Ended,
      `stream ${id} remembered`,
    );
  }
  // A long-lived stream that closes late displaces the older of its set, not the newer.
  h2.rememberNow(977, Closed.ResetLocal); // set 0 held 1001 (newer) and 993 (older)
  assert.equal(h2.closedHow(977), Closed.ResetLocal);
  assert.equal(h2.closedHow(1001), Closed.Ended);
  assert.equal(h2.closedHow(993), undefined);
  // The other parity shares the sets (a refused even id): both stay while the set has room.
  h2.rememberNow(1006, Closed.ResetLocal); // set 3: 1007 and 1006; 999 goes
  assert.deepEqual([1006, 1007, 999].map((id) => h2.closedHow(id)), [
    Closed.ResetLocal,
    Closed.Ended,
    undefined,
  ]);
  // The largest stream id (2^31 - 1) fits.
  h2.rememberNow(2 ** 31 - 1, Closed.ResetRemote);
  assert.equal(h2.closedHow(2 ** 31 - 1), Closed.ResetRemote);
  h2.abort();
});

Deno.test("closed-stream memory: a huge or infinite size is capped (2^20 sets), not a RangeError", () => {
  const h2 = new TestSession(Infinity);
  h2.rememberNow(1, Closed.Ended);
  h2.rememberNow(2 ** 19 + 1, Closed.ResetLocal); // another set (2^18)
  assert.deepEqual([1, 2 ** 19 + 1].map((id) => h2.closedHow(id)), [Closed.Ended, Closed.ResetLocal]);
  h2.abort();
});

Deno.test("closed-stream memory of 0 remembers nothing", () => {
  const h2 = new TestSession(0);
  h2.rememberNow(1, Closed.ResetLocal);
  assert.equal(h2.closedHow(1), undefined);
  h2.abort();
});

Deno.test("closed streams enter the memory as they close (reset and ended)", () => {
  const h2 = new TestSession(8);
  const a = h2.createStream(1);
  const b = h2.createStream(3);
  h2.resetStream(a, 8);
  b.recvEnded = true;
  b.sendEnded = true;
  h2.closeStream(b, Closed.Ended);
  assert.equal(h2.closedHow(1), Closed.ResetLocal);
  assert.equal(h2.closedHow(3), Closed.Ended);
  assert.equal(h2.streams.size, 0);
  h2.abort();
});

Deno.test("H2Stream: 100,000 one-byte DATA payloads queue as a few buffers, bytes and order intact", () => {
  const h2 = new TestSession(8);
  const s = h2.createStream(1);
  const N = 100_000;
  for (let i = 0; i < N; i++) s.pushData(Uint8Array.of(i & 0xff), false);
  s.pushData(new Uint8Array(5000), false); // a larger payload between: its own chunk
  s.pushData(Uint8Array.of(7), true);
  const chunks: Uint8Array[] = [];
  for (let c = s.tryRead(); c !== null && c !== undefined; c = s.tryRead()) chunks.push(c);
  assert.ok(chunks.length <= Math.ceil(N / 16384) + 2, `${chunks.length} chunks queued`);
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  assert.equal(all.length, N + 5001);
  for (let i = 0; i < N; i++) if (all[i] !== (i & 0xff)) assert.fail(`byte ${i} is ${all[i]}`);
  assert.equal(all[N + 5000], 7);
  assert.equal(s.received, N + 5001);
  h2.abort();
});

Deno.test("H2Stream.tryRead: queued chunks, then undefined while open, null at the end, throws after a reset", async () => {
  const h2 = new TestSession(8);
  const s = h2.createStream(1);
  assert.equal(s.tryRead(), undefined, "nothing yet: read() would wait");
  s.pushData(Uint8Array.of(1, 2), false);
  s.pushData(Uint8Array.of(3), false);
  assert.deepEqual(s.tryRead(), Uint8Array.of(1, 2, 3), "small payloads are coalesced while queued");
  assert.equal(s.received, 3);
  s.pushData(Uint8Array.of(4), false);
  assert.deepEqual(await s.read(), Uint8Array.of(4), "read() and tryRead() share the queue");
  assert.equal(s.tryRead(), undefined);
  s.pushData(new Uint8Array(0), true);
  assert.equal(s.tryRead(), null);
  const t = h2.createStream(3);
  t.pushData(Uint8Array.of(9), false);
  h2.resetStream(t, 8);
  assert.throws(() => t.tryRead(), H2StreamReset);
  h2.abort();
});
