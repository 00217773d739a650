/**
 * Mutation fuzzing of the live gateway over real sockets, from both sides.
 *
 * Clients: valid request streams (pipelined requests, bodies, chunked trailers; h2c sessions with
 * bodies, trailers, CONTINUATION, PRIORITY, PING, RST_STREAM, GOAWAY) get 1–3 random byte edits
 * each and are sent on their own connection, half-closed once the gateway goes quiet. Every
 * connection must be ended by the gateway, and what it wrote must be well-formed: HTTP/1.1
 * status lines, or HTTP/2 frames whose header blocks decode.
 *
 * Backends: a hostile HTTP/1.1 backend and a hostile h2c backend answer each request with a
 * mutated response (some held open), and the h2c backend also with sessions of random frames from
 * the whole grammar (what the gateway sends it must parse). The HTTP/3 backend side is in
 * h3_backend_fuzz.test.ts. The client must always get a well-formed answer (the relayed head,
 * perhaps cut short, or the gateway's own 502/504) and its connection must end.
 *
 * After each run the process is still serving and has logged no unhandled rejection. Seeds are
 * fixed and checked unmutated first, so a failure names a reproducible round.
 */

import assert from "node:assert/strict";
import type { GatewayProcess } from "../helpers/gateway.ts";
import { startOrigin } from "../helpers/origin.ts";
import { concat, metricSum } from "../helpers/common.ts";
import { rng } from "../unit/h2/helpers.ts";
import { RawH2 } from "../helpers/h2_raw.ts";
import {
  hostileBackend,
  inBatches,
  latin1,
  mutate,
  mutatedResponses,
  serveConnections,
  tally,
  type TestServer,
  writeAll,
} from "../helpers/fuzz.ts";
import {
  CONNECTION_PREFACE,
  encodeFrame,
  FrameReader,
  FrameType,
  settingsFrame,
  SettingsId,
} from "../../src/http/h2/frames.ts";
import { type HeaderField, HpackDecoder, HpackEncoder } from "../../src/http/h2/hpack.ts";
import {
  backendRounds,
  CONCURRENCY,
  END_WITHIN_MS,
  exchange,
  fuzzTest,
  ROUNDS,
  viaPool,
  wellFormedH1,
  withGateway,
} from "../helpers/fuzz_gateway.ts";

/** Response heads (a decoded `:status`) seen by wellFormedH2, for the test to count. */
let h2Responses = 0;

/**
 * The gateway's side of an h2c session: frames that parse, starting with SETTINGS, and header
 * blocks that decode. A stream the gateway took for HTTP/1.1 (a mangled preface) is checked as such.
 */
function wellFormedH2(out: Uint8Array): string | undefined {
  if (out.length === 0) return undefined;
  if (out[0] === 0x48) return wellFormedH1(out) ? undefined : "neither HTTP/1.1 nor HTTP/2";
  const r = new FrameReader(16_777_215);
  const dec = new HpackDecoder();
  r.push(out);
  let first = true;
  let block: Uint8Array[] = [];
  try {
    for (let f = r.next(); f; f = r.next()) {
      if (first && f.header.type !== FrameType.SETTINGS) return `first frame is type ${f.header.type}`;
      first = false;
      const t = f.header.type;
      if (t === FrameType.HEADERS || t === FrameType.CONTINUATION) {
        block.push(t === FrameType.HEADERS && f.header.flags & 0x20 ? f.payload.subarray(5) : f.payload);
        if (f.header.flags & 0x4) {
          if (dec.decode(concat(block)).some(([n]) => n === ":status")) h2Responses++;
          block = [];
        }
      }
    }
  } catch (e) {
    return `the gateway's own output does not parse: ${e}`;
  }
  // A partial frame at the end is allowed only if the gateway was cut off; it closes cleanly.
  return r.buffered === 0 ? undefined : `${r.buffered} trailing bytes`;
}

