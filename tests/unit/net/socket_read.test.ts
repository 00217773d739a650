/**
 * The raw socket read (src/net/socket_read.ts) on real sockets: the pinned Deno offers it (an
 * upgrade that takes it away fails here instead of quietly slowing every request), it reads what
 * a TCP, a TLS and a Unix peer sent and then 0 at EOF, it rejects on a closed connection as
 * conn.read() does, and anything that is not Deno's own connection gets -1 (the public read).
 */

import assert from "node:assert/strict";
import { rawRead, rawReadAvailable, rawReadRid, readSocket } from "../../../src/net/socket_read.ts";
import { ConnReader } from "../../../src/http/h1/reader.ts";
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

async function tcpPair(): Promise<[Deno.TcpConn, Deno.TcpConn, Deno.Listener]> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port });
  const server = await l.accept() as Deno.TcpConn;
  return [client, server, l];
}

Deno.test("raw read: offered by the pinned Deno", () => {
  assert.equal(rawReadAvailable, true);
});

Deno.test("raw read: TCP bytes, then 0 at EOF; -1 for what is not Deno's connection", async () => {
  const [client, server, l] = await tcpPair();
  try {
    const rid = rawReadRid(server);
    assert.ok(rid >= 0, `a TcpConn has a resource id (got ${rid})`);
    await client.write(new TextEncoder().encode("hello, raw read"));
    client.closeWrite();
    assert.equal(await drainRaw(rid), "hello, raw read");
    // A wrapper around the connection is not the connection: it is read through its own read().
    const wrapper = { read: (p: Uint8Array) => server.read(p) };
    assert.equal(rawReadRid(wrapper), -1);
    assert.equal(rawReadRid(null), -1);
    assert.equal(rawReadRid({}), -1);
  } finally {
    client.close();
    server.close();
    l.close();
  }
});

Deno.test("raw read: rejects on a closed connection, as conn.read() does", async () => {
  const [client, server, l] = await tcpPair();
  const rid = rawReadRid(server);
  server.close();
  try {
    await assert.rejects(rawRead(rid, new Uint8Array(16)), Deno.errors.BadResource);
    await assert.rejects(server.read(new Uint8Array(16)), Deno.errors.BadResource);
  } finally {
    client.close();
    l.close();
  }
});

Deno.test("raw read: a read pending when the connection closes rejects (no hang)", async () => {
  const [client, server, l] = await tcpPair();
  try {
    const pending = rawRead(rawReadRid(server), new Uint8Array(16));
    server.close();
    await assert.rejects(pending);
  } finally {
    client.close();
    l.close();
  }
});

Deno.test("raw read: TLS (decrypted bytes) and Unix sockets", async () => {
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
    const accepted = tl.accept();
    const tc = await Deno.connectTls({
      hostname: "localhost",
      port: (tl.addr as Deno.NetAddr).port,
      caCerts: [pki.caPem],
    });
    const ts = await accepted;
    try {
      const rid = rawReadRid(ts);
      assert.ok(rid >= 0);
      await tc.write(new TextEncoder().encode("over TLS"));
      await tc.closeWrite();
      assert.equal(await drainRaw(rid), "over TLS");
    } finally {
      tc.close();
      ts.close();
    }
    const uc = await Deno.connect({ transport: "unix", path: sock });
    const us = await ul.accept();
    try {
      const rid = rawReadRid(us);
      assert.ok(rid >= 0);
      await uc.write(new TextEncoder().encode("over a unix socket"));
      uc.closeWrite();
      assert.equal(await drainRaw(rid), "over a unix socket");
    } finally {
      uc.close();
      us.close();
    }
  } finally {
    tl.close();
    ul.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSocket and ConnReader: the same bytes and EOF through either read", async () => {
  const [client, server, l] = await tcpPair();
  try {
    await client.write(new TextEncoder().encode("abc"));
    const buf = new Uint8Array(8);
    const viaPublic = await readSocket(server, -1, buf);
    assert.equal(viaPublic, 3);
    await client.write(new TextEncoder().encode("defg"));
    client.closeWrite();
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
  } finally {
    client.close();
    server.close();
    l.close();
  }
});
