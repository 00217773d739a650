/**
 * The upstream HTTP/1.1 pool's hand-over rule: a request that finds no idle connection waits
 * one event-loop turn before connecting, and a connection released meanwhile goes to it (even
 * when the idle list is full, which would otherwise close that connection) instead of a new
 * connect. Counted with a real local listener: every connect is an accept there.
 */

import assert from "node:assert/strict";
import { H1Pool, type H1Upstream } from "../../../src/http/h1/client.ts";
import { sweeper } from "../../../src/net/deadlines.ts";
import { makeTestPki } from "../../../scripts/pki.ts";

async function withListener(fn: (pool: H1Pool, accepts: () => number) => Promise<void>, maxIdle = 0) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) conns.push(c);
  })();
  const pool = new H1Pool("test", { hostname: "127.0.0.1", port: listener.addr.port }, {
    maxIdle,
    maxTotal: 10,
    idleTimeoutMs: 60_000,
    connectTimeoutMs: 5_000,
  });
  try {
    await fn(pool, () => conns.length);
  } finally {
    pool.close();
    listener.close();
    await accepting.catch(() => {});
    for (const c of conns) c.close();
  }
}

/** Lets the listener's accept loop catch up with connects already made. */
const settle = () => new Promise((r) => setTimeout(r, 20));

function closeUp(u: H1Upstream): void {
  sweeper.delete(u);
  u.close();
}

Deno.test("h1 pool: a connection released in the same turn goes to the waiting request, not a new connect", async () => {
  await withListener(async (pool, accepts) => {
    const first = await pool.acquire();
    await settle();
    assert.equal(accepts(), 1);
    // No idle connection: this acquire waits out the turn …
    const next = pool.acquire();
    // … and the exchange finishing in the same turn hands its connection over, although
    // max_idle_per_backend = 0 would have closed it.
    pool.release(first, true);
    const got = await next;
    assert.equal(got, first);
    assert.equal(got.closed, false);
    assert.equal(got.reused, true);
    await settle();
    assert.equal(accepts(), 1, "no second connect");
    assert.equal(pool.open, 1);
    closeUp(got);
  });
});

Deno.test("h1 pool: without a release in that turn the request connects", async () => {
  await withListener(async (pool, accepts) => {
    const first = await pool.acquire();
    const second = await pool.acquire();
    assert.notEqual(first, second);
    await settle();
    assert.equal(accepts(), 2);
    assert.equal(pool.open, 2);
    // Released later with max_idle 0: closed, not kept.
    pool.release(first, true);
    pool.release(second, true);
    assert.equal(first.closed, true);
    assert.equal(second.closed, true);
    assert.equal(pool.open, 0);
  });
});

Deno.test("h1 pool: several waiting requests share the turn; each release serves one", async () => {
  await withListener(async (pool, accepts) => {
    const a = await pool.acquire();
    const b = await pool.acquire();
    await settle();
    assert.equal(accepts(), 2);
    const waits = [pool.acquire(), pool.acquire(), pool.acquire()];
    pool.release(a, true);
    pool.release(b, true);
    const got = await Promise.all(waits);
    assert.equal(got[0], a);
    assert.equal(got[1], b);
    assert.ok(got[2] !== a && got[2] !== b, "the third one connected");
    await settle();
    assert.equal(accepts(), 3);
    for (const u of got) closeUp(u);
  }, 64);
});

Deno.test("h1 pool: an unusable release is not handed over", async () => {
  await withListener(async (pool, accepts) => {
    const first = await pool.acquire();
    const next = pool.acquire();
    pool.release(first, false);
    const got = await next;
    assert.notEqual(got, first);
    assert.equal(first.closed, true);
    await settle();
    assert.equal(accepts(), 2);
    closeUp(got);
  }, 64);
});

Deno.test("h1 pool: a connection released over max_idle_per_backend lingers, then goes unless the list shrank", async () => {
  await withListener(async (pool, accepts) => {
    const a = await pool.acquire();
    const b = await pool.acquire();
    const c = await pool.acquire();
    await settle();
    assert.equal(accepts(), 3);
    pool.release(a, true);
    pool.release(b, true); // over the cap of 1: parked as surplus
    pool.release(c, true);
    assert.equal(pool.idle, 3);
    assert.equal(b.reason, "surplus");
    assert.equal(c.reason, "surplus");
    // The next request takes the newest (a surplus one): no connect.
    const again = pool.tryAcquire();
    assert.equal(again, c);
    // b's linger ends while the list (a, b) is over the cap: closed.
    b.onExpire("surplus");
    assert.equal(b.closed, true);
    assert.equal(pool.idle, 1);
    // c comes back over the cap, lingers; once a left, c's expiry keeps it as an ordinary idle one.
    pool.release(c, true);
    assert.equal(c.reason, "surplus");
    pool.dropIdle(a);
    c.onExpire("surplus");
    assert.equal(c.closed, false);
    assert.equal(c.reason, "idle");
    assert.equal(pool.idle, 1);
    await settle();
    assert.equal(accepts(), 3);
  }, 1);
});

