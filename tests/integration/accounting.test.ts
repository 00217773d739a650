/**
 * The books balance after requests end badly, on every front (HTTP/1.1, h2c, HTTP/3) to every
 * backend protocol (HTTP/1.1, h2c, HTTP/3). Each cell gets the ways a request ends other than
 * well: the client goes away mid-download and mid-upload (h2 and h3 cancel the stream first, then
 * close), the backend is too slow (504 at response_timeout), the backend fails mid-body, the
 * client leaves while the backend is still thinking, and the client stops reading a large response
 * (cut by send_timeout on HTTP/1.1 and HTTP/3, http2.stall_timeout on HTTP/2, each counted); then
 * one ordinary request must still be served. Afterwards tests/helpers/settled.ts must find nothing in flight, no backend counting a
 * request, and every upstream connection idle. A request whose end was missed would show there
 * long before it showed anywhere else: as the in-flight cap filling up, or as least_request
 * avoiding a backend for requests long gone. The whole run is done twice, and the second round must
 * leave the gateway with no more open descriptors than the first (a socket or stream leaked per bad
 * ending would show as dozens); no cut upload may reach an origin as a whole body.
 *
 * Backends: the node `http` origin (tests/fixtures/origin.mjs), the node `http2` origin over h2c
 * (tests/fixtures/h2_origin.mjs), and for HTTP/3 a second gateway's quic listener in front of the
 * node origin. Clients: raw TCP for HTTP/1.1, tests/helpers/h2_raw.ts for h2c, and
 * tests/helpers/h3_client.ts on our QUIC engine for HTTP/3 (they can cut a stream at any byte).
 */

import assert from "node:assert/strict";
import {
  configHead,
  type GatewayProcess,
  h3PoolConfig,
  hostRoutes,
  poolConfig,
  quicGatewayConfig,
  startGateway,
  webAndQuicListeners,
} from "../helpers/gateway.ts";
import { H3Client, makeTestPki } from "../helpers/h3_client.ts";
import { RawH2, u32 } from "../helpers/h2_raw.ts";
import { startNodePeer } from "../helpers/node_peer.ts";
import { startOrigin } from "../helpers/origin.ts";
import { assertSettled } from "../helpers/settled.ts";
import { concat, metricSum, openDescriptors, within } from "../helpers/common.ts";
import { encodeFrame, ErrorCode, FrameType } from "../../src/http/h2/frames.ts";
import type { HeaderField } from "../../src/http/h2/hpack.ts";

const KiB = 1024, MiB = 1024 * KiB;
/** No step may take longer than this (a hang is a failure, not a slow pass). */
const STEP_MS = 10_000;
const H3_REQUEST_CANCELLED = 0x10c;

type Proto = "h1" | "h2" | "h3";
type Ending =
  | "download_cut"
  | "upload_cut"
  | "streamed_upload_cut"
  | "timeout"
  | "backend_fails"
  | "client_leaves"
  | "client_stops_reading"
  | "ok";
const ENDINGS: Ending[] = [
  "download_cut",
  "upload_cut",
  "streamed_upload_cut",
  "timeout",
  "backend_fails",
  "client_leaves",
  "client_stops_reading",
  "ok",
];

/**
 * The fronts' send_timeout (HTTP/1.1, HTTP/3) and http2.stall_timeout: a client that stops reading
 * is cut within 1.5 times it, plus up to a sweep (250 ms) per check. Each client_stops_reading
 * ending waits until the front counts the cut, then reads what was buffered and must find the
 * response cut short.
 */
const STALL_MS = 600;
/** Larger than the socket buffers on loopback (up to 4 MiB sent, 6 MiB received) can hold. */
const STALL_BYTES = 64 * MiB;

/** Where the backend fails mid-body: the node http origin resets after half its Content-Length; the h2 one sends RST_STREAM. */
const failPath = (back: Proto) => back === "h2" ? "/reset-midway" : "/kill-after/1000";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

async function writeAll(conn: Deno.Conn, b: Uint8Array): Promise<void> {
  for (let off = 0; off < b.length;) off += await conn.write(b.subarray(off));
}

