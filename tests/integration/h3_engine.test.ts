/**
 * The QUIC engine (src/quic/engine.ts) over real loopback QUIC, pinning down the Deno 2.9.6
 * behaviours docs/QUIC.md describes, so a Deno upgrade that changes one fails here loudly:
 * resetStream → the peer reads a clean FIN (no RESET_STREAM in Deno), a read pending at our own
 * stopSending rejects with ReadStopped (Deno resolves it as a FIN), stopSending → the peer's
 * writes fail, close codes and reasons reach the peer, datagrams, certificate verification,
 * a failed handshake does not stop the accept loop, and 0-RTT: with a shared client endpoint
 * the second connection is early and its stream reaches the server before the handshake. And, in a
 * process of its own (it needs gc()), that a send stream whose object is collected is finished,
 * which the HTTP/3 client's control stream must survive.
 */

import assert from "node:assert/strict";
import { QuicClientEndpoint, type QuicConnection, ReadStopped } from "../../src/quic/engine.ts";
import { connectQuic } from "../../src/quic/engine.ts";
import { bindTestQuicServer, makeTestPki } from "../helpers/h3_client.ts";
import { run } from "../helpers/run.ts";
import { within } from "../helpers/common.ts";

async function readAll(c: { readInto(v: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer> | null> }) {
  const parts: number[] = [];
  let buf = new Uint8Array(1024);
  for (;;) {
    const got = await c.readInto(buf);
    if (!got) return new Uint8Array(parts);
    parts.push(...got);
    buf = new Uint8Array(got.buffer);
  }
}

Deno.test("quic engine: Deno's QUIC behaviours the HTTP/3 layer relies on", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "eg-quic-" });
  const pki = await makeTestPki(dir);
  const server = await bindTestQuicServer(pki, ["h3"]);
  const accepted: QuicConnection[] = [];
  const waiters: Array<(c: QuicConnection) => void> = [];
  const errors: unknown[] = [];
  server.serve((c) => {
    const w = waiters.shift();
    if (w) w(c);
    else accepted.push(c);
  }, (e) => errors.push(e));
  const nextServerConn = () =>
    within(
      accepted.length
        ? Promise.resolve(accepted.shift()!)
        : new Promise<QuicConnection>((r) => waiters.push(r)),
      5000,
      "server accept",
    );
  const connect = (endpoint?: QuicClientEndpoint, zeroRtt = false) =>
    connectQuic({
      hostname: "127.0.0.1",
      port: server.port,
      serverName: "localhost",
      caCerts: [pki.caPem],
      alpn: ["h3"],
      endpoint,
      zeroRtt,
    });
  try {
    await t.step("a client without our CA is refused; the accept loop carries on", async () => {
      await assert.rejects(
        connectQuic({ hostname: "127.0.0.1", port: server.port, serverName: "localhost", alpn: ["h3"] }),
        /certificate|UnknownIssuer/i,
      );
      const { conn } = await connect();
      const sc = await nextServerConn();
      // The refused handshake may or may not have reached onConnection (0-RTT accept returns
      // before the handshake); what matters is that the next client is served.
      while (accepted.length) accepted.shift()!.close(0);
      assert.equal(conn.protocol, "h3");
      assert.equal(sc.remote.ip, "127.0.0.1");
      conn.close(0);
    });

    await t.step("bidi echo; resetStream() is a FIN on this Deno (returns false)", async () => {
      const { conn } = await connect();
      let sc = await nextServerConn();
      while (!(await Promise.race([sc.handshake, new Promise((r) => setTimeout(r, 2000, false))]))) {
        sc = await nextServerConn(); // skip a connection left over from the refused handshake
      }
      const s = await conn.openBidi();
      await s.send.write(new TextEncoder().encode("ping"));
      const exact = s.send.resetStream(0x10c);
      assert.equal(exact, false, "Deno gained RESET_STREAM: update engine.ts and docs/QUIC.md");
      const ss = (await within(sc.acceptBidi(), 5000, "server stream"))!;
      const got = await within(readAll(ss.recv), 5000, "server read");
      assert.equal(new TextDecoder().decode(got), "ping", "the peer saw a clean FIN after the data");
      conn.close(0);
    });

    await t.step("stopSending(): the peer's writes start failing", async () => {
      const { conn } = await connect();
      const sc = await nextServerConn();
      const s = await conn.openBidi();
      await s.send.write(Uint8Array.of(1));
      const ss = (await within(sc.acceptBidi(), 5000, "server stream"))!;
      ss.recv.stopSending(0x100);
      assert.equal(ss.recv.stopCode, 0x100);
      const chunk = new Uint8Array(64 * 1024);
      const failed = await within(
        (async () => {
          for (let i = 0; i < 2000; i++) {
            try {
              await s.send.write(chunk);
            } catch {
              return true;
            }
          }
          return false;
        })(),
        10_000,
        "write failure after STOP_SENDING",
      );
      assert.ok(failed, "writes kept succeeding after STOP_SENDING");
      conn.close(0);
    });

    await t.step(
      "stopSending() while a read waits: the read rejects (ReadStopped), it is no FIN",
      async () => {
        const { conn } = await connect();
        const sc = await nextServerConn();
        const s = await conn.openBidi();
        await s.send.write(Uint8Array.of(1));
        const ss = (await within(sc.acceptBidi(), 5000, "server stream"))!;
        assert.equal((await ss.recv.readInto(new Uint8Array(16)))?.length, 1);
        const pending = ss.recv.readInto(new Uint8Array(16)).then(
          (b) => b === null ? "FIN" : "data",
          (e) => e,
        );
        ss.recv.stopSending(0x10c);
        const got = await within(pending, 5000, "the pending read");
        assert.ok(got instanceof ReadStopped, `the pending read gave ${got}`);
        await assert.rejects(ss.recv.readInto(new Uint8Array(16)), ReadStopped, "and so does the next");
        conn.close(0);
      },
    );

    await t.step("close code and reason reach the peer; datagrams round-trip", async () => {
      const { conn } = await connect();
      const sc = await nextServerConn();
      await sc.handshake;
      assert.ok(sc.maxDatagramSize > 0);
      await conn.sendDatagram(new TextEncoder().encode("dgram"));
      const d = await within(sc.readDatagram(), 5000, "datagram");
      assert.equal(new TextDecoder().decode(d), "dgram");
      sc.close(0x10e, "H3_MESSAGE_ERROR: test");
      const info = await within(conn.closed, 5000, "client close");
      // An application CONNECTION_CLOSE, not a transport-level end (the Mode B relay tells them apart).
      assert.deepEqual(info, {
        code: 0x10e,
        reason: "H3_MESSAGE_ERROR: test",
        local: false,
        transport: false,
      });
      assert.equal((await sc.closed).local, true);
    });

    await t.step("0-RTT: the resumed connection is early and its stream beats the handshake", async () => {
      const ep = new QuicClientEndpoint("127.0.0.1");
      try {
        const first = await connect(ep, true);
        assert.equal(first.early, false, "no session to resume yet");
        const sc1 = await nextServerConn();
        await sc1.handshake;
        // Let the session ticket arrive before closing.
        const s1 = await first.conn.openBidi();
        await s1.send.write(Uint8Array.of(1));
        await s1.send.finish();
        const ss1 = (await sc1.acceptBidi())!;
        await readAll(ss1.recv);
        assert.equal(sc1.handshakeDone, true);
        first.conn.close(0);

        // The ticket normally arrived during that exchange; if not, one more full connection primes it.
        let second = await connect(ep, true);
        for (let i = 0; i < 5 && !second.early; i++) {
          (await nextServerConn()).close(0);
          await new Promise((r) => setTimeout(r, 100));
          second.conn.close(0);
          second = await connect(ep, true);
        }
        assert.equal(second.early, true, "a resumed connection with zeroRtt returns before the handshake");
        const s2 = await second.conn.openBidi();
        await s2.send.write(new TextEncoder().encode("early"));
        await s2.send.finish();
        const sc2 = await nextServerConn();
        const ss2 = (await within(sc2.acceptBidi(), 5000, "early stream"))!;
        const earlyAtArrival = !sc2.handshakeDone;
        assert.equal(new TextDecoder().decode(await readAll(ss2.recv)), "early");
        assert.equal(earlyAtArrival, true, "the 0-RTT stream arrived before the handshake completed");
        assert.equal(await sc2.handshake, true);
        second.conn.close(0);
      } finally {
        ep.close();
      }
    });
  } finally {
    server.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("quic engine: a send stream Deno collects is finished; the HTTP/3 client holds its control stream", async () => {
  const r = await run(Deno.execPath(), [
    "run",
    "-A",
    "--unstable-net",
    "--v8-flags=--expose-gc",
    new URL("../fixtures/quic_gc.ts", import.meta.url).pathname,
  ], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  const got = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  // Deno's behaviour (docs/QUIC.md): a dropped stream object ends the stream with a FIN.
  assert.equal(got.dropped, "fin");
  // A backend would take our control stream's end for H3_CLOSED_CRITICAL_STREAM and close.
  assert.equal(got.pool, "open");
});