function h1Seeds(): Uint8Array[] {
  return [
    "GET /headers HTTP/1.1\r\nHost: origin\r\nUser-Agent: fuzz\r\n\r\n" +
    "GET /status/204 HTTP/1.1\r\nHost: origin\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: origin\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
    "POST /sha256 HTTP/1.1\r\nHost: origin\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n" +
    "5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: abc\r\n\r\nGET /trailers HTTP/1.1\r\nHost: origin\r\nTE: trailers\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\nHEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: origin\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    "GET http://origin/headers?q=1 HTTP/1.1\r\nHost: other\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
  ].map(latin1);
}

/** The frames of one h2c session after the preface and SETTINGS; `req` encodes with its own HPACK state. */
type Session = (req: (fields: HeaderField[]) => Uint8Array) => Uint8Array[];

function h2Seeds(): Uint8Array[] {
  const start = concat([CONNECTION_PREFACE, settingsFrame([[SettingsId.INITIAL_WINDOW_SIZE, 1000]])]);
  const head = (method: string, path: string, extra: HeaderField[] = []): HeaderField[] => [
    [":method", method],
    [":scheme", "http"],
    [":path", path],
    [":authority", "origin"],
    ...extra,
  ];
  const data = (id: number, s: string, end = false) =>
    encodeFrame(FrameType.DATA, end ? 1 : 0, id, latin1(s));
  const sessions: Session[] = [
    (req) => [
      encodeFrame(FrameType.HEADERS, 0x5, 1, req(head("GET", "/headers", [["user-agent", "fuzz"]]))),
      encodeFrame(FrameType.PING, 0, 0, new Uint8Array(8)),
      encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, Uint8Array.of(0, 0, 0x10, 0)),
      encodeFrame(FrameType.HEADERS, 0x5, 3, req(head("GET", "/trailers", [["te", "trailers"]]))),
    ],
    (req) => [
      encodeFrame(FrameType.HEADERS, 0x4, 1, req(head("POST", "/echo", [["content-type", "text/plain"]]))),
      data(1, "hello "),
      data(1, "world", true),
      encodeFrame(FrameType.SETTINGS, 1, 0),
    ],
    (req) => {
      // Encoded in the order sent: the blocks share the session's dynamic table.
      const post = encodeFrame(FrameType.HEADERS, 0x4, 1, req(head("POST", "/sha256", [["te", "trailers"]])));
      const trailers = encodeFrame(FrameType.HEADERS, 0x5, 1, req([["x-sum", "abc"]]));
      const get = req(head("GET", "/status/200"));
      return [
        post,
        data(1, "abc"),
        trailers,
        encodeFrame(FrameType.PRIORITY, 0, 3, Uint8Array.of(0, 0, 0, 1, 16)),
        encodeFrame(FrameType.HEADERS, 0x1, 3, get.subarray(0, 4)), // a block split over CONTINUATION
        encodeFrame(FrameType.CONTINUATION, 0x4, 3, get.subarray(4)),
        encodeFrame(FrameType.HEADERS, 0x5, 5, req(head("GET", "/headers"))),
        encodeFrame(FrameType.RST_STREAM, 0, 5, Uint8Array.of(0, 0, 0, 8)),
        encodeFrame(FrameType.GOAWAY, 0, 0, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0)),
      ];
    },
  ];
  return sessions.map((frames) => {
    const enc = new HpackEncoder({ huffman: true });
    return concat([start, ...frames((fields) => enc.encode(fields))]);
  });
}

/** Mutates seeds round by round, sends each on its own connection, and checks what came back. */
async function fuzz(
  gw: GatewayProcess,
  seeds: Uint8Array[],
  seed: number,
  from: number,
  check: (out: Uint8Array) => string | undefined,
): Promise<Map<string, number>> {
  const rand = rng(seed);
  // One in ten edits may hit the h2c preface (the stream is then HTTP/1.1 or refused).
  const inputs = Array.from(
    { length: ROUNDS },
    (_, n) => mutate(seeds[n % seeds.length], rand, rand() < 0.1 ? 0 : from),
  );
  const answered = new Map<string, number>();
  await inBatches(ROUNDS, CONCURRENCY, (n) => exchange(gw.ports.web, inputs[n]), (n, { out, ended }) => {
    const label = `round ${n}: ${JSON.stringify(String.fromCharCode(...inputs[n]))}`;
    assert.ok(ended, `${label}: the gateway left the connection open`);
    const bad = check(out);
    assert.equal(bad, undefined, `${label}: ${bad}`);
    tally(
      answered,
      out.length === 0
        ? "closed silently"
        : out[0] === 0x48
        ? String.fromCharCode(...out.subarray(9, 12))
        : "h2 frames",
    );
  });
  return answered;
}