/** Reads until `atLeast` bytes came (or EOF); returns them (latin1). */
async function readSome(conn: Deno.Conn, atLeast: number): Promise<string> {
  const buf = new Uint8Array(64 * KiB);
  let got = "";
  while (got.length < atLeast) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) break;
    got += String.fromCharCode(...buf.subarray(0, Math.min(n, 256)));
    if (n > 256) got += " ".repeat(n - 256); // only the head is looked at
  }
  return got;
}

/** GET `path` from `host` through the gateway's HTTP/1.1 front (as HTTP/1.0: no chunked framing to undo): the body. */
async function viaGateway(port: number, host: string, path: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, latin1(`GET ${path} HTTP/1.0\r\nHost: ${host}\r\n\r\n`));
    const parts: Uint8Array[] = [];
    const buf = new Uint8Array(16 * KiB);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) parts.push(buf.slice(0, n));
    const text = new TextDecoder().decode(concat(parts));
    assert.match(text, /^HTTP\/1\.1 200 /);
    return text.slice(text.indexOf("\r\n\r\n") + 4);
  } finally {
    conn.close();
  }
}

/** Resolves once the front has counted one more stalled client (bounded by the step). */
type CutSeen = () => Promise<void>;

async function h1Ending(
  port: number,
  host: string,
  back: Proto,
  ending: Ending,
  cut: CutSeen,
): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const get = (path: string) => latin1(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  try {
    switch (ending) {
      case "download_cut":
        await writeAll(conn, get(`/bytes/${8 * MiB}`));
        assert.match(await readSome(conn, 64 * KiB), /^HTTP\/1\.1 200 /);
        return; // closed with most of the body unread
      case "upload_cut":
        await writeAll(
          conn,
          latin1(`POST /sha256?cut=1 HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${MiB}\r\n\r\n`),
        );
        await writeAll(conn, new Uint8Array(128 * KiB));
        await sleep(200);
        return;
      case "streamed_upload_cut": // no length announced: chunked, cut inside the second chunk
        await writeAll(
          conn,
          latin1(`POST /sha256?cut=1 HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n`),
        );
        await writeAll(conn, latin1(`10000\r\n${"x".repeat(64 * KiB)}\r\n10000\r\nxxxx`));
        await sleep(200);
        return;
      case "timeout":
        await writeAll(conn, get("/slow?ms=4000"));
        assert.match(await readSome(conn, Infinity), /^HTTP\/1\.1 504 /);
        return;
      case "backend_fails":
        await writeAll(conn, get(failPath(back)));
        await readSome(conn, Infinity); // the gateway must end it: a cut body, or its own error
        return;
      case "client_leaves":
        await writeAll(conn, get("/slow?ms=4000"));
        await sleep(200);
        return;
      case "client_stops_reading": {
        await writeAll(conn, get(`/bytes/${STALL_BYTES}`));
        await cut(); // nothing read: the gateway's write waits until send_timeout cuts it
        const text = await readSome(conn, Infinity);
        assert.match(text, /^HTTP\/1\.1 200 /);
        assert.ok(text.length < STALL_BYTES, `the stalled response was not cut: ${text.length} bytes`);
        return;
      }
      case "ok": {
        await writeAll(conn, get("/bytes/100"));
        const text = await readSome(conn, Infinity);
        assert.match(text, /^HTTP\/1\.1 200 /);
        assert.equal(text.length - text.indexOf("\r\n\r\n") - 4, 100, text);
        return;
      }
    }
  } finally {
    try {
      conn.close();
    } catch { /* closed by the gateway */ }
  }
}

