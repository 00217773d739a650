/**
 * ConnWriter under overlapping flushes: a socket that reads the bytes only when its write
 * completes (as Deno's write op does) and takes them a few at a time. Pieces pushed while a
 * write is in flight must neither overwrite bytes not yet sent nor overtake them.
 */

import assert from "node:assert/strict";
import { ConnWriter } from "../../../src/http/h1/write.ts";

/** Completes each write on a later macrotask, taking at most `chunk` bytes (read only then). */
class LazySocket {
  readonly received: number[] = [];
  writes = 0;
  constructor(readonly chunk: number) {}
  write(p: Uint8Array): Promise<number> {
    this.writes++;
    return new Promise((resolve) =>
      setTimeout(() => {
        // Large writes taken 4 KiB at a time: still partial, without thousands of timer turns.
        const n = Math.min(p.length > 1000 ? 4096 : this.chunk, p.length);
        for (let i = 0; i < n; i++) this.received.push(p[i]);
        resolve(n);
      }, 1)
    );
  }
}

Deno.test("ConnWriter: flushes while a write is in flight keep bytes intact and in order", async () => {
  for (const chunk of [3, 1000]) {
    const sock = new LazySocket(chunk);
    const w = new ConnWriter(sock);
    const flushes: Promise<void>[] = [];
    let want = "";
    for (let i = 0; i < 20; i++) {
      const piece = `piece-${i};`;
      want += piece;
      w.pushText(piece);
      flushes.push(w.flush()); // not awaited: the next push lands while this write is in flight
    }
    const big = new Uint8Array(20_000).fill(0x2e); // over the coalescing size: written directly
    want += ".".repeat(big.length);
    await w.pushBytes(big); // callers await pushBytes; the flushes above are still in flight here
    w.pushText("end");
    want += "end";
    flushes.push(w.flush());
    await Promise.all(flushes);
    assert.equal(new TextDecoder().decode(new Uint8Array(sock.received)), want, `chunk ${chunk}`);
    assert.equal(w.written, want.length);
  }
});

Deno.test("ConnWriter: a failed write rejects its flush and those queued behind it", async () => {
  let calls = 0;
  const w = new ConnWriter({
    write: () => {
      calls++;
      return Promise.reject(new Error("broken pipe"));
    },
  });
  w.pushText("a");
  const first = w.flush();
  w.pushText("b");
  const second = w.flush();
  await assert.rejects(first, /broken pipe/);
  await assert.rejects(second, /broken pipe/);
  assert.equal(calls, 1, "nothing is written behind a failed write");
  // The writer is usable again (nothing left in flight): a new flush writes.
  w.pushText("c");
  await assert.rejects(w.flush(), /broken pipe/);
  assert.equal(calls, 2);
});

Deno.test("ConnWriter.send: issues the write without waiting; later flushes queue behind it", async () => {
  const sock = new LazySocket(2); // partial writes: send()'s write needs several turns
  const w = new ConnWriter(sock);
  w.pushText("response-1;");
  assert.equal(w.send(), true);
  assert.equal(sock.writes, 1);
  assert.equal(w.written, 11, "counted when issued");
  w.pushText("response-2;");
  assert.equal(w.send(), false, "one write nobody waits for at a time: the caller must flush()");
  await w.flush();
  await w.idle();
  assert.equal(new TextDecoder().decode(new Uint8Array(sock.received)), "response-1;response-2;");
  assert.equal(w.send(), true, "nothing pushed, nothing in flight: nothing to do");
});

Deno.test("ConnWriter.send: a failure nobody waited for rejects the next flush, not the event loop", async () => {
  const w = new ConnWriter({ write: () => Promise.reject(new Error("connection reset")) });
  w.pushText("a");
  assert.equal(w.send(), true);
  await w.idle(); // never rejects
  assert.equal(w.send(), false, "a broken connection sends nothing more without waiting");
  w.pushText("b");
  await assert.rejects(w.flush(), /connection reset/);
});

Deno.test("ConnWriter.discardPending: unsent bytes are dropped and never written; not after a failure", async () => {
  const sock = new LazySocket(1000);
  const w = new ConnWriter(sock);
  w.pushText("HTTP/1.1 200 OK\r\n\r\n");
  assert.equal(w.discardPending(), true);
  assert.equal(w.pending, 0);
  w.pushText("HTTP/1.1 502 Bad Gateway\r\n\r\n");
  await w.flush();
  assert.equal(String.fromCharCode(...sock.received), "HTTP/1.1 502 Bad Gateway\r\n\r\n");
  assert.equal(w.written, sock.received.length, "discarded bytes are not counted as written");

  const broken = new ConnWriter({ write: () => Promise.reject(new Error("connection reset")) });
  broken.pushText("a");
  broken.send();
  await broken.idle();
  broken.pushText("b");
  assert.equal(broken.discardPending(), false, "a failed writer has nothing more to say");
});