/** The gateway answers itself and through the pool after a run. */
async function stillServing(gw: GatewayProcess): Promise<void> {
  // A client of its own, closed after: fetch's shared pool would keep the connection open, and
  // the books (assertSettled) count open client connections.
  const client = Deno.createHttpClient({});
  try {
    const own = await fetch(gw.url("web", "/"), { client });
    assert.equal(await own.text(), "gateway ok\n");
  } finally {
    client.close();
  }
  assert.match(await viaPool(gw, "/status/200"), /^HTTP\/1\.1 200 [^]*\r\nx-origin: origin\r\n/i);
}

fuzzTest(
  "wire fuzz: 400 mutated HTTP/1.1 streams are each answered well-formed or closed, and the gateway serves on",
  async () => {
    await withGateway(await startOrigin(), "h1", async (gw) => {
      // The seeds themselves are valid: every request in them is answered with a success.
      for (const [i, seed] of h1Seeds().entries()) {
        const { out, ended } = await exchange(gw.ports.web, seed);
        const statuses = [...String.fromCharCode(...out).matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
        assert.ok(ended, `seed ${i}`);
        assert.deepEqual(
          statuses,
          [["200", "204"], ["200"], ["200", "200"], ["200", "200"], ["100", "200"], ["200"]][i],
        );
      }
      const answered = await fuzz(
        gw,
        h1Seeds(),
        1112,
        0,
        (out) => wellFormedH1(out) ? undefined : "no status line",
      );
      // The mutations reach both outcomes: refusals (400 and its kin) and answers from the origin.
      assert.ok((answered.get("400") ?? 0) > 20, JSON.stringify([...answered]));
      assert.ok((answered.get("200") ?? 0) > 20, JSON.stringify([...answered]));
      await stillServing(gw);
    });
  },
);

fuzzTest(
  "wire fuzz: 400 mutated h2c sessions are each ended with well-formed frames, and the gateway serves on",
  async () => {
    await withGateway(await startOrigin(), "h1", async (gw) => {
      // The seeds themselves are valid sessions: each is answered, once per stream not reset.
      for (const [i, seed] of h2Seeds().entries()) {
        const before = h2Responses;
        const { out, ended } = await exchange(gw.ports.web, seed);
        assert.ok(ended && wellFormedH2(out) === undefined, `seed ${i}`);
        assert.equal(h2Responses - before, [2, 1, 2][i], `response heads for seed ${i}`);
      }
      h2Responses = 0;
      const answered = await fuzz(gw, h2Seeds(), 2113, CONNECTION_PREFACE.length, wellFormedH2);
      assert.ok((answered.get("h2 frames") ?? 0) > 300, JSON.stringify([...answered]));
      // Not only refusals: mangled sessions still carry streams the origin answered.
      assert.ok(h2Responses > 40, `${h2Responses} response heads`);
      await stillServing(gw);
    });
  },
);

/** Which end a drawn session (frameSession) comes from. */
interface GrammarSide {
  /** Frames before the drawn ones. */
  start: Uint8Array[];
  /** HPACK encoder options for the drawn header blocks. */
  hpack?: { maxTableSize: number };
  /** The stream id for a frame of `type`; a `tame` session's ids are plausible for its type. */
  stream(type: number, tame: boolean): number;
  /** A header block's fields. */
  fields(): HeaderField[];
}
type GrammarSideOf = (rand: () => number, pick: <T>(xs: T[]) => T) => GrammarSide;

/** A client: the preface and SETTINGS, then requests on new (odd, rising) or recent streams. */
const clientSide: GrammarSideOf = (rand, pick) => {
  let next = 1;
  return {
    start: [CONNECTION_PREFACE, settingsFrame([[SettingsId.INITIAL_WINDOW_SIZE, 1000]])],
    stream(type, tame) {
      const stream = type === 4 || type === 6 || type === 7
        ? (tame ? 0 : pick([0, 0, 1]))
        : tame
        ? (type === 1 ? next : Math.max(1, next - 2))
        : pick([next, next, Math.max(1, next - 2), 0, 2, next + 100, 0x7fffffff]);
      if (stream === next) next += 2;
      return stream;
    },
    fields: () => [
      [":method", pick(["GET", "POST", "HEAD", "CONNECT"])],
      [":scheme", "http"],
      [":path", pick(["/headers", "/echo", "/", "*", ""])],
      [":authority", pick(["origin", "localhost", ""])],
      ...(rand() < 0.3 ? [["te", pick(["trailers", "gzip"])] as HeaderField] : []),
    ],
  };
};

/**
 * A backend answering the request on stream `id` (its SETTINGS already sent): responses, interim
 * and final, bodies, trailers and resets on that stream, connection frames on stream 0, and frames
 * on streams the gateway never opened (even ones, as a PUSH_PROMISE would, or far ahead). Half the
 * sessions start with a valid response head, so what follows meets an open response. No dynamic
 * table: the gateway may carry the next round on the same connection, and a session's inserts
 * would desync it.
 */
const backendSide = (id: number): GrammarSideOf => (rand, pick) => ({
  start: rand() < 0.5 ? [encodeFrame(FrameType.HEADERS, 0x4, id, ownBlock([[":status", "200"]]))] : [],
  hpack: { maxTableSize: 0 },
  stream: (type, tame) =>
    type === 4 || type === 6 || type === 7
      ? (tame ? 0 : pick([0, 0, id]))
      : tame
      ? id
      : pick([id, id, id, 0, id + 2, 2, 0x7fffffff]),
  fields: () => [
    [":status", pick(["200", "200", "204", "304", "404", "103", "100", "abc", ""])],
    ...(rand() < 0.3 ? [["content-length", pick(["0", "5", "x", "99999"])] as HeaderField] : []),
    ...(rand() < 0.2 ? [pick<HeaderField>([["x-a", "b"], ["connection", "close"], ["Upper", "x"]])] : []),
  ],
});

/**
 * A session of 3–30 frames drawn from the whole grammar rather than mutated bytes: every frame
 * type (and an unknown one), random flags, stream ids that are valid, reused, even, zero or far
 * ahead, payloads of the right size for their type or not, and header blocks from a real HPACK
 * encoder (valid requests) or random octets. It reaches the stream state machine where byte
 * edits mostly stop at the first frame.
 */
function frameSession(rand: () => number, makeSide: GrammarSideOf = clientSide): Uint8Array {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
  const huffman = rand() < 0.5;
  const side = makeSide(rand, pick);
  const enc = new HpackEncoder({ huffman, ...side.hpack });
  const frames: Uint8Array[] = [...side.start];
  const count = 3 + Math.floor(rand() * 28);
  // Two sessions in five stay close to valid (existing or next streams, meaningful flags, right
  // sizes), so they live long enough to reach stream states; the rest draw from everything.
  const tame = rand() < 0.4;
  for (let i = 0; i < count; i++) {
    const type = tame
      ? pick([0, 1, 1, 2, 3, 4, 6, 8, 0x21])
      : pick([0, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 0x21]);
    const stream = side.stream(type, tame);
    const flags = tame
      ? (type === 1 ? pick([0x4, 0x5]) : type === 0 ? pick([0, 0x1]) : 0)
      : rand() < 0.5
      ? pick([0, 0x1, 0x4, 0x5, 0x8, 0x20, 0x25])
      : Math.floor(rand() * 256);
    let payload: Uint8Array;
    if (type === 1 || (type === 9 && rand() < 0.5)) {
      payload = tame || rand() < 0.8 ? enc.encode(side.fields()) : bytes(Math.floor(rand() * 40));
      // A padded or prioritised HEADERS needs its prefix octets.
      if (type === 1 && flags & 0x28) payload = concat([Uint8Array.of(0, 0, 0, 0, 0), payload]);
    } else {
      const size: Record<number, number> = { 2: 5, 3: 4, 4: 6, 6: 8, 7: 8, 8: 4 };
      const n = size[type] !== undefined && (tame || rand() < 0.7)
        ? size[type] * (type === 4 ? Math.floor(rand() * 3) : 1)
        : Math.floor(rand() * 64);
      payload = bytes(n);
      if (type === 4 && tame) {
        payload = concat(
          pick([[], [[4, 65535]], [[3, 100], [1, 4096]]]).map(([id, v]) =>
            settingsFrame([[id, v]]).subarray(9)
          ),
        );
      } else if (type === 4 && rand() < 0.7) {
        // Settings with known ids and plausible values, so more than the length rule is tested.
        const v = new DataView(payload.buffer);
        for (let o = 0; o + 6 <= n; o += 6) {
          v.setUint16(o, 1 + Math.floor(rand() * 8));
          v.setUint32(o + 2, pick([0, 1, 100, 65535, 16384, 0x7fffffff, 0xffffffff]));
        }
      }
    }
    frames.push(encodeFrame(type, flags, stream, payload));
  }
  return concat(frames);
}

fuzzTest(
  "wire fuzz: 400 h2c sessions of random frames from the whole grammar are each ended with well-formed frames",
  async () => {
    await withGateway(await startOrigin(), "h1", async (gw) => {
      const rand = rng(7540);
      const sessions = Array.from({ length: ROUNDS }, () => frameSession(rand));
      const ends = new Map<string, number>();
      await inBatches(
        ROUNDS,
        CONCURRENCY,
        (n) => exchange(gw.ports.web, sessions[n]),
        (n, { out, ended }) => {
          const label = `round ${n}: ${JSON.stringify(String.fromCharCode(...sessions[n]))}`;
          assert.ok(ended, `${label}: the gateway left the connection open`);
          const bad = wellFormedH2(out);
          assert.equal(bad, undefined, `${label}: ${bad}`);
          // How the gateway ended it: the last GOAWAY's error code, if it sent one.
          const r = new FrameReader(16_777_215);
          r.push(out);
          let goaway = "none";
          for (let f = r.next(); f; f = r.next()) {
            if (f.header.type === FrameType.GOAWAY) {
              goaway = String(new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(4));
            }
          }
          tally(ends, `goaway ${goaway}`);
        },
      );
      // Sessions end for several reasons (PROTOCOL_ERROR 1, FRAME_SIZE_ERROR 6, COMPRESSION_ERROR 9, …),
      // and some without a connection error at all.
      assert.ok(
        ends.size >= 4 && (ends.get("goaway none") ?? 0) + (ends.get("goaway 0") ?? 0) > 30,
        JSON.stringify([...ends]),
      );
      await stillServing(gw);
    });
  },
);

fuzzTest(
  "wire fuzz: 400 mutated backend responses each give the client a well-formed answer or a cut, never a hang",
  async () => {
    const { responses, hold } = mutatedResponses(ROUNDS, rng(3114));
    // Two fixed cases after the fuzzed ones: a small answer that arrives whole with bad chunk
    // framing is found broken before any of it was sent, and is a clear 502. (A body that is
    // merely cut short is found so only once the head has gone out: that stays a cut.)
    responses.push(
      latin1("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n"),
      latin1("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n"),
    );
    await withGateway(hostileBackend(responses, hold), "h1", async (gw) => {
      const statuses = await backendRounds(
        gw,
        (n) =>
          `${hold.has(n) ? "(held open) " : ""}backend sent ${
            JSON.stringify(String.fromCharCode(...responses[n]))
          }`,
      );
      // Both sides of the backend grammar are reached: relayed answers and the gateway's 502/504.
      for (const s of ["200", "502", "504"]) {
        assert.ok((statuses.get(s) ?? 0) > 5, `${s}: ${JSON.stringify([...statuses])}`);
      }
      for (const n of [ROUNDS, ROUNDS + 1]) {
        assert.match(
          await viaPool(gw, `/r/${n}`),
          /^HTTP\/1\.1 502 [^]*\r\n\r\nBad Gateway: the upstream response failed before any of it was sent\n$/,
        );
      }
      assert.match(await viaPool(gw, "/clean"), /^HTTP\/1\.1 200 [^]*\r\n\r\nclean\n$/);
    });
  },
);

/** The round number of the fixed stalled-mid-frame response (after the fuzzed rounds). */
const STALL = 1_000_000;

/**
 * A hostile h2c backend: it answers each request for `/r/N` on its stream with `response(N, id)`
 * (mutated frames), `/v/K` with seed K as it is, and `/clean` with a valid answer; it never closes
 * a connection itself, so a response that leaves its stream (or the connection's framing)
 * unfinished must be ended by the gateway's response timeout. What the gateway sends it must parse
 * (frames, header blocks): `badOutput` hears of anything that does not.
 */
function hostileH2Backend(
  response: (n: number, streamId: number) => Uint8Array,
  badOutput: (what: string) => void = () => {},
): TestServer {
  return serveConnections(async (conn) => {
    const reader = new FrameReader(16_777_215);
    const dec = new HpackDecoder();
    const buf = new Uint8Array(64 * 1024);
    let preface = 0;
    let block: Uint8Array[] = [];
    // One stream per connection: a response that breaks its connection then fails only itself.
    await writeAll(
      conn,
      concat([
        settingsFrame([[SettingsId.MAX_CONCURRENT_STREAMS, 1]]),
        encodeFrame(FrameType.SETTINGS, 1, 0),
      ]),
    );
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return;
      let chunk = buf.slice(0, n);
      if (preface < CONNECTION_PREFACE.length) {
        const take = Math.min(CONNECTION_PREFACE.length - preface, chunk.length);
        preface += take;
        chunk = chunk.subarray(take);
      }
      reader.push(chunk);
      for (;;) {
        let f;
        try {
          f = reader.next();
        } catch (e) {
          badOutput(`the gateway's frames do not parse: ${e}`);
          return;
        }
        if (!f) break;
        const t = f.header.type;
        if (t === FrameType.SETTINGS && !(f.header.flags & 1)) {
          await writeAll(conn, encodeFrame(FrameType.SETTINGS, 1, 0));
        }
        if (t === FrameType.PING && !(f.header.flags & 1)) {
          await writeAll(conn, encodeFrame(FrameType.PING, 1, 0, f.payload));
        }
        if (t !== FrameType.HEADERS && t !== FrameType.CONTINUATION) continue;
        block.push(t === FrameType.HEADERS && f.header.flags & 0x20 ? f.payload.subarray(5) : f.payload);
        if (!(f.header.flags & 0x4)) continue;
        let fields: HeaderField[];
        try {
          fields = dec.decode(concat(block));
        } catch (e) {
          badOutput(`the gateway's header block does not decode: ${e}`);
          return;
        }
        const path = fields.find(([name]) => name === ":path")?.[1] ?? "";
        block = [];
        const m = /^\/(r|v)\/(\d+)$/.exec(path);
        const id = f.header.streamId;
        await writeAll(
          conn,
          m ? (m[1] === "r" ? response(Number(m[2]), id) : h2ResponseSeeds(id)[Number(m[2])]) : cleanH2(id),
        );
      }
    }
  });
}
/** A block of its own (no dynamic table), so one mangled response cannot desync the next. */
const ownBlock = (fields: HeaderField[]) => new HpackEncoder({ maxTableSize: 0 }).encode(fields);