async function h2Ending(port: number, host: string, back: Proto, ending: Ending): Promise<void> {
  const c = await RawH2.connect(port);
  const fields = (method: string, path: string, extra: HeaderField[] = []): HeaderField[] => [
    [":method", method],
    [":scheme", "http"],
    [":authority", host],
    [":path", path],
    ...extra,
  ];
  const rst = () => c.send(encodeFrame(FrameType.RST_STREAM, 0, 1, u32(ErrorCode.CANCEL)));
  /** Frames on stream 1 until `stop` says so, the stream ends, or the connection does; the :status seen. */
  const follow = async (
    stop: (dataBytes: number) => boolean,
  ): Promise<{ status: number; ended: boolean }> => {
    let data = 0, status = 0;
    for (;;) {
      const f = await c.next(STEP_MS);
      if (f === undefined) throw new Error("h2: no frame within the step's time");
      if (f === "closed") return { status, ended: true };
      const { type, flags, streamId } = f.header;
      if (streamId !== 1) continue;
      if (type === FrameType.HEADERS && status === 0) {
        status = Number(c.decoder.decode(f.payload).find(([n]) => n === ":status")?.[1] ?? 0);
      }
      if (type === FrameType.DATA) data += f.payload.length;
      if (type === FrameType.RST_STREAM || (flags & 0x1) !== 0) return { status, ended: true };
      if (stop(data)) return { status, ended: false };
    }
  };
  try {
    switch (ending) {
      case "download_cut": {
        await c.send(c.headers(1, fields("GET", `/bytes/${8 * MiB}`)));
        const r = await follow((n) => n >= 32 * KiB); // the initial window is 64 KiB
        assert.equal(r.status, 200);
        await rst();
        await sleep(100);
        return;
      }
      case "upload_cut":
      case "streamed_upload_cut":
        await c.send(c.headers(
          1,
          fields("POST", "/sha256?cut=1", ending === "upload_cut" ? [["content-length", String(MiB)]] : []),
          0x4,
        ));
        for (let i = 0; i < 3; i++) await c.send(encodeFrame(FrameType.DATA, 0, 1, new Uint8Array(16 * KiB)));
        await sleep(200);
        await rst();
        await sleep(100);
        return;
      case "timeout":
        await c.send(c.headers(1, fields("GET", "/slow?ms=4000")));
        assert.equal((await follow(() => false)).status, 504);
        return;
      case "backend_fails":
        await c.send(c.headers(1, fields("GET", failPath(back))));
        await follow(() => false);
        return;
      case "client_leaves":
        await c.send(c.headers(1, fields("GET", "/slow?ms=4000")));
        await sleep(200);
        return; // the connection closes with the stream open
      case "client_stops_reading": {
        // No WINDOW_UPDATE ever: the gateway sends the initial 64 KiB window, then cannot send.
        await c.send(c.headers(1, fields("GET", `/bytes/${STALL_BYTES}`)));
        let data = 0, ended = "";
        for (let i = 0; i < 10_000 && !ended; i++) {
          const f = await c.next(STEP_MS);
          if (f === undefined) ended = "nothing within the step's time";
          else if (f === "closed") ended = "closed";
          else if (f.header.type === FrameType.GOAWAY) ended = "goaway";
          else if (f.header.streamId !== 1) continue;
          else if (f.header.type === FrameType.RST_STREAM) ended = "reset";
          else if (f.header.type === FrameType.DATA) {
            data += f.payload.length;
            if (f.header.flags & 0x1) ended = "end_stream";
          }
        }
        // http2.stall_timeout: the stream reset, or (the connection sent nothing else meanwhile) the
        // connection closed.
        assert.ok(["reset", "goaway", "closed"].includes(ended), `the stalled stream ended by ${ended}`);
        assert.ok(data <= 64 * KiB, `${data} bytes sent past the initial window`);
        return;
      }
      case "ok": {
        await c.send(c.headers(1, fields("GET", "/bytes/100")));
        assert.equal((await follow(() => false)).status, 200);
        return;
      }
    }
  } finally {
    c.close();
  }
}

