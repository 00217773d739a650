/**
 * h3spec (kazu-yamamoto/h3spec 0.1.14, the suite an independent conformance run will point at our
 * `quic` listener) reproduced case by case: its "HTTP/3 servers" group, which also holds the
 * QPACK cases (tagged [QPACK …]), and of its "QUIC servers" group the one case Deno's client API
 * can express.
 *
 * Each case does what h3spec's client does: a QUIC connection with ALPN h3, our control stream
 * (type 0x00, SETTINGS), QPACK encoder (0x02) and decoder (0x03) streams, and a GET / on the first
 * request stream; h3spec's hook then changes one thing (a frame before or after the SETTINGS, a
 * stream closed, a raw field section instead of the request's, a second stream of a critical
 * type…). The field sections and instruction bytes are h3spec's own. The expected outcome is
 * h3spec's: the connection closed by the server with that application error code (h3spec also
 * takes a RESET_STREAM with it; Deno cannot send one with a code, so every stream error here is a
 * connection error, RFC 9114 §8). We are stricter in one way: h3spec would also accept
 * H3_GENERAL_PROTOCOL_ERROR or H3_INTERNAL_ERROR for any case; we want the specific code. A
 * case that is not closed within h3spec's 2 s (3 s here, a busy 2-core machine) fails, as in
 * h3spec.
 *
 * The gateway: one quic listener, `/drain…` proxied to the node HTTP/1.1 origin (which reads the
 * request body: h3spec's body cases POST to /drain), everything else a `respond` route. The
 * request-body cases run against both. Cases that must be refused before routing also check that
 * the origin never saw the request (h3spec's `refusedNotServed`).
 *
 * The "QUIC servers" group (34 cases in h3spec's TransportError.hs, and the 9 that 0.1.14's
 * ChangeLog adds) is handled by quinn inside Deno; Deno's client gives no access to packets,
 * frames, transport parameters or TLS messages, so only "no application protocol" is
 * reproducible (a client offering an ALPN we do not speak).
 *
 * Run: DENO_NO_PACKAGE_JSON=1 node_modules/.bin/deno test -A --unstable-net tests/integration/h3_conformance.test.ts
 */

import assert from "node:assert/strict";
import { quicGatewayConfig, startGateway } from "../helpers/gateway.ts";
import { H3Client, type H3Response, makeTestPki } from "../helpers/h3_client.ts";
import { startOrigin } from "../helpers/origin.ts";
import { connectQuic, type QuicConnection, type QuicSendStream } from "../../src/quic/engine.ts";
import { encodeFrame, encodeSettings, FrameType, H3, Setting, StreamType } from "../../src/http/h3/frames.ts";
import { encodeFieldSection, type HeaderField } from "../../src/http/h3/qpack.ts";

/** h3spec's per-case timeout is 2 s; headroom for a busy machine. */
const TIMEOUT_MS = 3000;
const RESPOND_BODY = "hello from the h3 conformance route\n";

const bytes = (...b: number[]) => Uint8Array.from(b);
const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((h) => parseInt(h, 16)));

/** What one h3spec-like run ended with. */
type Outcome =
  | { kind: "closed"; code: number; reason: string; local: boolean; transport: boolean }
  | { kind: "response"; res: H3Response }
  | { kind: "timeout" };

interface Plan {
  /** Frames on our control stream after its type byte (h3spec's onControlFrameCreated). */
  controlFrames?: (settings: Uint8Array) => Uint8Array[];
  /** After the control stream's frames were written (h3spec's onControlStreamCreated). */
  onControl?: (s: QuicSendStream, conn: QuicConnection) => Promise<void>;
  /** After the encoder stream's type was written (h3spec's onEncoderStreamCreated). */
  onEncoder?: (s: QuicSendStream, conn: QuicConnection) => Promise<void>;
  /** After the decoder stream's type was written (h3spec's onDecoderStreamCreated). */
  onDecoder?: (s: QuicSendStream, conn: QuicConnection) => Promise<void>;
  /** Frames on the request stream, then FIN (default: HEADERS of GET /). */
  request?: Uint8Array[];
}