function cleanH2(id: number): Uint8Array {
  return concat([
    encodeFrame(FrameType.HEADERS, 0x4, id, ownBlock([[":status", "200"], ["content-length", "6"]])),
    encodeFrame(FrameType.DATA, 0x1, id, latin1("clean\n")),
  ]);
}

/** The unmutated responses, for stream `id`. */
function h2ResponseSeeds(id: number): Uint8Array[] {
  const data = (s: string, end = false) => encodeFrame(FrameType.DATA, end ? 1 : 0, id, latin1(s));
  const status = (code: string, extra: HeaderField[] = []) => ownBlock([[":status", code], ...extra]);
  const long = status("200", [["content-type", "text/plain"], ["x-long", "v".repeat(40)]]);
  return [
    concat([
      encodeFrame(FrameType.HEADERS, 0x4, id, status("200", [["content-length", "11"]])),
      data("hello "),
      data("world", true),
    ]),
    concat([
      encodeFrame(FrameType.HEADERS, 0x4, id, status("200", [["trailer", "x-sum"]])),
      data("abc"),
      encodeFrame(FrameType.HEADERS, 0x5, id, ownBlock([["x-sum", "abc"]])),
    ]),
    encodeFrame(FrameType.HEADERS, 0x5, id, status("204")),
    concat([
      encodeFrame(FrameType.HEADERS, 0x0, id, long.subarray(0, 5)),
      encodeFrame(FrameType.CONTINUATION, 0x4, id, long.subarray(5)),
      encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, Uint8Array.of(0, 0, 1, 0)),
      data("split head", true),
    ]),
    concat([
      encodeFrame(FrameType.HEADERS, 0x4, id, status("103", [["link", "</a>; rel=preload"]])),
      encodeFrame(FrameType.HEADERS, 0x5, id, status("302", [["location", "/x"]])),
    ]),
  ];
}