async function h3Ending(
  port: number,
  ca: string,
  host: string,
  back: Proto,
  ending: Ending,
  cut: CutSeen,
): Promise<void> {
  const c = await H3Client.connect({ port, ca });
  const fields = (method: string, path: string, extra: HeaderField[] = []): HeaderField[] => [
    [":method", method],
    [":scheme", "https"],
    [":authority", host],
    [":path", path],
    ...extra,
  ];
  try {
    switch (ending) {
      case "download_cut": {
        const s = await c.openStream();
        await s.send.write(H3Client.headersFrame(fields("GET", `/bytes/${8 * MiB}`)));
        await s.send.finish();
        let buf = new Uint8Array(64 * KiB);
        for (let got = 0; got < 64 * KiB;) {
          const part = await s.recv.readInto(buf);
          if (part === null) throw new Error("h3: the download ended before 64 KiB");
          got += part.length;
          buf = new Uint8Array(part.buffer); // the read took the buffer over (a BYOB read)
        }
        s.recv.stopSending(H3_REQUEST_CANCELLED);
        await sleep(100);
        return;
      }
      case "upload_cut":
      case "streamed_upload_cut": {
        const s = await c.openStream();
        const length: HeaderField[] = ending === "upload_cut" ? [["content-length", String(MiB)]] : [];
        await s.send.write(H3Client.headersFrame(fields("POST", "/sha256?cut=1", length)));
        await s.send.write(H3Client.dataFrame(new Uint8Array(128 * KiB)));
        await sleep(200);
        s.recv.stopSending(H3_REQUEST_CANCELLED);
        await sleep(100);
        return;
      }
      case "timeout": {
        const r = await c.request({ path: "/slow?ms=4000", authority: host });
        assert.equal(r.status, 504);
        return;
      }
      case "backend_fails":
        // A cut body may end the stream or, without a length to fall short of, the connection.
        await c.request({ path: failPath(back), authority: host }).catch(() => {});
        return;
      case "client_leaves":
        c.request({ path: "/slow?ms=4000", authority: host }).catch(() => {});
        await sleep(200);
        return; // the connection closes with the stream open
      case "client_stops_reading": {
        const s = await c.openStream();
        await s.send.write(H3Client.headersFrame(fields("GET", `/bytes/${STALL_BYTES}`)));
        await s.send.finish();
        await cut(); // nothing read: QUIC flow control stops the gateway's writes until send_timeout
        // What was sent before the stall, then the end send_timeout made of it (the FIN that
        // follows the aborted write): fewer bytes than the content-length.
        let got = 0;
        let buf = new Uint8Array(64 * KiB);
        try {
          for (let i = 0; i < 100_000; i++) {
            const part = await s.recv.readInto(buf);
            if (part === null) break;
            got += part.length;
            buf = new Uint8Array(part.buffer);
          }
        } catch { /* reset, or the connection closed */ }
        assert.ok(got < STALL_BYTES, `the stalled response was not cut: ${got} bytes`);
        return;
      }
      case "ok": {
        const r = await c.request({ path: "/bytes/100", authority: host });
        assert.equal(r.status, 200);
        assert.equal(r.body.length, 100);
        return;
      }
    }
  } finally {
    c.close();
  }
}

