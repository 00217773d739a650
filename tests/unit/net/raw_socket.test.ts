/**
 * The raw socket ops (src/net/raw_socket.ts) on real sockets: the pinned Deno offers them (an
 * upgrade that takes them away fails here instead of quietly slowing every request), the read
 * gets what a TCP, a TLS and a Unix peer sent and then 0 at EOF, the write delivers (encrypted,
 * on TLS), both reject on a closed connection as conn.read()/write() do, anything that is not
 * Deno's own connection gets -1 (the public methods), and ConnReader / ConnWriter use the raw ops.
 */

import assert from "node:assert/strict";
import {
  rawRead,
  rawSocketAvailable,
  rawSocketRid,
  rawWrite,
  readSocket,
  writeSocket,
} from "../../../src/net/raw_socket.ts";
import { ConnReader } from "../../../src/http/h1/reader.ts";
import { ConnWriter } from "../../../src/http/h1/write.ts";
import { makeTestPki } from "../../../scripts/pki.ts";

/** Everything `rid` yields until EOF, through the raw read (bounded: at most 100 reads). */
async function drainRaw(rid: number): Promise<string> {
  const buf = new Uint8Array(7); // small: several reads, each into the same view
  let text = "";
  for (let i = 0; i < 100; i++) {
    const n = await rawRead(rid, buf);
    if (n === 0) return text;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  throw new Error("no EOF after 100 reads");
}

/** Everything `conn` yields until EOF, through its public read (bounded: at most 100 reads). */
async function drainPublic(conn: Deno.Conn): Promise<string> {
  const buf = new Uint8Array(64);
  let text = "";
  for (let i = 0; i < 100; i++) {
    const n = await conn.read(buf);
    if (n === null) return text;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  throw new Error("no EOF after 100 reads");
}

/** Connects to `listener` with `connect`, runs `fn(client, server)`, then closes both ends. */
async function withConnected<C extends Deno.Conn, S extends Deno.Conn>(
  listener: Deno.Listener<S>,
  connect: () => Promise<C>,
  fn: (client: C, server: S) => void | Promise<void>,
): Promise<void> {
  const accepted = listener.accept();
  const client = await connect();
  const server = await accepted;
  try {
    await fn(client, server);
  } finally {
    for (const c of [client, server]) {
      try {
        c.close();
      } catch { /* closed by the test */ }
    }
  }
}

/** Runs `fn` with a connected TCP pair (client, accepted server side); closes all of it after. */
async function withTcpPair(
  fn: (client: Deno.TcpConn, server: Deno.TcpConn) => void | Promise<void>,
): Promise<void> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (l.addr as Deno.NetAddr).port;
    await withConnected(l, () => Deno.connect({ hostname: "127.0.0.1", port }), fn);
  } finally {
    l.close();
  }
}

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("raw ops: offered by the pinned Deno", () => {
  assert.equal(rawSocketAvailable, true);
});

// First in this file on purpose: nothing real has been seen yet when the fakes are asked about.
Deno.test("raw ops: fakes seen first do not turn the fast path off for real connections", async () => {
  assert.equal(rawSocketRid({ read: () => Promise.resolve(null) }), -1);
  assert.equal(rawSocketRid({}), -1);
  await withTcpPair((client, server) => {
    assert.ok(rawSocketRid(client) >= 0 && rawSocketRid(server) >= 0);
    // A wrapper that inherits from a connection is not the connection: its own read() is used.
    const inheriting = Object.create(server, { read: { value: () => Promise.resolve(null) } });
    assert.equal(rawSocketRid(inheriting), -1);
  });
});

Deno.test("raw ops: TCP bytes, then 0 at EOF; -1 for what is not Deno's connection", async () => {
  await withTcpPair(async (client, server) => {
    const rid = rawSocketRid(server);
    assert.ok(rid >= 0, `a TcpConn has a resource id (got ${rid})`);
    await client.write(new TextEncoder().encode("hello, raw read"));
    await client.closeWrite();
    assert.equal(await drainRaw(rid), "hello, raw read");
    // A wrapper around the connection is not the connection: it is read through its own read().
    const wrapper = { read: (p: Uint8Array) => server.read(p) };
    assert.equal(rawSocketRid(wrapper), -1);
    assert.equal(rawSocketRid(null), -1);
    assert.equal(rawSocketRid({}), -1);
  });
});