fuzzTest(
  "wire fuzz: 400 mutated h2c backend responses each give the client a well-formed answer or a cut, never a hang",
  async () => {
    const response = (n: number, id: number) => {
      if (n === STALL) {
        // A DATA frame announced with 100 octets, 10 sent, and nothing more: stalled mid-frame.
        const data = encodeFrame(FrameType.DATA, 0x1, id, new Uint8Array(100)).subarray(0, 19);
        return concat([encodeFrame(FrameType.HEADERS, 0x4, id, ownBlock([[":status", "200"]])), data]);
      }
      const seeds = h2ResponseSeeds(id);
      // The same edits whatever the stream id (seeded by the round), so a failure is reproducible.
      return mutate(seeds[n % seeds.length], rng(5000 + n));
    };
    await withGateway(hostileH2Backend(response), "h2c", async (gw) => {
      for (const [k, want] of ["200", "200", "204", "200", "302"].entries()) {
        assert.match(await viaPool(gw, `/v/${k}`), new RegExp(`^HTTP/1\\.1 ${want} `), `seed ${k}`);
      }
      const statuses = await backendRounds(
        gw,
        (n) => `backend sent ${JSON.stringify(String.fromCharCode(...response(n, 1)))} (as stream 1)`,
      );
      for (const s of ["200", "502"]) {
        assert.ok((statuses.get(s) ?? 0) > 5, `${s}: ${JSON.stringify([...statuses])}`);
      }
      // A backend stalled inside a frame: the client's stream is cut at the response timeout, and
      // that connection takes no new streams (the next request would stall behind the frame too).
      for (let i = 0; i < 3; i++) {
        const stalled = await viaPool(gw, `/r/${STALL}`);
        assert.match(stalled, /^HTTP\/1\.1 200 /);
        assert.match(await viaPool(gw, "/clean"), /^HTTP\/1\.1 200 [^]*\r\n\r\nclean\n$/, `after stall ${i}`);
      }
      // What the backend did wrong is counted per backend, the stalls included.
      const events = (e: string) =>
        metricSum(
          gw.adminPort,
          new RegExp(`^expressgateway_upstream_protocol_events_total\\{.*event="${e}"`),
        );
      assert.ok(await events("h2_upstream_stalled") >= 3);
      assert.ok(await events("h2_malformed") > 0);
    });
  },
);

