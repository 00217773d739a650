/**
 * H1ServerConn never closes a connection under a write it did not wait for. A response on a
 * keep-alive connection is sent without waiting (ConnWriter.send); when the client then ends
 * the connection (EOF after its last request), run() must wait for that write before closing
 * the socket, or the last answer is cut. On a real socket that write is usually done at once,
 * so this test uses a connection whose writes finish only when the test says so, and checks
 * the order of events: the write finished, then the close. The HTTP bytes are the codec's own.
 */

import assert from "node:assert/strict";
import { H1ServerConn } from "../../../src/http/h1/server.ts";
import { gatewayResponse } from "../../../src/http/exchange.ts";
import { listener, loadToml, pool } from "../config/helpers.ts";
import { until } from "../../helpers/common.ts";

/**
 * A connection that yields `request`, then EOF (or, with `eof` false, a read that ends only at
 * close(), as an idle keep-alive client), and holds every write until release().
 */
class HeldWritesConn {
  readonly events: string[] = [];
  written = "";
  #request: Uint8Array | null;
  #held: (() => void)[] = [];
  #closed = Promise.withResolvers<null>();

  constructor(request: string, readonly eof = true) {
    this.#request = new TextEncoder().encode(request);
  }

  read(p: Uint8Array): Promise<number | null> {
    const next = this.#request;
    this.#request = null;
    if (next !== null) {
      p.set(next);
      return Promise.resolve(next.length);
    }
    if (!this.eof) return this.#closed.promise;
    this.events.push("eof");
    return Promise.resolve(null);
  }

  write(p: Uint8Array): Promise<number> {
    const text = new TextDecoder().decode(p);
    this.events.push("write issued");
    return new Promise((resolve) => {
      this.#held.push(() => {
        this.written += text;
        this.events.push("write done");
        resolve(p.length);
      });
    });
  }

  /** Finishes every write issued so far; how many. */
  release(): number {
    const held = this.#held.splice(0);
    for (const done of held) done();
    return held.length;
  }

  close(): void {
    this.events.push("close");
    this.#closed.resolve(null);
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
}

async function serverOn(conn: HeldWritesConn, completed: number[]): Promise<H1ServerConn> {
  const loaded = await loadToml(listener() + pool());
  assert.ok(loaded.snapshot, loaded.message);
  const cfg = loaded.snapshot.config.listeners[0];
  return new H1ServerConn(
    conn as unknown as Deno.Conn,
    cfg,
    { ip: "127.0.0.1", port: 1, listener: cfg.name, tls: false },
    {
      handle: () => Promise.resolve(gatewayResponse(200, "the last answer\n")),
      complete: (rec) => completed.push(rec.status),
      event: () => {},
    },
  );
}

/** Lets the server run until `events` has `event` (at most 2 s), then a little longer. */
async function settle(conn: HeldWritesConn, event: string): Promise<void> {
  await until(`"${event}"`, () => Promise.resolve(conn.events.includes(event)), 2_000);
  await new Promise((r) => setTimeout(r, 20));
}

function assertWholeAnswer(conn: HeldWritesConn): void {
  assert.match(conn.written, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(
    conn.written.endsWith("\r\n\r\nthe last answer\n"),
    `the whole answer: ${JSON.stringify(conn.written)}`,
  );
}

Deno.test("h1 server: the last keep-alive answer is written in full before the close at the client's EOF", async () => {
  const conn = new HeldWritesConn("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  const completed: number[] = [];
  const done = (await serverOn(conn, completed)).run();
  await settle(conn, "eof"); // run() answered, read the EOF and reached its end, the write still held
  assert.deepEqual(conn.events, ["write issued", "eof"], "no close while the answer is still being written");
  assert.equal(conn.release(), 1);
  await done;
  assert.deepEqual(conn.events, ["write issued", "eof", "write done", "close"]);
  assertWholeAnswer(conn);
  assert.deepEqual(completed, [200]);
});

Deno.test("h1 server: a drain (SIGTERM) of an idle connection waits for the answer still being written", async () => {
  const conn = new HeldWritesConn("GET / HTTP/1.1\r\nHost: a\r\n\r\n", false);
  const completed: number[] = [];
  const server = await serverOn(conn, completed);
  const done = server.run();
  await settle(conn, "write issued"); // answered; now waiting for a next request
  assert.deepEqual(completed, [200]);
  server.drain();
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(conn.events, ["write issued"], "no close while the answer is still being written");
  assert.equal(conn.release(), 1);
  await done;
  assert.deepEqual(conn.events, ["write issued", "write done", "close"]);
  assertWholeAnswer(conn);
});
