/**
 * An upload of unknown length cut on its way to an HTTP/3 backend (src/http/h3/client.ts,
 * UpstreamStream.holdOpen). Deno cannot reset a QUIC stream, and a FIN would hand the backend the
 * cut body as complete, so the gateway holds the stream open until the backend stops it; here the
 * backend never does (no body timeout at all), so the hold runs into its bound (the pool's
 * response_timeout): the connection then takes no new request and closes once the request it still
 * carries has finished. That request must arrive whole, the backend must never see the cut body
 * end with a FIN, and the next request gets a new connection. tests/integration/accounting.test.ts
 * covers the common case, a backend whose body timeout stops the held stream.
 *
 * The backend is an HTTP/3 server on our QUIC engine (quinn inside Deno, as Caddy and gtlsserver
 * are reached), small enough to control exactly when it answers and to see how each stream ended.
 */

import assert from "node:assert/strict";
import { concat, metricSum } from "../helpers/common.ts";
import { configHead, startGateway } from "../helpers/gateway.ts";
import { bindTestQuicServer, makeTestPki } from "../helpers/h3_client.ts";
import { assertSettled } from "../helpers/settled.ts";
import {
  encodeFrame,
  encodeSettings,
  FrameReader,
  FrameType,
  H3,
  StreamType,
} from "../../src/http/h3/frames.ts";
import { encodeFieldSection, QpackDecoder } from "../../src/http/h3/qpack.ts";
import {
  CLOSE_FLUSH_MS,
  type QuicBidiStream,
  type QuicConnection,
  type QuicSendStream,
} from "../../src/quic/engine.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const text = (b: Uint8Array) => String.fromCharCode(...b);

/**
 * `/stream`: 200 at once, then "part N;" every 300 ms for 2 s (each gap shorter than the gateway's
 * response_timeout, the whole longer), then FIN. `/upload`: read to the end and never answer,
 * recording how the stream ended. `/ok`: 200 "ok".
 */
async function patientBackend(pki: { cert: string; key: string }) {
  const server = await bindTestQuicServer(pki, ["h3"], { maxBidiStreams: 100, maxUniStreams: 16 });
  const conns = new Set<QuicConnection>();
  const uploadEnds: string[] = [];
  let connections = 0;
  const respond = (s: QuicBidiStream, fields: [string, string][], body = "") =>
    s.send.write(concat([
      encodeFrame(FrameType.HEADERS, encodeFieldSection(fields)),
      ...(body ? [encodeFrame(FrameType.DATA, latin1(body))] : []),
    ]));
  const serveStream = async (s: QuicBidiStream) => {
    const r = new FrameReader(s.recv, 4096);
    const h = await r.frameHeader();
    if (!h || h.type !== FrameType.HEADERS) return;
    const d = new QpackDecoder({ maxTableCapacity: 0, maxBlockedStreams: 0, maxFieldSectionSize: 65536 })
      .decode(await r.payload(h.length), Number(s.recv.id));
    const path = "fields" in d ? d.fields?.find(([n]) => n === ":path")?.[1] : undefined;
    if (path === "/upload") {
      try {
        while (await r.more()) r.start = r.end;
        uploadEnds.push("fin");
      } catch {
        uploadEnds.push("cut"); // the connection went, or the stream was reset
      }
      return;
    }
    if (path === "/stream") {
      await respond(s, [[":status", "200"]]);
      for (let i = 0; i < 7; i++) {
        await sleep(300);
        await s.send.write(encodeFrame(FrameType.DATA, latin1(`part ${i};`)));
      }
    } else await respond(s, [[":status", "200"], ["content-length", "2"]], "ok");
    await s.send.finish();
  };
  const serveConn = async (c: QuicConnection) => {
    conns.add(c);
    connections++;
    // Our control stream, held until the connection ends (Deno FINs a collected send stream).
    let control: QuicSendStream | undefined = await c.openUni();
    await control.write(concat([Uint8Array.of(StreamType.CONTROL), encodeSettings([])]));
    c.closed.then(() => control = undefined, () => {});
    (async () => {
      for (let u = await c.acceptUni(); u; u = await c.acceptUni()) {
        const buf = new Uint8Array(4096);
        (async () => {
          for (let v = buf;;) {
            const part = await u.readInto(v);
            if (!part) return;
            v = new Uint8Array(part.buffer);
          }
        })().catch(() => {});
      }
    })().catch(() => {});
    try {
      for (let s = await c.acceptBidi(); s; s = await c.acceptBidi()) serveStream(s).catch(() => {});
    } catch {
      /* closed */
    } finally {
      conns.delete(c);
    }
  };
  const serving = server.serve((c) => void serveConn(c), () => {});
  return {
    address: `127.0.0.1:${server.port}`,
    uploadEnds,
    connections: () => connections,
    async stop() {
      for (const c of conns) c.close(H3.NO_ERROR, "");
      await sleep(CLOSE_FLUSH_MS);
      server.close();
      await serving;
    },
  };
}

