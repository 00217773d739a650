/**
 * Mutation fuzzing of the gateway's HTTP/3 upstream client against a hostile HTTP/3 backend on our
 * QUIC engine (quinn inside Deno, as Caddy and gtlsserver are reached), through the HTTP/1.1
 * front: 400 mutated responses (length, trailers, interim, GREASE; one in ten held open), with one
 * connection in three also getting a mutated control or QPACK encoder stream. Every client must
 * get a well-formed answer or a cut, and an end; the backend's errors must be counted, and
 * connection errors must close its connection (the pool opening new ones).
 *
 * Then the rules the fuzz reaches only by chance, one by one, each with the close code RFC 9114 /
 * RFC 9204 name for it, or none for a stream error: response-stream frames, control and encoder
 * streams, GOAWAY ids; a gRPC deadline cancelling a response mid-frame (the gateway's doing, not
 * the backend's); and that the gateway's own streams stay open as long as their connection.
 */

import assert from "node:assert/strict";
import { concat, metricSum, until } from "../helpers/common.ts";
import { rng } from "../unit/h2/helpers.ts";
import { RawH2 } from "../helpers/h2_raw.ts";
import { latin1, mutate } from "../helpers/fuzz.ts";
import {
  backendRounds,
  fuzzTest,
  ROUNDS,
  viaPool,
  wellFormedH1,
  withGateway,
} from "../helpers/fuzz_gateway.ts";
import { FrameType } from "../../src/http/h2/frames.ts";
import type { HeaderField } from "../../src/http/h2/hpack.ts";
import {
  encodeFrame as encodeH3Frame,
  encodeGoaway,
  encodeSettings,
  frameHeader as frameHeaderH3,
  FrameReader as H3FrameReader,
  FrameType as H3FrameType,
  greaseType,
  H3,
  Setting,
  StreamType,
} from "../../src/http/h3/frames.ts";
import { encodeFieldSection, QpackDecoder } from "../../src/http/h3/qpack.ts";
import {
  CLOSE_FLUSH_MS,
  type QuicBidiStream,
  type QuicConnection,
  type QuicRecvStream,
  type QuicSendStream,
} from "../../src/quic/engine.ts";
import { bindTestQuicServer, makeTestPki } from "../helpers/h3_client.ts";
import type { TestServer } from "../helpers/fuzz.ts";
import type { TestPki } from "../../scripts/pki.ts";

/**
 * A hostile HTTP/3 backend (QUIC through src/quic/engine.ts, so the gateway's h3 client talks to
 * quinn like it does to Caddy or gtlsserver): it answers each request stream for `/r/N` with
 * `response(N)` (mutated frames) and a FIN, or no FIN when N is in `hold`; `/clean` gets a valid
 * answer. Each connection `k` opens a control stream with `control(k)` and a QPACK encoder stream
 * with `encoder(k)` (either may be mutated). `servedBy` records which connection served a round,
 * `closedWith` the code each connection the gateway closed was closed with.
 */
async function hostileH3Backend(
  pki: TestPki,
  response: (n: number) => Uint8Array,
  hold: Set<number>,
  control: (k: number) => Uint8Array,
  encoder: (k: number) => Uint8Array,
): Promise<
  TestServer & {
    servedBy: Map<number, number>;
    closedWith: Map<number, number>;
    /** The gateway's streams that ended while their connection stayed up (a critical stream closed). */
    criticalEnded(): number;
    accepted(): number;
    closeAll(): void;
  }