Deno.test("raw ops: reject on a closed connection, as conn.read() and write() do", async () => {
  await withTcpPair(async (client, server) => {
    const rid = rawSocketRid(server);
    server.close();
    await assert.rejects(rawRead(rid, new Uint8Array(16)), Deno.errors.BadResource);
    await assert.rejects(server.read(new Uint8Array(16)), Deno.errors.BadResource);
    await assert.rejects(rawWrite(rid, enc("x")), Deno.errors.BadResource);
    await assert.rejects(server.write(enc("x")), Deno.errors.BadResource);
    // An empty buffer would read as EOF on the raw path (the op waits, then says 0): refused.
    await assert.rejects(readSocket(client, rawSocketRid(client), new Uint8Array(0)), RangeError);
  });
});

Deno.test("raw ops: a read pending when the connection closes rejects (no hang)", async () => {
  await withTcpPair(async (_client, server) => {
    const pending = rawRead(rawSocketRid(server), new Uint8Array(16));
    server.close();
    await assert.rejects(pending);
  });
});

Deno.test("raw ops: TLS (decrypted bytes) and Unix sockets", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eg-raw-read-" });
  const pki = await makeTestPki(dir);
  const sock = `${dir}/raw.sock`;
  const tl = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(pki.cert),
    key: await Deno.readTextFile(pki.key),
  });
  const ul = Deno.listen({ transport: "unix", path: sock });
  try {
    const port = (tl.addr as Deno.NetAddr).port;
    const connectTls = () => Deno.connectTls({ hostname: "localhost", port, caCerts: [pki.caPem] });
    await withConnected(tl, connectTls, async (tc, ts) => {
      const rid = rawSocketRid(ts);
      assert.ok(rid >= 0);
      await tc.write(new TextEncoder().encode("over TLS"));
      await tc.closeWrite();
      assert.equal(await drainRaw(rid), "over TLS");
      // The raw write goes through TLS too: the client decrypts what it sent.
      assert.equal(await rawWrite(rid, enc("and back")), 8);
      await ts.closeWrite();
      assert.equal(await drainPublic(tc), "and back");
    });
    await withConnected(ul, () => Deno.connect({ transport: "unix", path: sock }), async (uc, us) => {
      const rid = rawSocketRid(us);
      assert.ok(rid >= 0);
      await uc.write(new TextEncoder().encode("over a unix socket"));
      await uc.closeWrite();
      assert.equal(await drainRaw(rid), "over a unix socket");
    });
  } finally {
    tl.close();
    ul.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSocket and ConnWriter: the raw write, never the public one", async () => {
  await withTcpPair(async (client, server) => {
    let publicWrites = 0;
    const write = server.write.bind(server);
    server.write = (p: Uint8Array) => {
      publicWrites++;
      return write(p);
    };
    assert.equal(await writeSocket(server, rawSocketRid(server), enc("one,")), 4);
    const w = new ConnWriter(server);
    w.pushStr("two");
    await w.flush();
    assert.equal(publicWrites, 0);
    assert.equal(await writeSocket(server, -1, enc(",three")), 6, "rid -1: the public write");
    assert.equal(publicWrites, 1);
    await server.closeWrite();
    assert.equal(await drainPublic(client), "one,two,three");
  });
});

Deno.test("readSocket and ConnReader: the same bytes and EOF through either read", async () => {
  await withTcpPair(async (client, server) => {
    await client.write(new TextEncoder().encode("abc"));
    const buf = new Uint8Array(8);
    const viaPublic = await readSocket(server, -1, buf);
    assert.equal(viaPublic, 3);
    await client.write(new TextEncoder().encode("defg"));
    await client.closeWrite();
    // ConnReader takes the raw read for Deno's own connections: the public read is never called.
    let publicReads = 0;
    const read = server.read.bind(server);
    server.read = (p: Uint8Array) => {
      publicReads++;
      return read(p);
    };
    const reader = new ConnReader(server);
    assert.equal(await reader.fill(), true);
    assert.equal(new TextDecoder().decode(reader.take(16)), "defg");
    assert.equal(await reader.fill(), false, "EOF (0 from the raw read) reads as EOF");
    assert.equal(reader.eof, true);
    assert.equal(publicReads, 0);
  });
});