Deno.test({
  name: "accounting: after every bad ending on every front to every backend, nothing is left in flight",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "eg-accounting-" });
    const pki = await makeTestPki(dir);
    const origin = await startOrigin("o1");
    const h2origin = await startNodePeer("h2_origin.mjs", ["h2o", "h2c"]);
    let inner: GatewayProcess | undefined;
    let gw: GatewayProcess | undefined;
    try {
      // A short body timeout: an upload of unknown length cut on the way to it is held open by
      // the outer gateway until this one gives up on the body (src/http/h3/client.ts, holdOpen).
      inner = await startGateway(
        quicGatewayConfig(pki, origin.address, { pool: "origin", listener: `body_timeout = "500ms"` }),
      );
      gw = await startGateway(`${configHead()}
${
        webAndQuicListeners(
          pki,
          hostRoutes({ "h1.test": "h1", "h2.test": "h2", "h3.test": "h3" }),
          `send_timeout = "${STALL_MS}ms"\nhttp2 = { stall_timeout = "${STALL_MS}ms" }`,
        )
      }
${poolConfig("h1", [origin.address], `response_timeout = "500ms"`)}
${poolConfig("h2", [`127.0.0.1:${h2origin.port}`], `response_timeout = "500ms"`, `protocol = "h2c"`)}
${h3PoolConfig("h3", `127.0.0.1:${inner.ports.q}`, pki.ca, { pool: `response_timeout = "2500ms"` })}
`);
      const g = gw;
      // Twice: the second round must leave the gateway with no more descriptors than the first did
      // (an upstream socket, QUIC stream or timer handle leaked per bad ending would show as dozens).
      const fds: number[] = [];
      for (const round of [1, 2]) {
        for (const front of ["h1", "h2", "h3"] as Proto[]) {
          for (const back of ["h1", "h2", "h3"] as Proto[]) {
            await t.step(`${front} → ${back}${round === 2 ? " (again)" : ""}`, async () => {
              const host = `${back}.test`;
              for (const ending of ENDINGS) {
                const what = `${front} → ${back}, ${ending}`;
                // What the front counts when it cuts a client that stopped reading.
                const cuts = () =>
                  metricSum(
                    g.adminPort,
                    new RegExp(
                      `^expressgateway_protocol_events_total\\{listener="${
                        front === "h3" ? "q" : "web"
                      }",event="send_timeout"\\}`,
                    ),
                  );
                const before = ending === "client_stops_reading" ? await cuts() : 0;
                const cut = async () => {
                  for (let i = 0; i < STEP_MS / 50 && await cuts() === before; i++) await sleep(50);
                };
                await within(
                  front === "h1"
                    ? h1Ending(g.ports.web, host, back, ending, cut)
                    : front === "h2"
                    ? h2Ending(g.ports.web, host, back, ending)
                    : h3Ending(g.ports.q, pki.caPem, host, back, ending, cut),
                  STEP_MS,
                  what,
                ).catch(async (e) => {
                  // What the gateways said about it is the first thing to read (logs are flushed in batches).
                  await sleep(500);
                  throw new Error(
                    `${what}: ${e}\n--- gateway ---\n${g.logs().slice(-3000)}` +
                      `\n--- inner gateway ---\n${inner!.logs().slice(-2000)}`,
                  );
                });
              }
              await assertSettled(g);
            });
          }
        }
        fds.push(openDescriptors(g.child.pid));
      }
      assert.ok(fds[1] <= fds[0] + 8, `descriptors after each round: ${fds.join(", ")}`);
      // The inner gateway's client (the outer gateway's HTTP/3 pool) keeps its connection.
      await assertSettled(inner, { clientsGone: false });
      // Deno cannot reset a stream. Every cut upload with a length ended with a FIN short of it,
      // which the backend refused on its stream; every cut upload without one was held open until
      // the backend's body timeout stopped it. The one connection to the backend carried all the
      // rest: a connection close would have failed every request multiplexed on it.
      const h3Backend = `pool="h3",backend="127.0.0.1:${inner.ports.q}"`;
      assert.equal(
        await metricSum(g.adminPort, new RegExp(`^expressgateway_upstream_connects_total\\{${h3Backend}\\}`)),
        1,
      );
      assert.equal(
        await metricSum(inner.adminPort, /^expressgateway_protocol_events_total\{.*event="h3_malformed"\}/),
        6,
      );
      // And no held stream was ever ended with a FIN that would have made its cut body look whole:
      // each of them (three fronts, two rounds) ended at the backend's body timeout.
      assert.equal(
        await metricSum(inner.adminPort, /^expressgateway_protocol_events_total\{.*event="body_timeout"\}/),
        6,
      );
      // Every client that stopped reading was cut by the stall timeouts, once per cell and round.
      const events = (listener: string, re: string) =>
        metricSum(
          g.adminPort,
          new RegExp(`^expressgateway_protocol_events_total\\{listener="${listener}",event="${re}"\\}`),
        );
      assert.equal(await events("web", "send_timeout"), 6, "HTTP/1.1 front");
      assert.equal(await events("web", "h2_(zero_window|connection)_stall"), 6, "HTTP/2 front");
      assert.equal(await events("q", "send_timeout"), 6, "HTTP/3 front");
      // The outer gateway said so: six held, none outlasting its bound.
      const held = (e: string) =>
        metricSum(
          g.adminPort,
          new RegExp(`^expressgateway_upstream_protocol_events_total\\{${h3Backend},event="${e}"\\}`),
        );
      assert.equal(await held("h3_body_held"), 6);
      assert.equal(await held("h3_hold_retired"), 0);
      // No cut upload (every one goes to /sha256?cut=1) ever reached an origin as a whole body.
      const o1 = await (await fetch(`http://${origin.address}/__stats`)).json();
      assert.equal(
        o1.cutCompleted,
        0,
        "the HTTP/1.1 origin (also behind the HTTP/3 backend) got a cut body whole",
      );
      const o2 = JSON.parse(await viaGateway(g.ports.web, "h2.test", "/__requests"));
      assert.equal(o2.cutCompleted, 0, "the HTTP/2 origin got a cut body whole");
      for (const p of [g, inner]) assert.doesNotMatch(p.logs(), /unhandled rejection/);
    } finally {
      await gw?.stop();
      await inner?.stop();
      await h2origin.stop();
      await origin.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