> {
  const server = await bindTestQuicServer(pki, ["h3"], { maxBidiStreams: 100, maxUniStreams: 16 });
  const servedBy = new Map<number, number>();
  const closedWith = new Map<number, number>();
  const conns = new Set<QuicConnection>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let criticalEnded = 0;
  /** Reads the gateway's control stream (and any other it opens), which must stay open with its connection. */
  const drain = async (s: QuicRecvStream, c: QuicConnection) => {
    const buf = new Uint8Array(4096);
    while (await s.readInto(buf)) { /* SETTINGS, then nothing */ }
    await new Promise((r) => setTimeout(r, 50)); // ended with its connection, or on its own?
    if (!c.isClosed) criticalEnded++;
  };
  const answer = async (s: QuicBidiStream, k: number) => {
    const r = new H3FrameReader(s.recv, 1024);
    const h = await r.frameHeader();
    if (!h || h.type !== H3FrameType.HEADERS || h.length > 64 * 1024) return;
    const decoded = new QpackDecoder({
      maxTableCapacity: 0,
      maxBlockedStreams: 0,
      maxFieldSectionSize: 65536,
    })
      .decode(await r.payload(h.length), Number(s.recv.id));
    const path = "fields" in decoded ? decoded.fields?.find(([name]) => name === ":path")?.[1] ?? "" : "";
    const m = /^\/r\/(\d+)$/.exec(path);
    if (m) servedBy.set(Number(m[1]), k);
    await s.send.write(m ? response(Number(m[1])) : cleanH3());
    if (m && hold.has(Number(m[1]))) {
      await new Promise<void>((done) => {
        const t = setTimeout(() => (timers.delete(t), done()), 3000);
        timers.add(t);
      });
    }
    await s.send.finish();
  };
  const serveConn = async (c: QuicConnection, k: number) => {
    conns.add(c);
    c.closed.then((i) => {
      if (!i.local && !i.transport) closedWith.set(k, i.code);
    });
    try {
      if (!(await c.handshake)) return;
      // Held until the connection ends: a stream object Deno collects is closed with it.
      const critical: QuicSendStream[] = [];
      for (const bytes of [control(k), encoder(k)]) {
        const u = await c.openUni();
        critical.push(u);
        u.write(bytes).catch(() => {});
      }
      c.closed.then(() => critical.length = 0);
      (async () => {
        for (let u = await c.acceptUni(); u; u = await c.acceptUni()) drain(u, c).catch(() => {});
      })();
      for (let s = await c.acceptBidi(); s; s = await c.acceptBidi()) answer(s, k).catch(() => {});
    } catch {
      /* the gateway closed it */
    } finally {
      conns.delete(c);
    }
  };
  let k = 0;
  const serving = server.serve((c) => void serveConn(c, k++), () => {});
  return {
    address: `127.0.0.1:${server.port}`,
    servedBy,
    closedWith,
    accepted: () => k,
    criticalEnded: () => criticalEnded,
    closeAll() {
      for (const c of conns) c.close(H3.NO_ERROR, "");
    },
    async stop() {
      for (const t of timers) clearTimeout(t);
      for (const c of conns) c.close(H3.NO_ERROR, "");
      await new Promise((r) => setTimeout(r, CLOSE_FLUSH_MS));
      server.close();
      await serving;
    },
  };
}

const h3Headers = (fields: HeaderField[]) => encodeH3Frame(H3FrameType.HEADERS, encodeFieldSection(fields));
const h3Data = (s: string) => encodeH3Frame(H3FrameType.DATA, latin1(s));

function cleanH3(): Uint8Array {
  return concat([h3Headers([[":status", "200"], ["content-length", "6"]]), h3Data("clean\n")]);
}

/** The unmutated HTTP/3 responses: every framing the client reads (length, trailers, interim, GREASE). */
function h3ResponseSeeds(): Uint8Array[] {
  return [
    concat([h3Headers([[":status", "200"], ["content-length", "11"]]), h3Data("hello "), h3Data("world")]),
    concat([
      h3Headers([[":status", "200"], ["trailer", "x-sum"]]),
      h3Data("abc"),
      h3Headers([["x-sum", "abc"]]),
    ]),
    h3Headers([[":status", "204"]]),
    concat([
      h3Headers([[":status", "103"], ["link", "</a>; rel=preload"]]),
      h3Headers([[":status", "302"], ["location", "/x"], ["set-cookie", "a=1"], ["set-cookie", "b=2"]]),
    ]),
    concat([
      h3Headers([[":status", "200"], ["content-type", "text/plain"]]),
      encodeH3Frame(greaseType(3), new Uint8Array(5)),
      h3Data("grease"),
      encodeH3Frame(H3FrameType.DATA, new Uint8Array(0)),
    ]),
  ];
}

/** The round numbers of FIXED_H3's cases (after the fuzzed rounds and the seeds), then of the control-stream cases. */
const FIXED = 2_000_000;
const FIXED_CONTROL = 3_000_000;
const FIXED_CANCEL = 4_000_000;

/**
 * Fixed hostile HTTP/3 responses: what the client gets through the HTTP/1.1 front, and the code the
 * gateway closes the backend connection with (undefined: it stays open, the stream alone failed).
 */
