/**
 * Session bookkeeping without sockets: the closed-stream memory (§5.1: how a stream that left the
 * table ended decides between ignoring a late frame and an error) keeps at least the newest
 * limits.closedStreamMemory streams of a side, in slots by stream id, and H2Stream.tryRead() is
 * read() without a promise.
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

Deno.test("closed-stream memory: at least the newest N streams of a side, by id, a re-close updates", () => {
  // N = 3: 8 slots (a power of two, at least 2 × N), each stream id in slot id & 7.
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
  assert.equal(h2.closedHow(9), undefined, "nor one whose slot holds another id (1)");
  h2.rememberNow(1, Closed.ResetLocal); // the same stream again: how changes
  assert.equal(h2.closedHow(1), Closed.ResetLocal);
  h2.rememberNow(7, Closed.Ended);
  h2.rememberNow(9, Closed.Ended); // takes slot 1 from stream 1, 8 ids older
  assert.equal(h2.closedHow(1), undefined);
  assert.deepEqual([3, 5, 7, 9].map((id) => h2.closedHow(id)), [
    Closed.ResetLocal,
    Closed.ResetRemote,
    Closed.Ended,
    Closed.Ended,
  ]);
  // Many more: the newest four of one side (8 slots, every other one theirs) are remembered.
  for (let id = 11; id < 1009; id += 2) h2.rememberNow(id, id % 3 === 0 ? Closed.ResetLocal : Closed.Ended);
  for (let id = 1; id < 1001; id += 2) assert.equal(h2.closedHow(id), undefined, `stream ${id} forgotten`);
  for (const id of [1001, 1003, 1005, 1007]) {
    assert.equal(h2.closedHow(id), id % 3 === 0 ? Closed.ResetLocal : Closed.Ended);
  }
  // A long-lived stream that closes late is remembered: it takes its slot from a newer id that
  // closed earlier (what was closed last matters most for frames still in flight).
  h2.rememberNow(993, Closed.ResetLocal); // slot 1, held by 1001
  assert.equal(h2.closedHow(993), Closed.ResetLocal);
  assert.equal(h2.closedHow(1001), undefined);
  // The largest stream id (2^31 - 1) fits.
  h2.rememberNow(2 ** 31 - 1, Closed.ResetRemote);
  assert.equal(h2.closedHow(2 ** 31 - 1), Closed.ResetRemote);
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

Deno.test("H2Stream.tryRead: queued chunks, then undefined while open, null at the end, throws after a reset", async () => {
  const h2 = new TestSession(8);
  const s = h2.createStream(1);
  assert.equal(s.tryRead(), undefined, "nothing yet: read() would wait");
  s.pushData(Uint8Array.of(1, 2), false);
  s.pushData(Uint8Array.of(3), false);
  assert.deepEqual(s.tryRead(), Uint8Array.of(1, 2));
  assert.equal(s.received, 2);
  assert.deepEqual(await s.read(), Uint8Array.of(3), "read() and tryRead() share the queue");
  assert.equal(s.tryRead(), undefined);
  s.pushData(new Uint8Array(0), true);
  assert.equal(s.tryRead(), null);
  const t = h2.createStream(3);
  t.pushData(Uint8Array.of(9), false);
  h2.resetStream(t, 8);
  assert.throws(() => t.tryRead(), H2StreamReset);
  h2.abort();
});
