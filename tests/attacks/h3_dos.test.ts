/**
 * The HTTP/3 + QPACK part of the DoS catalog, against a real quic listener, with hand-made QPACK
 * encoder-stream instructions and field sections sent by the test's HTTP/3 client
 * (tests/helpers/h3_client.ts on Deno's QUIC):
 *
 *   - QPACK bomb: one large dynamic-table entry referenced a thousand times, so a 1 KB field section
 *     would decode to megabytes → 431 on that request (the decoded size is what is limited), the
 *     connection keeps serving;
 *   - blocked-stream flood: field sections waiting for inserts that never come, more than
 *     SETTINGS_QPACK_BLOCKED_STREAMS → QPACK_DECOMPRESSION_FAILED connection close;
 *   - table abuse: a capacity above the one we offered, or an insert that cannot fit →
 *     QPACK_ENCODER_STREAM_ERROR connection close;
 *   - a request stream that sends nothing (slowloris over HTTP/3) → 408 at header_timeout.
 * Every step checks that another client is served meanwhile, and the whole run that the gateway's
 * RSS stays bounded.
 */

import assert from "node:assert/strict";
import { quicGatewayConfig, startGateway } from "../helpers/gateway.ts";
import { assertSettled } from "../helpers/settled.ts";
import { H3Client, makeTestPki } from "../helpers/h3_client.ts";
import { startOrigin } from "../helpers/origin.ts";
import { H3, StreamType } from "../../src/http/h3/frames.ts";
import { encodeFieldSection, type HeaderField } from "../../src/http/h3/qpack.ts";
import { metricSum as metric } from "../helpers/common.ts";

const CAPACITY = 4096;
const BLOCKED = 2;