const FIXED_H3: { what: string; response: Uint8Array; status: string; closes?: number; event?: string }[] = [
  {
    what: "DATA before HEADERS",
    response: concat([h3Data("x"), h3Headers([[":status", "200"]])]),
    status: "502",
    closes: H3.FRAME_UNEXPECTED,
  },
  {
    what: "an HTTP/2 frame type (PING, 0x06) on a response stream",
    response: concat([encodeH3Frame(0x06, new Uint8Array(8)), h3Headers([[":status", "200"]])]),
    status: "502",
    closes: H3.FRAME_UNEXPECTED,
  },
  {
    what: "SETTINGS on a response stream",
    response: concat([h3Headers([[":status", "200"]]), encodeSettings([]), h3Data("x")]),
    status: "200",
    closes: H3.FRAME_UNEXPECTED,
  },
  {
    what: "PUSH_PROMISE though the gateway never sent MAX_PUSH_ID",
    response: concat([encodeH3Frame(0x05, Uint8Array.of(0, 0, 0)), h3Headers([[":status", "200"]])]),
    status: "502",
    closes: H3.ID_ERROR,
  },
  {
    what: "DATA after the trailers",
    response: concat([
      h3Headers([[":status", "200"]]),
      h3Data("ab"),
      h3Headers([["x-sum", "1"]]),
      h3Data("c"),
    ]),
    status: "200",
    closes: H3.FRAME_UNEXPECTED,
  },
  {
    what: "a field section that references the dynamic table (whose capacity the gateway set to 0)",
    response: concat([encodeH3Frame(H3FrameType.HEADERS, Uint8Array.of(0x02, 0x00, 0x80)), h3Data("x")]),
    status: "502",
    closes: H3.QPACK_DECOMPRESSION_FAILED,
  },
  {
    what: "a frame cut short by the FIN",
    response: concat([
      h3Headers([[":status", "200"], ["content-length", "5"]]),
      h3Data("hello").subarray(0, 4),
    ]),
    status: "200",
    closes: H3.FRAME_ERROR,
  },
  {
    what: "a malformed head (an upper-case field name)",
    response: concat([h3Headers([[":status", "200"], ["X-Upper", "1"]]), h3Data("x")]),
    status: "502",
    event: "h3_malformed",
  },
  {
    what: "a body shorter than its content-length",
    response: concat([h3Headers([[":status", "200"], ["content-length", "9"]]), h3Data("short")]),
    status: "200",
    event: "h3_malformed",
  },
  {
    what: "a trailer section announced at 1 GiB (refused without waiting for it)",
    response: concat([
      h3Headers([[":status", "200"]]),
      h3Data("ab"),
      frameHeaderH3(H3FrameType.HEADERS, 2 ** 30),
    ]),
    status: "200",
    event: "h3_head_too_large",
  },
];

/** Octets HTTP/3 framing branches on: varint length prefixes, frame types, QPACK representation bits. */
const H3_SPECIAL = [0x00, 0x01, 0x03, 0x04, 0x07, 0x0d, 0x21, 0x3f, 0x40, 0x50, 0x80, 0xc0, 0xd9, 0xff];

