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
import {
  configHead,
  type GatewayProcess,
  h3PoolConfig,
  startGateway,
  webAndQuicListeners,
} from "../helpers/gateway.ts";
import { bindTestQuicServer, H3Client, makeTestPki } from "../helpers/h3_client.ts";
import type { TestPki } from "../../scripts/pki.ts";
import { assertSettled } from "../helpers/settled.ts";
import { RawH2 } from "../helpers/h2_raw.ts";
import { encodeFrame as encodeH2Frame, FrameType as H2FrameType } from "../../src/http/h2/frames.ts";
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

function gatewayConfig(backend: string, pki: TestPki): string {
  return `${configHead()}
${webAndQuicListeners(pki, `  [[listeners.routes]]\n  pool = "h3"`, `body_timeout = "1s"`)}
${h3PoolConfig("h3", backend, pki.ca, { pool: `response_timeout = "1s"` })}`;
}

/** A patient backend behind a gateway (gatewayConfig), for `fn`; both stopped after. */
async function withHeldSetup(
  fn: (
    s: { gw: GatewayProcess; backend: Awaited<ReturnType<typeof patientBackend>>; pki: TestPki },
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "eg-h3-held-" });
  const pki = await makeTestPki(dir);
  const backend = await patientBackend(pki);
  const gw = await startGateway(gatewayConfig(backend.address, pki)).catch(async (e) => {
    await backend.stop();
    throw e;
  });
  try {
    await fn({ gw, backend, pki });
  } finally {
    await gw.stop();
    await backend.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name:
    "h3 backend: a cut upload of unknown length is held open, never FINed; past the bound its connection retires without failing the request beside it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withHeldSetup(async ({ gw, backend }) => {
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
      // Both said to the operator: one stream held, one connection retired for it.
      const event = (e: string) =>
        metricSum(
          gw.adminPort,
          new RegExp(`^expressgateway_upstream_protocol_events_total\\{pool="h3",.*event="${e}"`),
        );
      assert.equal(await event("h3_body_held"), 1);
      assert.equal(await event("h3_hold_retired"), 1);
      await assertSettled(gw);
    }),
});

Deno.test({
  name:
    "h3 backend: a response streaming while its request body times out is cut for the client, never ended as if whole",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withHeldSetup(async ({ gw, pki }) => {
      // h2c: /stream answers at once and streams for 2 s; the request body stalls, so the
      // gateway's body timeout (1 s) gives up on it while the response is under way.
      const c = await RawH2.connect(gw.ports.web);
      try {
        await c.send(
          c.headers(
            1,
            [[":method", "POST"], [":scheme", "http"], [":authority", "x"], [":path", "/stream"]],
            0x4,
          ),
          encodeH2Frame(H2FrameType.DATA, 0, 1, new Uint8Array(1000)),
        );
        let data = "";
        let end = "";
        for (let i = 0; i < 100 && !end; i++) {
          const f = await c.next(5000);
          if (f === undefined) end = "timeout";
          else if (f === "closed") end = "closed";
          else if (f.header.streamId !== 1) continue;
          else if (f.header.type === H2FrameType.RST_STREAM) end = "reset";
          else if (f.header.type === H2FrameType.DATA) {
            data += text(f.payload);
            if (f.header.flags & 0x1) end = "end_stream";
          } else if (f.header.type === H2FrameType.HEADERS && (f.header.flags & 0x1)) end = "end_stream";
        }
        // The backend's response was cut (its stream given up with the request body): the
        // client must see a reset, not an END_STREAM after some of the parts.
        assert.equal(end, "reset", `got ${JSON.stringify(data)} then ${end}`);
        assert.notEqual(data, "part 0;part 1;part 2;part 3;part 4;part 5;part 6;");
      } finally {
        c.close();
      }
      // HTTP/3: the front keeps relaying a response whose request body failed, so what ends it is
      // the upstream body. It must fail (a response without a length then closes the connection,
      // docs/QUIC.md), not end as if the backend had finished.
      const q = await H3Client.connect({ port: gw.ports.q, ca: pki.caPem });
      try {
        const s = await q.openStream();
        await s.send.write(H3Client.headersFrame([
          [":method", "POST"],
          [":scheme", "https"],
          [":authority", "localhost"],
          [":path", "/stream"],
        ]));
        await s.send.write(H3Client.dataFrame(new Uint8Array(1000)));
        const outcome = await q.readResponse(s).then(
          (r) => `a ${r.status} ending cleanly after ${JSON.stringify(text(r.body))}`,
          () => "cut",
        );
        assert.equal(outcome, "cut");
      } finally {
        q.close();
      }
      await assertSettled(gw);
    }),
});
