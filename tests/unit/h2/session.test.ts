/**
 * Session bookkeeping without sockets: the closed-stream memory (§5.1: how a stream that left the
 * table ended decides between ignoring a late frame and an error) keeps the newest
 * limits.closedStreamMemory streams in insertion order, and H2Stream.tryRead() is read() without
 * a promise.
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

Deno.test("closed-stream memory: the newest N streams, oldest forgotten first, re-remembering keeps the place", () => {
  const h2 = new TestSession(3);
  h2.rememberNow(1, Closed.Ended);
  h2.rememberNow(3, Closed.ResetLocal);
  h2.rememberNow(5, Closed.ResetRemote);
  assert.deepEqual([1, 3, 5].map((id) => h2.closedHow(id)), [
    Closed.Ended,
    Closed.ResetLocal,
    Closed.ResetRemote,
  ]);
  // Updating an entry changes how, not its age (Map.set semantics).
  h2.rememberNow(1, Closed.ResetLocal);
  assert.equal(h2.closedHow(1), Closed.ResetLocal);
  h2.rememberNow(7, Closed.Ended); // evicts 1, the oldest
  assert.equal(h2.closedHow(1), undefined);
  assert.deepEqual([3, 5, 7].map((id) => h2.closedHow(id)), [
    Closed.ResetLocal,
    Closed.ResetRemote,
    Closed.Ended,
  ]);
  // Many more: the ring wraps around and always holds the last three.
  for (let id = 9; id < 1009; id += 2) h2.rememberNow(id, id % 3 === 0 ? Closed.ResetLocal : Closed.Ended);
  for (let id = 1; id < 1003; id += 2) assert.equal(h2.closedHow(id), undefined, `stream ${id} forgotten`);
  for (const id of [1003, 1005, 1007]) {
    assert.equal(h2.closedHow(id), id % 3 === 0 ? Closed.ResetLocal : Closed.Ended);
  }
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