/** QPACK prefixed integer (RFC 9204 §4.1.1) with `prefix` bits, first byte OR-ed with `flags`. */
function qint(flags: number, prefix: number, n: number): number[] {
  const max = (1 << prefix) - 1;
  if (n < max) return [flags | n];
  const out = [flags | max];
  n -= max;
  while (n >= 128) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** Encoder instruction: Set Dynamic Table Capacity (001xxxxx). */
function setCapacity(n: number): Uint8Array {
  return Uint8Array.from(qint(0x20, 5, n));
}

/** Encoder instruction: Insert With Literal Name (01 H=0 NNNNN), no Huffman. */
function insertLiteral(name: string, value: string): Uint8Array {
  const enc = new TextEncoder();
  const n = enc.encode(name), v = enc.encode(value);
  return Uint8Array.from([...qint(0x40, 5, n.length), ...n, ...qint(0, 7, v.length), ...v]);
}

/**
 * A field section with Required Insert Count `ric` (encoded for our table capacity), Base = ric,
 * the request's own fields as static/literal lines, then `refs` indexed lines to the newest entry.
 */
function sectionWithRefs(fields: HeaderField[], ric: number, refs: number): Uint8Array {
  const plain = encodeFieldSection(fields); // starts with a 2-byte zero prefix
  const maxEntries = Math.floor(CAPACITY / 32);
  const encodedRic = (ric % (2 * maxEntries)) + 1;
  const prefix = [...qint(0, 8, encodedRic), 0x00]; // sign 0, delta base 0 → Base = RIC
  const out = new Uint8Array(prefix.length + plain.length - 2 + refs);
  out.set(prefix);
  out.set(plain.subarray(2), prefix.length);
  out.fill(0x80, prefix.length + plain.length - 2); // 1 T=0 relative index 0: the newest entry
  return out;
}

/** QUIC variable-length integer (RFC 9000 §16), as HTTP/3 frame headers use. */
function varint(n: number): number[] {
  if (n < 64) return [n];
  if (n < 16384) return [0x40 | (n >> 8), n & 255];
  return [0x80 | (n >>> 24), (n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** HEADERS frame around a ready-made field section. */
function headersFrame(section: Uint8Array): Uint8Array {
  return Uint8Array.from([0x01, ...varint(section.length), ...section]);
}

const GET: HeaderField[] = [
  [":method", "GET"],
  [":scheme", "https"],
  [":authority", "localhost"],
  [":path", "/bytes/5"],
];

async function rssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

Deno.test("h3 DoS catalog: QPACK bombs, blocked-stream floods, table abuse and slow headers get their answers", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "eg-h3dos-" });
  const pki = await makeTestPki(dir);
  const origin = await startOrigin("o1");
  const gw = await startGateway(quicGatewayConfig(pki, origin.address, {
    listener: `
max_header_size = "16KiB"
header_timeout = "1s"
qpack_max_table_capacity = ${CAPACITY}
qpack_blocked_streams = ${BLOCKED}`,
  }));
  const port = gw.ports.q;
  const pid = gw.child.pid; // main.ts runs in this process; data-plane workers are its threads
  const rssBefore = await rssKiB(pid);
  /** Another client on its own connection is served while (and after) an attack runs. */
  const bystander = async () => {
    const c = await H3Client.connect({ port, ca: pki.caPem });
    try {
      const r = await c.request({ path: "/bytes/3" });
      assert.equal(r.status, 200);
      assert.equal(r.bodyLength, 3);
    } finally {
      c.close();
    }
  };
  /** Waits (bounded) for the server to close `c`; returns the code. */
  const closedWith = async (c: H3Client) => {
    const closed = await Promise.race([
      c.closed(),
      new Promise<never>((_, rej) => setTimeout(() => rej(new Error("no connection close")), 10_000)),
    ]);
    assert.equal(closed.local, false, "the server closed it");
    return closed.code;
  };
  /** Opens our QPACK encoder stream on `c` and writes `bytes` to it. */
  const encoderStream = async (c: H3Client, ...bytes: Uint8Array[]) => {
    const s = await c.conn.openUni();
    await s.write(Uint8Array.of(StreamType.QPACK_ENCODER));
    for (const b of bytes) await s.write(b);
    return s;
  };
  try {
    await t.step(
      "QPACK bomb: a 4000-byte entry referenced 1000 times → 431, the connection lives",
      async () => {
        const c = await H3Client.connect({ port, ca: pki.caPem });
        try {
          await encoderStream(c, setCapacity(CAPACITY), insertLiteral("x-bomb", "v".repeat(4000)));
          const s = await c.openStream();
          // 1 KB on the wire, 4 MB decoded: far above max_header_size (16 KiB).
          await s.send.write(headersFrame(sectionWithRefs(GET, 1, 1000)));
          await s.send.finish();
          const res = await c.readResponse(s);
          assert.equal(res.status, 431);
          // The same connection still serves (the entry is in the table; a normal request works).
          const ok = await c.request({ path: "/bytes/5" });
          assert.equal(ok.status, 200);
          assert.equal(ok.bodyLength, 5);
          // A reference that stays within the limit is decoded and forwarded.
          const s2 = await c.openStream();
          await s2.send.write(headersFrame(sectionWithRefs(GET, 1, 2)));
          await s2.send.finish();
          const small = await c.readResponse(s2);
          assert.equal(small.status, 200, "two references (8 KB decoded) are within max_header_size");
        } finally {
          c.close();
        }
        await bystander();
      },
    );

    await t.step(
      `blocked streams beyond SETTINGS_QPACK_BLOCKED_STREAMS (${BLOCKED}) → QPACK_DECOMPRESSION_FAILED`,
      async () => {
        const c = await H3Client.connect({ port, ca: pki.caPem });
        try {
          await encoderStream(c, setCapacity(CAPACITY)); // no inserts ever come
          for (let i = 0; i <= BLOCKED; i++) {
            const s = await c.openStream();
            await s.send.write(headersFrame(sectionWithRefs(GET, 5, 1))); // needs 5 inserts
          }
          assert.equal(await closedWith(c), H3.QPACK_DECOMPRESSION_FAILED);
        } finally {
          c.close();
        }
        await bystander();
      },
    );

    await t.step("a blocked stream that never unblocks is answered 408 at header_timeout", async () => {
      const c = await H3Client.connect({ port, ca: pki.caPem });
      try {
        await encoderStream(c, setCapacity(CAPACITY));
        const s = await c.openStream();
        await s.send.write(headersFrame(sectionWithRefs(GET, 3, 1)));
        const res = await c.readResponse(s);
        assert.equal(res.status, 408);
      } finally {
        c.close();
      }
    });

    await t.step("a table capacity above the one offered → QPACK_ENCODER_STREAM_ERROR", async () => {
      const c = await H3Client.connect({ port, ca: pki.caPem });
      try {
        await encoderStream(c, setCapacity(CAPACITY + 1));
        assert.equal(await closedWith(c), H3.QPACK_ENCODER_STREAM_ERROR);
      } finally {
        c.close();
      }
      await bystander();
    });

    await t.step("an insert larger than the table → QPACK_ENCODER_STREAM_ERROR", async () => {
      const c = await H3Client.connect({ port, ca: pki.caPem });
      try {
        await encoderStream(c, setCapacity(CAPACITY), insertLiteral("x-big", "v".repeat(CAPACITY)));
        assert.equal(await closedWith(c), H3.QPACK_ENCODER_STREAM_ERROR);
      } finally {
        c.close();
      }
      await bystander();
    });

    await t.step(
      "slowloris over HTTP/3: 20 streams that never send HEADERS → 408 each at header_timeout",
      async () => {
        const c = await H3Client.connect({ port, ca: pki.caPem });
        try {
          const streams = await Promise.all(Array.from({ length: 20 }, () => c.openStream()));
          // Opening a stream sends nothing until a byte is written: one byte of a frame type each.
          for (const s of streams) await s.send.write(Uint8Array.of(0x01));
          await bystander(); // others are served while they dangle
          const answers = await Promise.all(streams.map((s) => c.readResponse(s)));
          assert.deepEqual(answers.map((r) => r.status), new Array(20).fill(408));
        } finally {
          c.close();
        }
      },
    );

    await t.step("each abuse is counted", async () => {
      const events = await metric(
        gw.adminPort,
        /^expressgateway_protocol_events_total\{listener="q",event="h3_qpack/,
      );
      assert.ok(events >= 3, `qpack events counted: ${events}`);
      const timeouts = await metric(
        gw.adminPort,
        /^expressgateway_protocol_events_total\{listener="q",event="header_timeout"/,
      );
      assert.ok(timeouts >= 21, `header timeouts counted: ${timeouts}`);
    });

    await t.step("the gateway's memory stayed bounded through the catalog", async () => {
      const grown = (await rssKiB(pid)) - rssBefore;
      assert.ok(grown < 64 * 1024, `RSS grew ${grown} KiB`);
    });

    await t.step(
      "the books balance after the catalog: nothing in flight, every upstream connection idle",
      async () => {
        await assertSettled(gw);
      },
    );
  } finally {
    await gw.stop();
    await origin.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("h3 send_timeout: a client that stops reading its response frees the request; a steady reader is not cut", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "eg-h3send-" });
  const pki = await makeTestPki(dir);
  const origin = await startOrigin("o1");
  const gw = await startGateway(quicGatewayConfig(pki, origin.address, {
    listener: `send_timeout = "1s"\nidle_timeout = "30s"`,
  }));
  const port = gw.ports.q;
  const event = () =>
    metric(gw.adminPort, /^expressgateway_protocol_events_total\{listener="q",event="send_timeout"/);
  const inFlight = () => metric(gw.adminPort, /^expressgateway_in_flight_requests /);
  /** A GET of 50 MB on its own stream of `c`, finished; nothing of the answer is read. */
  const unread = async (c: H3Client, query: string) => {
    const s = await c.openStream();
    await s.send.write(H3Client.headersFrame([...GET.slice(0, 3), [":path", `/bytes/52428800${query}`]]));
    await s.send.finish();
    return s;
  };
  const cutWithin = async (what: string, before: number) => {
    const t0 = performance.now();
    for (let i = 0; i < 50 && await event() === before; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await event() - before, 1, `${what}: send_timeout counted once`);
    assert.ok(performance.now() - t0 < 4000, `${what}: cut after ${Math.round(performance.now() - t0)} ms`);
    assert.equal(await inFlight(), 0, `${what}: the request left the in-flight count`);
  };
  try {
    await t.step("with a content-length: the stream is given up, the connection serves on", async () => {
      const c = await H3Client.connect({ port, ca: pki.caPem });
      try {
        await unread(c, "");
        await cutWithin("content-length", await event());
        // The same connection still answers (its stream credit was the stalled stream's alone).
        const r = await c.request({ path: "/bytes/3" });
        assert.equal(r.status, 200);
        assert.equal(r.bodyLength, 3);
      } finally {
        c.close();
      }
    });

    await t.step(
      "without one: the connection is closed, as a FIN would make the cut body look whole",
      async () => {
        const c = await H3Client.connect({ port, ca: pki.caPem });
        try {
          await unread(c, "?chunked=1");
          await cutWithin("chunked", await event());
          const info = await Promise.race([
            c.conn.closed,
            new Promise<undefined>((r) => setTimeout(r, 3000, undefined)),
          ]);
          assert.ok(info !== undefined, "the connection was closed");
          assert.equal(info.code, H3.REQUEST_CANCELLED);
        } finally {
          c.close();
        }
      },
    );

    await t.step("a reader that keeps reading gets the whole response", async () => {
      const before = await event();
      const c = await H3Client.connect({ port, ca: pki.caPem });
      try {
        // 32 MB read with a pause after each read (at most 64 KiB): a few times send_timeout.
        const s = await c.openStream();
        await s.send.write(H3Client.headersFrame([...GET.slice(0, 3), [":path", "/bytes/33554432"]]));
        await s.send.finish();
        let got = 0;
        let view = new Uint8Array(64 * 1024);
        for (let i = 0; i < 100_000; i++) {
          const chunk = await s.recv.readInto(view);
          if (chunk === null) break;
          got += chunk.length;
          view = new Uint8Array(chunk.buffer); // readInto transfers the buffer it was given
          await new Promise((r) => setTimeout(r, 10));
        }
        assert.ok(got > 33_554_432, `the whole response arrived: ${got} bytes`);
      } finally {
        c.close();
      }
      assert.equal(await event(), before, "a reader that keeps reading was cut");
    });

    await t.step("the books balance", async () => {
      await assertSettled(gw);
    });
  } finally {
    await gw.stop();
    await origin.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