/**
 * One GET on a fresh h2c connection: how stream 1 ended (END_STREAM, RST_STREAM, GOAWAY or the
 * connection closed) and its :status, or "open" if none of that happened within END_WITHIN_MS.
 */
async function h2Get(port: number, path: string): Promise<{ end: string; status?: string }> {
  const c = await RawH2.connect(port);
  try {
    await c.send(c.headers(1, [
      [":method", "GET"],
      [":scheme", "http"],
      [":path", path],
      [":authority", "origin"],
      ["te", "trailers"],
    ]));
    let status: string | undefined;
    const deadline = Date.now() + END_WITHIN_MS;
    for (;;) {
      const f = await c.next(Math.max(1, deadline - Date.now()));
      if (f === undefined) return { end: "open", status };
      if (f === "closed") return { end: "closed", status };
      const { type, flags, streamId } = f.header;
      if (type === FrameType.GOAWAY) return { end: "goaway", status };
      if (streamId !== 1) continue;
      if (type === FrameType.RST_STREAM) return { end: "rst_stream", status };
      if (type === FrameType.HEADERS) {
        // The gateway's own header blocks must decode (c.decoder follows its dynamic table).
        const fields = c.decoder.decode(f.payload.subarray(flags & 0x20 ? 5 : 0));
        status ??= fields.find(([n]) => n === ":status")?.[1];
      }
      if ((type === FrameType.HEADERS || type === FrameType.DATA) && flags & 0x1) {
        return { end: "end_stream", status };
      }
    }
  } finally {
    c.close();
  }
}