Deno.test("h1 pool: an idle connection the backend closes leaves the pool; one taken again at once is not watched", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) conns.push(c);
  })();
  const pool = new H1Pool("test", { hostname: "127.0.0.1", port: listener.addr.port }, {
    maxIdle: 4,
    maxTotal: 10,
    idleTimeoutMs: 60_000,
    connectTimeoutMs: 5_000,
  });
  try {
    const busy = await pool.acquire();
    const idle = await pool.acquire();
    await settle();
    assert.equal(conns.length, 2);
    // Released and taken again in the same turn (the loaded case): no read is started on it.
    pool.release(busy, true);
    assert.equal(pool.tryAcquire(), busy);
    pool.release(idle, true);
    assert.equal(pool.idle, 1);
    // The backend closes the idle one (its keep-alive timeout is shorter): within the watch
    // delay plus the read, the pool drops it, so no request ever picks a dead connection.
    for (const c of conns) {
      if ((c.remoteAddr as Deno.NetAddr).port === (idle.conn.localAddr as Deno.NetAddr).port) c.close();
    }
    for (let i = 0; i < 100 && pool.idle > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(pool.idle, 0, "the closed connection left the idle list");
    assert.equal(idle.closed, true);
    assert.equal(busy.reader.pending, undefined, "the connection in use was never watched");
    closeUp(busy);
  } finally {
    pool.close();
    listener.close();
    await accepting.catch(() => {});
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed above */ }
    }
  }
});

Deno.test("h1 pool: a connection opened for a waiter that timed out meanwhile goes to the pool, not lost", async () => {
  // A TLS backend behind a relay that starts relaying 300 ms after each accept: the TLS handshake,
  // so each connect, takes that long.
  const dir = await Deno.makeTempDir({ prefix: "eg-pool-" });
  const pki = await makeTestPki(dir);
  const backend = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(pki.cert),
    key: await Deno.readTextFile(pki.key),
  });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const backendSide = (async () => {
    for await (const c of backend) conns.push(c);
  })();
  const accepting = (async () => {
    for await (const c of listener) {
      conns.push(c);
      setTimeout(async () => {
        const b = await Deno.connect({ hostname: "127.0.0.1", port: backend.addr.port });
        conns.push(b);
        c.readable.pipeTo(b.writable).catch(() => {});
        b.readable.pipeTo(c.writable).catch(() => {});
      }, 300);
    }
  })();
  const pool = new H1Pool("test", {
    hostname: "127.0.0.1",
    port: listener.addr.port,
    tls: { serverName: "localhost", caCerts: [pki.caPem], verifyName: true },
  }, { maxIdle: 4, maxTotal: 1, idleTimeoutMs: 60_000, connectTimeoutMs: 500 });
  try {
    const first = await pool.acquire();
    // The pool is full: this request waits, for at most connectTimeoutMs (500 ms) …
    const waiting = pool.acquire().then(() => "got one", (e) => String(e));
    await new Promise((r) => setTimeout(r, 300));
    // … and at 300 ms the connection in use closes: a connect starts for the waiter, and takes
    // 300 ms more, so the waiter gives up (504) before it is ready.
    pool.release(first, false);
    assert.match(await waiting, /pool full/);
    for (let i = 0; i < 50 && pool.idle === 0; i++) await new Promise((r) => setTimeout(r, 20));
    // The connection made for it is kept idle and counted as such, so the slot is not lost.
    assert.equal(pool.open, 1);
    assert.equal(pool.idle, 1, "the late connection is idle in the pool");
    const again = pool.tryAcquire();
    assert.ok(again !== undefined, "and the next request takes it");
    pool.release(again, false);
    assert.equal(pool.open, 0);
  } finally {
    pool.close();
    listener.close();
    backend.close();
    await accepting.catch(() => {});
    await backendSide.catch(() => {});
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await Deno.remove(dir, { recursive: true });
  }
});