fuzzTest(
  "h3 backend fuzz: 400 mutated HTTP/3 backend responses (and mutated control and encoder streams) each give the client a well-formed answer or a cut, never a hang",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "eg-h3back-" });
    try {
      const pki = await makeTestPki(dir);
      const seeds = h3ResponseSeeds();
      const rand = rng(6114);
      const responses = Array.from(
        { length: ROUNDS },
        (_, n) => mutate(seeds[n % seeds.length], rand, 0, H3_SPECIAL),
      );
      const hold = new Set(Array.from({ length: ROUNDS }, (_, i) => i).filter((i) => i % 10 === 7));
      hold.add(FIXED_CANCEL);
      const controlSeeds = [
        concat([
          Uint8Array.of(StreamType.CONTROL),
          encodeSettings([[Setting.MAX_FIELD_SECTION_SIZE, 65536]]),
        ]),
        concat([
          Uint8Array.of(StreamType.CONTROL),
          encodeSettings([[Setting.QPACK_MAX_TABLE_CAPACITY, 0], [greaseType(1), 7]]),
          encodeH3Frame(greaseType(2), Uint8Array.of(1, 2, 3)),
          encodeGoaway(4 * 1000),
        ]),
      ];
      // One connection in three gets a mutated control or encoder stream (never its type octet);
      // `fixedStreams` replaces both for the fixed cases at the end.
      let fixedStreams: { control: Uint8Array; encoder?: Uint8Array } | undefined;
      const control = (k: number) => {
        if (fixedStreams) return fixedStreams.control;
        const s = controlSeeds[k % 2];
        return k % 3 === 1 ? mutate(s, rng(7000 + k), 1, H3_SPECIAL) : s;
      };
      const encoderSeed = Uint8Array.of(StreamType.QPACK_ENCODER, 0x20); // Set Dynamic Table Capacity 0
      const encoder = (k: number) =>
        fixedStreams
          ? fixedStreams.encoder ?? encoderSeed
          : k % 3 === 2
          ? mutate(encoderSeed, rng(8000 + k), 1, H3_SPECIAL)
          : encoderSeed;
      const backend = await hostileH3Backend(
        pki,
        (n) =>
          responses[n] ??
            (n === FIXED_CANCEL
              ? concat([
                h3Headers([[":status", "200"], ["content-type", "application/grpc"]]),
                frameHeaderH3(H3FrameType.DATA, 100_000),
                new Uint8Array(10),
              ])
              : n >= FIXED_CONTROL
              ? cleanH3()
              : n >= FIXED
              ? FIXED_H3[n - FIXED].response
              : seeds[n - 1_000_000]),
        hold,
        control,
        encoder,
      );
      await withGateway(backend, "h3", async (gw) => {
        // The seeds are relayed as they are.
        for (const [k, want] of ["200", "200", "204", "302", "200"].entries()) {
          assert.match(
            await viaPool(gw, `/r/${1_000_000 + k}`),
            new RegExp(`^HTTP/1\\.1 ${want} `),
            `seed ${k}`,
          );
        }
        const statuses = await backendRounds(
          gw,
          (n) =>
            `${hold.has(n) ? "(held open) " : ""}backend sent ${
              JSON.stringify(String.fromCharCode(...responses[n]))
            }` +
            ` on connection ${backend.servedBy.get(n)} (control ${
              JSON.stringify(String.fromCharCode(...control(backend.servedBy.get(n) ?? 0)))
            })`,
        );
        // Both sides of the backend grammar are reached: relayed answers and the gateway's 502s.
        for (const s of ["200", "502"]) {
          assert.ok((statuses.get(s) ?? 0) > 5, `${s}: ${JSON.stringify([...statuses])}`);
        }
        // Connection errors closed connections (with the code RFC 9114 names, counted per backend)
        // and the pool opened new ones, mutated control and encoder streams among them.
        const connections = new Set(backend.servedBy.values());
        assert.ok(
          [1, 2].every((r) => [...connections].some((k) => k % 3 === r)),
          `connections ${[...connections]}`,
        );
        const metrics = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text();
        const refused = new Map(
          [...metrics.matchAll(
            /^expressgateway_upstream_protocol_events_total\{.*event="(h3_\w+)"\} (\d+)$/gm,
          )]
            .map(([, e, n]) => [e, Number(n)]),
        );
        const closedWith = [...refused].filter(([e]) => !["h3_malformed", "h3_head_too_large"].includes(e));
        assert.ok(
          (refused.get("h3_malformed") ?? 0) > 0 && closedWith.length >= 3 &&
            closedWith.reduce((sum, [, n]) => sum + n, 0) >= 10,
          JSON.stringify([...refused]),
        );
        // From here on every connection gets `streams` (the gateway's current ones are closed first).
        const freshConnections = async (streams: typeof fixedStreams) => {
          fixedStreams = streams;
          backend.closeAll();
          await until(
            "the gateway's h3 connections closed",
            async () =>
              await metricSum(gw.adminPort, /^expressgateway_upstream_connections\{.*state="open"/) === 0,
          );
        };
        // The rules the fuzz reaches by chance, one by one: which are connection errors (and with
        // which code, RFC 9114 §7.2 and §8), and which fail only their request.
        await freshConnections({ control: controlSeeds[0] });
        const counted = (e: string) =>
          metricSum(
            gw.adminPort,
            new RegExp(`^expressgateway_upstream_protocol_events_total\\{.*event="${e}"`),
          );
        for (const [j, c] of FIXED_H3.entries()) {
          const before = c.event ? await counted(c.event) : 0;
          const answer = await viaPool(gw, `/r/${FIXED + j}`);
          assert.match(answer, new RegExp(`^HTTP/1\\.1 ${c.status} `), c.what);
          const k = backend.servedBy.get(FIXED + j)!;
          if (c.closes !== undefined) {
            await until(
              `${c.what}: connection ${k} closed`,
              () => Promise.resolve(backend.closedWith.has(k)),
              3000,
            );
          }
          assert.equal(backend.closedWith.get(k), c.closes, `${c.what}: connection close code`);
          if (c.event) assert.equal(await counted(c.event), before + 1, `${c.what}: ${c.event} counted`);
        }
        // The gateway cancelling a response itself (a gRPC deadline, while it waits inside a DATA
        // frame) is no fault of the backend's: nothing counted, the connection stays up.
        {
          const frameErrors = await counted("h3_frame_error"), malformed = await counted("h3_malformed");
          const c = await RawH2.connect(gw.ports.web);
          try {
            await c.send(c.headers(1, [
              [":method", "POST"],
              [":scheme", "http"],
              [":path", `/r/${FIXED_CANCEL}`],
              [":authority", "origin"],
              ["content-type", "application/grpc"],
              ["te", "trailers"],
            ]));
            const end = await c.waitFor(FrameType.HEADERS, 1, 3000); // the head, then the trailers
            assert.ok(end !== undefined && end !== "closed", "response head");
            const trailers = await c.waitFor(FrameType.HEADERS, 1, 3000);
            assert.ok(trailers !== undefined && trailers !== "closed", "deadline trailers");
            const fields = c.decoder.decode(trailers.payload);
            assert.deepEqual(fields.find(([n]) => n === "grpc-status"), ["grpc-status", "4"]);
          } finally {
            c.close();
          }
          await new Promise((r) => setTimeout(r, 300));
          const k = backend.servedBy.get(FIXED_CANCEL)!;
          assert.equal(backend.closedWith.get(k), undefined, "the backend connection stays up");
          assert.equal(await counted("h3_frame_error"), frameErrors);
          assert.equal(await counted("h3_malformed"), malformed);
        }
        // And the backend's control and encoder streams: each case on a connection of its own.
        const settings = encodeSettings([[Setting.MAX_FIELD_SECTION_SIZE, 65536]]);
        const ctl = (...frames: Uint8Array[]) => concat([Uint8Array.of(StreamType.CONTROL), ...frames]);
        const cases: { what: string; control: Uint8Array; encoder?: Uint8Array; closes: number }[] = [
          {
            what: "MAX_PUSH_ID from a server",
            control: ctl(settings, encodeH3Frame(0x0d, Uint8Array.of(0))),
            closes: H3.FRAME_UNEXPECTED,
          },
          {
            what: "CANCEL_PUSH though no push was allowed",
            control: ctl(settings, encodeH3Frame(0x03, Uint8Array.of(0))),
            closes: H3.ID_ERROR,
          },
          {
            what: "DATA on the control stream",
            control: ctl(settings, h3Data("x")),
            closes: H3.FRAME_UNEXPECTED,
          },
          {
            what: "a first frame other than SETTINGS",
            control: ctl(encodeGoaway(0)),
            closes: H3.MISSING_SETTINGS,
          },
          { what: "a second SETTINGS", control: ctl(settings, settings), closes: H3.FRAME_UNEXPECTED },
          {
            what: "an HTTP/2 setting (ENABLE_PUSH)",
            control: ctl(encodeSettings([[0x02, 0]])),
            closes: H3.SETTINGS_ERROR,
          },
          {
            what: "an insert on the encoder stream (table capacity 0)",
            control: ctl(settings),
            encoder: Uint8Array.of(StreamType.QPACK_ENCODER, 0xc0 | 1, 0x01, 0x61),
            closes: H3.QPACK_ENCODER_STREAM_ERROR,
          },
          {
            what: "a GOAWAY naming a stream a client could not open",
            control: ctl(settings, encodeGoaway(1)),
            closes: H3.ID_ERROR,
          },
          {
            what: "a GOAWAY raising the id of the one before",
            control: ctl(settings, encodeGoaway(8), encodeGoaway(12)),
            closes: H3.ID_ERROR,
          },
          {
            what: "a second control stream",
            control: ctl(settings),
            encoder: ctl(settings),
            closes: H3.STREAM_CREATION_ERROR,
          },
        ];
        for (const [j, c] of cases.entries()) {
          await freshConnections(c);
          const answer = await viaPool(gw, `/r/${FIXED_CONTROL + j}`);
          assert.ok(wellFormedH1(answer.length ? latin1(answer) : new Uint8Array(0)), `${c.what}: ${answer}`);
          // The request may fail with its connection: which connection it opened, the backend knows.
          const k = backend.accepted() - 1;
          await until(
            `${c.what}: connection ${k} closed`,
            () => Promise.resolve(backend.closedWith.has(k)),
            3000,
          );
          assert.equal(backend.closedWith.get(k), c.closes, `${c.what}: connection close code`);
        }
        await freshConnections({ control: controlSeeds[0] });
        // The backend closed the gateway's connections a dozen times (gracefully, H3_NO_ERROR): that is
        // not a protocol error, though its critical streams ended with them.
        assert.equal(await counted("h3_closed_critical_stream"), 0);
        // Nor did the gateway close one of its own (its control stream lives as long as its connection).
        assert.equal(backend.criticalEnded(), 0, "gateway streams that ended before their connection");
        assert.match(await viaPool(gw, "/clean"), /^HTTP\/1\.1 200 [^]*\r\n\r\nclean\n$/);
      }, `tls = { ca = "${pki.ca}", server_name = "localhost" }`);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