fuzzTest(
  "wire fuzz: 400 mutated backend responses through the h2c front: every stream ends, cleanly or reset",
  async () => {
    const { responses, hold } = mutatedResponses(ROUNDS, rng(4115));
    await withGateway(hostileBackend(responses, hold), "h1", async (gw) => {
      const ends = new Map<string, number>();
      await inBatches(ROUNDS, CONCURRENCY, (n) => h2Get(gw.ports.web, `/r/${n}`), (n, r) => {
        const label = `round ${n}${hold.has(n) ? " (held open)" : ""}: backend sent ${
          JSON.stringify(String.fromCharCode(...responses[n]))
        }`;
        assert.notEqual(r.end, "open", `${label}: the stream was left open`);
        // A stream that ends cleanly has a response head; only a reset may come without one.
        if (r.end === "end_stream") assert.ok(r.status !== undefined, `${label}: END_STREAM without a head`);
        tally(ends, `${r.end} ${r.status ?? "-"}`);
      });
      for (const k of ["end_stream 200", "end_stream 502", "end_stream 504"]) {
        assert.ok((ends.get(k) ?? 0) > 5, `${k}: ${JSON.stringify([...ends])}`);
      }
      assert.deepEqual(await h2Get(gw.ports.web, "/clean"), { end: "end_stream", status: "200" });
    });
  },
);