/** The SETTINGS h3spec's client (http3's defaults) sends. */
const CLIENT_SETTINGS = encodeSettings([
  [Setting.QPACK_BLOCKED_STREAMS, 100],
  [Setting.QPACK_MAX_TABLE_CAPACITY, 4096],
  [Setting.MAX_FIELD_SECTION_SIZE, 32768],
]);

const requestFields = (method: string, path: string, extra: HeaderField[] = []): HeaderField[] => [
  [":method", method],
  [":scheme", "https"],
  [":authority", "127.0.0.1"],
  [":path", path],
  ...extra,
];
const headers = (fields: HeaderField[]) => encodeFrame(FrameType.HEADERS, encodeFieldSection(fields));
const rawHeaders = (section: Uint8Array) => encodeFrame(FrameType.HEADERS, section);
const data = (b: Uint8Array) => encodeFrame(FrameType.DATA, b);
const empty = (type: number) => encodeFrame(type, new Uint8Array(0));

/** h3spec's openAnother: a further unidirectional stream carrying these bytes. */
const openAnother = (b: Uint8Array) => async (_s: QuicSendStream, conn: QuicConnection) => {
  const s = await conn.openUni();
  await s.write(b);
};

async function runCase(port: number, ca: string, plan: Plan): Promise<Outcome> {
  const c = await H3Client.connect({ port, ca, noControl: true });
  const closed = c.conn.closed.then((i) => ({ kind: "closed" as const, ...i }));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<Outcome>((res) =>
    timer = setTimeout(() => res({ kind: "timeout" }), TIMEOUT_MS)
  );
  const act = (async (): Promise<Outcome> => {
    const conn = c.conn;
    const control = await conn.openUni();
    const frames = plan.controlFrames?.(CLIENT_SETTINGS) ?? [CLIENT_SETTINGS];
    await control.write(Uint8Array.of(StreamType.CONTROL, ...frames.flatMap((f) => [...f])));
    await plan.onControl?.(control, conn);
    const enc = await conn.openUni();
    await enc.write(Uint8Array.of(StreamType.QPACK_ENCODER));
    await plan.onEncoder?.(enc, conn);
    const dec = await conn.openUni();
    await dec.write(Uint8Array.of(StreamType.QPACK_DECODER));
    await plan.onDecoder?.(dec, conn);
    const s = await conn.openBidi();
    for (const f of plan.request ?? [headers(requestFields("GET", "/"))]) await s.send.write(f);
    await s.send.finish();
    const res = await c.readResponse(s);
    // h3spec waits 100 ms after the response before it calls the case done.
    await new Promise((r) => setTimeout(r, 100));
    return { kind: "response", res };
  })().catch(() => closed);
  try {
    return await Promise.race([closed, act, timeout]);
  } finally {
    clearTimeout(timer);
    c.close();
  }
}

function describe(o: Outcome): string {
  if (o.kind === "closed") {
    return `closed (${o.local ? "by us" : "by the server"}${o.transport ? ", transport" : ""}) ` +
      `code 0x${o.code.toString(16)} "${o.reason}"`;
  }
  if (o.kind === "response") return `a ${o.res.status} response and no connection error`;
  return `nothing within ${TIMEOUT_MS} ms`;
}

function expectClose(o: Outcome, code: number): void {
  assert.ok(
    o.kind === "closed" && !o.local && !o.transport && o.code === code,
    `expected a connection close with 0x${code.toString(16)}, got ${describe(o)}`,
  );
}