async function exchange(
  port: number,
  request: string,
  then?: (c: Deno.Conn) => Promise<void>,
): Promise<string> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await c.write(latin1(request));
    if (then) {
      await then(c);
      return "";
    }
    const parts: Uint8Array[] = [];
    const buf = new Uint8Array(16384);
    for (let n = await c.read(buf); n !== null; n = await c.read(buf)) parts.push(buf.slice(0, n));
    return text(concat(parts));
  } finally {
    try {
      c.close();
    } catch { /* closed */ }
  }
}

Deno.test({
  name:
    "h3 backend: a cut upload of unknown length is held open, never FINed; past the bound its connection retires without failing the request beside it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "eg-h3-held-" });
    const pki = await makeTestPki(dir);
    const backend = await patientBackend(pki);
    const gw = await startGateway(`${configHead()}[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  pool = "h3"
[[pools]]
name = "h3"
response_timeout = "1s"
  [[pools.backends]]
  address = "${backend.address}"
  protocol = "h3"
  tls = { ca = "${pki.ca}", server_name = "localhost" }
`).catch(async (e) => {
      await backend.stop();
      throw e;
    });
    try {
      const port = gw.ports.web;
      // A long response on the pool's one connection…
      const long = exchange(port, "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      await sleep(100);
      // …and beside it an upload of unknown length whose client leaves inside its second chunk.
      await exchange(
        port,
        "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\n" +
          "u".repeat(0x4000) +
          "\r\n4000\r\nuuu",
        () => sleep(200),
      );
      const answer = await long;
      assert.match(answer, /^HTTP\/1\.1 200 /);
      // Chunked (the backend sent no length): every part, then the last chunk.
      const body = answer.slice(answer.indexOf("\r\n\r\n") + 4).replace(/(^|\r\n)[0-9a-f]+\r\n/g, "");
      assert.equal(body, "part 0;part 1;part 2;part 3;part 4;part 5;part 6;\r\n", answer.slice(-300));
      // The held stream's bound (1 s) ran out while /stream was still going: that connection took
      // no new request and closed after it. The next request has a connection of its own.
      assert.match(
        await exchange(port, "GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        /^HTTP\/1\.1 200 [^]*ok$/,
      );
      assert.equal(backend.connections(), 2);
      assert.equal(
        await metricSum(gw.adminPort, new RegExp(`^expressgateway_upstream_connects_total\\{pool="h3"`)),
        2,
      );
      // The backend saw the cut upload end with its connection, never with a FIN.
      for (let i = 0; i < 30 && backend.uploadEnds.length === 0; i++) await sleep(100);
      assert.deepEqual(backend.uploadEnds, ["cut"]);
      await assertSettled(gw);
    } finally {
      await gw.stop();
      await backend.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