fuzzTest(
  "wire fuzz: 400 h2c backend sessions of random frames from the whole grammar each give the client a well-formed answer or a cut, never a hang",
  async () => {
    const bad: string[] = [];
    const response = (n: number, id: number) => frameSession(rng(9000 + n), backendSide(id));
    await withGateway(hostileH2Backend(response, (what) => bad.push(what)), "h2c", async (gw) => {
      const statuses = await backendRounds(
        gw,
        (n) => `backend sent ${JSON.stringify(String.fromCharCode(...response(n, 1)))} (as stream 1)`,
      );
      assert.deepEqual(bad, []);
      // Both ends are reached: answers relayed (some of them cut), and mostly the gateway's own 502s
      // (a session that breaks its connection in the same read as its head is found broken before
      // any of the answer went out).
      const relayed = [...statuses].filter(([s]) => s !== "502").reduce((sum, [, n]) => sum + n, 0);
      assert.ok(relayed >= 5 && (statuses.get("502") ?? 0) > 100, JSON.stringify([...statuses]));
      // What the backend did wrong is counted: connection and stream errors, malformed heads.
      const events = (e: string) =>
        metricSum(
          gw.adminPort,
          new RegExp(`^expressgateway_upstream_protocol_events_total\\{.*event="${e}"`),
        );
      for (const e of ["h2_protocol_error", "h2_stream_error", "h2_malformed"]) {
        assert.ok(await events(e) > 0, e);
      }
      assert.match(await viaPool(gw, "/clean"), /^HTTP\/1\.1 200 [^]*\r\n\r\nclean\n$/);
    });
  },
);