Deno.test("h3spec: every HTTP/3 and QPACK server case, and the reproducible QUIC one, against a quic listener", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "eg-h3spec-" });
  const pki = await makeTestPki(dir);
  const origin = await startOrigin("o1");
  const gw = await startGateway(quicGatewayConfig(pki, origin.address, {
    name: "h3",
    routes: `
  [[listeners.routes]]
  path_prefix = "/drain"
  pool = "app"
  [[listeners.routes]]
  respond = { status = 200, body = "${RESPOND_BODY.replace("\n", "\\n")}" }`,
  })).catch(async (e) => {
    await origin.stop();
    throw e;
  });
  const port = gw.ports.h3;
  const run = (plan: Plan) => runCase(port, pki.caPem, plan);
  /** A case that must be refused before the request is served (h3spec's refusedNotServed). */
  const refused = async (plan: Plan, code: number) => {
    const before = await origin.requests();
    expectClose(await run(plan), code);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await origin.requests(), before, "the refused request never reached the origin");
  };
  const step = (name: string, fn: () => Promise<void>) => t.step(name, fn);
  /**
   * A malformed request refused on its own stream: answered 400, the connection not closed, and
   * (to the proxied route) the origin never given the request whole.
   */
  const malformedOnItsStream = async (path: string, request: Uint8Array[]) => {
    const before = await origin.completed();
    const o = await run({ request });
    assert.ok(o.kind === "response", `expected a 400 on the stream, got ${describe(o)}`);
    assert.equal(o.res.status, 400);
    if (path === "/drain") {
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(await origin.completed(), before, "the origin never received the request whole");
    }
  };

  try {
    // A well-behaved run first: the baseline every case below differs from in one thing.
    await step("baseline: h3spec's client with nothing changed gets its response", async () => {
      const o = await run({});
      assert.ok(o.kind === "response", describe(o));
      assert.equal(o.res.status, 200);
      assert.equal(new TextDecoder().decode(o.res.body), RESPOND_BODY);
      const p = await run({ request: [headers(requestFields("GET", "/drain"))] });
      assert.ok(p.kind === "response", describe(p));
      assert.equal(p.res.status, 200);
    });

    // --- HTTP/3 servers ---------------------------------------------------------------------

    await step("MUST send H3_FRAME_UNEXPECTED if DATA is received before HEADERS [HTTP/3 4.1]", async () => {
      expectClose(
        await run({ request: [data(new Uint8Array(0)), headers(requestFields("GET", "/"))] }),
        H3.FRAME_UNEXPECTED,
      );
    });

    // h3spec's hand-made field sections (prefix 00 00; d1 :method GET, d7 :scheme https,
    // c1 :path /, 50 09 "127.0.0.1" :authority by static name reference).
    await step("MUST send H3_MESSAGE_ERROR if a pseudo-header is duplicated [HTTP/3 4.1.1]", async () => {
      expectClose(
        await run({ request: [rawHeaders(hex("0000d1d750093132372e302e302e31c1d1"))] }),
        H3.MESSAGE_ERROR,
      );
    });

    await step(
      "MUST send H3_MESSAGE_ERROR if mandatory pseudo-header fields are absent [HTTP/3 4.1.3]",
      async () => {
        await refused({ request: [rawHeaders(hex("0000d1d7c1"))] }, H3.MESSAGE_ERROR);
      },
    );

    await step(
      "MUST send H3_MESSAGE_ERROR if prohibited pseudo-header fields are present[HTTP/3 4.1.3]",
      async () => {
        expectClose(
          await run({ request: [rawHeaders(hex("0000d1d750093132372e302e302e31c1243a666f6f03626172"))] }),
          H3.MESSAGE_ERROR,
        );
      },
    );

    await step(
      "MUST send H3_MESSAGE_ERROR if pseudo-header fields exist after fields [HTTP/3 4.1.3]",
      async () => {
        expectClose(
          await run({ request: [rawHeaders(hex("0000d1d750093132372e302e302e3123666f6f03626172c1"))] }),
          H3.MESSAGE_ERROR,
        );
      },
    );

    // h3spec sends HEADERS with content-length 5 and a FIN: a body cut short, which RFC 9114
    // §4.1.2 makes a stream error. Deno cannot reset a stream with H3_MESSAGE_ERROR, so the
    // gateway refuses it on its stream (400) rather than closing the connection h3spec expects
    // (src/http/h3/server.ts, CutBody): a FIN short of the length is how a peer that cannot reset
    // a stream either (another gateway on Deno whose client left mid-upload) ends an abandoned
    // upload, and a connection close would fail everything multiplexed with it. A body longer
    // than its length is no such accident and still closes the connection with h3spec's code.
    for (const path of ["/drain", "/"]) {
      const where = path === "/" ? " (respond route)" : " (proxied, the body is read)";
      await step(
        `MUST treat content that does not match content-length as malformed [HTTP/3 4.1.2]${where}`,
        async () => {
          await malformedOnItsStream(path, [headers(requestFields("POST", path, [["content-length", "5"]]))]);
          await malformedOnItsStream(path, [
            headers(requestFields("POST", path, [["content-length", "5"]])),
            data(new TextEncoder().encode("hel")),
          ]);
          expectClose(
            await run({
              request: [
                headers(requestFields("POST", path, [["content-length", "2"]])),
                data(new TextEncoder().encode("hello")),
              ],
            }),
            H3.MESSAGE_ERROR,
          );
        },
      );
    }

    const connectionSpecific: HeaderField[] = [
      ["connection", "close"],
      ["keep-alive", "timeout=5"],
      ["proxy-connection", "keep-alive"],
      ["transfer-encoding", "chunked"],
      ["upgrade", "websocket"],
      ["te", "gzip"],
    ];
    for (const field of connectionSpecific) {
      await step(`MUST treat a request with ${field[0]} as malformed [HTTP/3 4.2]`, async () => {
        // To the proxied route, so that "never served" is visible at the origin.
        await refused({ request: [headers(requestFields("GET", "/drain", [field]))] }, H3.MESSAGE_ERROR);
      });
    }

    for (const path of ["/drain", "/"]) {
      const where = path === "/" ? " (respond route)" : " (proxied, the body is read)";
      await step(
        `MUST treat a request whose trailers carry connection as malformed [HTTP/3 4.2]${where}`,
        async () => {
          expectClose(
            await run({
              request: [
                headers(requestFields("POST", path)),
                data(new TextEncoder().encode("hello")),
                headers([["connection", "close"]]),
              ],
            }),
            H3.MESSAGE_ERROR,
          );
        },
      );
    }

    await step("MUST accept TE with trailers [HTTP/3 4.2]", async () => {
      for (const path of ["/", "/drain"]) {
        const o = await run({ request: [headers(requestFields("GET", path, [["te", "trailers"]]))] });
        assert.ok(o.kind === "response", describe(o));
        assert.equal(o.res.status, 200);
      }
    });

    await step(
      "MUST send H3_MISSING_SETTINGS if the first control frame is not SETTINGS [HTTP/3 6.2.1]",
      async () => {
        expectClose(
          await run({ controlFrames: (st) => [encodeFrame(FrameType.MAX_PUSH_ID, bytes(0x01)), st] }),
          H3.MISSING_SETTINGS,
        );
      },
    );

    await step(
      "MUST send H3_FRAME_UNEXPECTED if a DATA frame is received on a control stream [HTTP/3 7.2.1]",
      async () => {
        expectClose(await run({ controlFrames: (st) => [st, empty(FrameType.DATA)] }), H3.FRAME_UNEXPECTED);
      },
    );

    await step(
      "MUST send H3_FRAME_UNEXPECTED if a HEADERS frame is received on a control stream [HTTP/3 7.2.2]",
      async () => {
        expectClose(
          await run({ controlFrames: (st) => [st, empty(FrameType.HEADERS)] }),
          H3.FRAME_UNEXPECTED,
        );
      },
    );

    await step(
      "MUST send H3_FRAME_UNEXPECTED if a second SETTINGS frame is received [HTTP/3 7.2.4]",
      async () => {
        expectClose(
          await run({ controlFrames: (st) => [st, empty(FrameType.SETTINGS)] }),
          H3.FRAME_UNEXPECTED,
        );
      },
    );

    // h3spec leaves "duplicate setting identifiers" (a MAY) commented out; its 0x40 case below
    // covers repeated identifiers.

    await step("MUST send H3_SETTINGS_ERROR if HTTP/2 settings are included [HTTP/3 7.2.4.1]", async () => {
      // [(BLOCKED_STREAMS,100), (0x2,200), (MAX_TABLE_CAPACITY,4096), (MAX_FIELD_SECTION_SIZE,32768)]
      const st = encodeFrame(FrameType.SETTINGS, hex("0740640240c80150000680008000"));
      expectClose(await run({ controlFrames: () => [st] }), H3.SETTINGS_ERROR);
    });

    await step("MUST send H3_FRAME_ERROR if a SETTINGS frame stops mid-parameter [HTTP/3 7.1]", async () => {
      expectClose(
        await run({ controlFrames: () => [encodeFrame(FrameType.SETTINGS, bytes(0x01))] }),
        H3.FRAME_ERROR,
      );
    });

    await step("MUST NOT stop reading settings at a reserved identifier [HTTP/3 7.2.4.1]", async () => {
      expectClose(
        await run({ controlFrames: () => [encodeFrame(FrameType.SETTINGS, bytes(0x21, 0x00, 0x02, 0x00))] }),
        H3.SETTINGS_ERROR,
      );
    });

    await step(
      "treats a repeated setting identifier as an error whatever its value [HTTP/3 7.2.4.1]",
      async () => {
        expectClose(
          await run({
            controlFrames: () => [encodeFrame(FrameType.SETTINGS, bytes(0x40, 0x40, 0x00, 0x40, 0x40, 0x00))],
          }),
          H3.SETTINGS_ERROR,
        );
      },
    );

    await step(
      "MUST send H3_FRAME_UNEXPECTED if CANCEL_PUSH is received in a request stream [HTTP/3 7.2.5]",
      async () => {
        expectClose(
          await run({ request: [empty(FrameType.CANCEL_PUSH), headers(requestFields("GET", "/"))] }),
          H3.FRAME_UNEXPECTED,
        );
      },
    );

    await step(
      "MUST send QPACK_DECOMPRESSION_FAILED if an invalid static table index exits in a field line representation [QPACK 3.1]",
      async () => {
        expectClose(
          await run({ request: [rawHeaders(hex("0000d1d750093132372e302e302e31c1ff24"))] }),
          H3.QPACK_DECOMPRESSION_FAILED,
        );
      },
    );

    await step(
      "MUST send QPACK_DECOMPRESSION_FAILED if a field line references a dynamic table entry that is not there [QPACK 2.1.2]",
      async () => {
        expectClose(
          await run({ request: [rawHeaders(hex("0000d1d750093132372e302e302e31c180"))] }),
          H3.QPACK_DECOMPRESSION_FAILED,
        );
      },
    );

    await step(
      "MUST NOT buffer a frame longer than SETTINGS_MAX_FIELD_SECTION_SIZE [HTTP/3 7.1]",
      async () => {
        // A GOAWAY announcing 2^30 octets (8-octet length) and sending none of them.
        expectClose(
          await run({ onControl: (s) => s.write(hex("07c000000040000000")) }),
          H3.EXCESSIVE_LOAD,
        );
      },
    );

    await step(
      "MUST send QPACK_ENCODER_STREAM_ERROR if a new dynamic table capacity value exceeds the limit [QPACK 4.1.3]",
      async () => {
        // Set Dynamic Table Capacity 10000000000.
        expectClose(
          await run({ onEncoder: (s) => s.write(hex("3fe1c7afa025")) }),
          H3.QPACK_ENCODER_STREAM_ERROR,
        );
      },
    );

    await step("MUST send H3_CLOSED_CRITICAL_STREAM if a control stream is closed [QPACK 4.2]", async () => {
      expectClose(await run({ onControl: (s) => s.finish() }), H3.CLOSED_CRITICAL_STREAM);
    });

    await step(
      "MUST send H3_STREAM_CREATION_ERROR if a second control stream is opened [HTTP/3 6.2.1]",
      async () => {
        expectClose(await run({ onControl: openAnother(bytes(0x00, 0x04, 0x00)) }), H3.STREAM_CREATION_ERROR);
      },
    );

    await step(
      "MUST send H3_STREAM_CREATION_ERROR if a client opens a push stream [HTTP/3 6.2.2]",
      async () => {
        expectClose(await run({ onControl: openAnother(bytes(0x01, 0x00)) }), H3.STREAM_CREATION_ERROR);
      },
    );

    await step(
      "MUST send H3_STREAM_CREATION_ERROR if a second encoder stream is opened [QPACK 4.2]",
      async () => {
        expectClose(await run({ onEncoder: openAnother(bytes(0x02)) }), H3.STREAM_CREATION_ERROR);
      },
    );

    await step(
      "MUST send H3_STREAM_CREATION_ERROR if a second decoder stream is opened [QPACK 4.2]",
      async () => {
        expectClose(await run({ onDecoder: openAnother(bytes(0x03)) }), H3.STREAM_CREATION_ERROR);
      },
    );

    await step("MUST send H3_CLOSED_CRITICAL_STREAM if an encoder stream is closed [QPACK 4.2]", async () => {
      expectClose(await run({ onEncoder: (s) => s.finish() }), H3.CLOSED_CRITICAL_STREAM);
    });

    await step("MUST send H3_CLOSED_CRITICAL_STREAM if a decoder stream is closed [QPACK 4.2]", async () => {
      expectClose(await run({ onDecoder: (s) => s.finish() }), H3.CLOSED_CRITICAL_STREAM);
    });

    await step(
      "MUST send H3_CLOSED_CRITICAL_STREAM if an encoder stream ends inside an instruction [QPACK 4.2]",
      async () => {
        // The first octet of a Set Dynamic Table Capacity that goes on, then FIN.
        expectClose(
          await run({
            onEncoder: async (s) => {
              await s.write(bytes(0x3f));
              await s.finish();
            },
          }),
          H3.CLOSED_CRITICAL_STREAM,
        );
      },
    );

    await step(
      "MUST send QPACK_DECODER_STREAM_ERROR if Insert Count Increment is 0 [QPACK 4.4.3]",
      async () => {
        expectClose(await run({ onDecoder: (s) => s.write(bytes(0x00)) }), H3.QPACK_DECODER_STREAM_ERROR);
      },
    );

    // --- QUIC servers (the one case Deno's client can express) -------------------------------

    await step(
      "MUST send no_application_protocol TLS alert if no application protocols are supported [TLS 8.1]",
      async () => {
        // h3spec accepts crypto error 0x178 (TLS alert 120), or the generic handshake_failure
        // (0x128) or internal_error (0x150). Deno's client gives no code, but its message names
        // the alert the server's CONNECTION_CLOSE carried: "aborted by peer: the cryptographic
        // handshake failed: error 120: peer doesn't support any known protocol".
        let timer: ReturnType<typeof setTimeout> | undefined;
        const err = await Promise.race([
          connectQuic({
            hostname: "127.0.0.1",
            port,
            serverName: "localhost",
            caCerts: [pki.caPem],
            alpn: ["dummy"],
          }).then((r) => {
            r.conn.close(0);
            return null;
          }, (e) => e as Error),
          new Promise<string>((res) => timer = setTimeout(() => res("timeout"), TIMEOUT_MS)),
        ]);
        clearTimeout(timer);
        assert.ok(err instanceof Error, `the handshake was not refused: ${err}`);
        assert.match(err.message, /aborted by peer: .*cryptographic handshake failed: error 120\b/);
      },
    );

    await step("the gateway still serves after every case", async () => {
      const o = await run({});
      assert.ok(o.kind === "response", describe(o));
      assert.equal(o.res.status, 200);
    });
  } finally {
    await gw.stop();
    await origin.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
