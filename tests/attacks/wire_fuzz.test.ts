/**
 * Mutation fuzzing of the live gateway over real sockets, from both sides.
 *
 * Clients: valid request streams (pipelined requests, bodies, chunked trailers; h2c sessions with
 * bodies, trailers, CONTINUATION, PRIORITY, PING, RST_STREAM, GOAWAY) get 1–3 random byte edits
 * each and are sent on their own connection, half-closed once the gateway goes quiet. Every
 * connection must be ended by the gateway, and what it wrote must be well-formed: HTTP/1.1
 * status lines, or HTTP/2 frames whose header blocks decode.
 *
 * Backends: a hostile HTTP/1.1 backend, a hostile h2c backend and a hostile HTTP/3 backend answer
 * each request with a mutated response (some held open; for HTTP/3 also mutated control and QPACK
 * encoder streams), and the h2c backend also with sessions of random frames from the whole grammar
 * (what the gateway sends it must parse). The client must always get a well-formed answer (the relayed head, perhaps cut
 * short, or the gateway's own 502/504) and its connection must end. Fixed cases after the HTTP/3
 * rounds pin which of the backend's errors close its connection, and with which code.
 *
 * After each run the process is still serving and has logged no unhandled rejection. Seeds are
 * fixed and checked unmutated first, so a failure names a reproducible round.
 */

import assert from "node:assert/strict";
import { configHead, type GatewayProcess, startGateway } from "../helpers/gateway.ts";
import { startOrigin } from "../helpers/origin.ts";
import { concat, metricSum, until } from "../helpers/common.ts";
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
import type { TestPki } from "../../scripts/pki.ts";

const ROUNDS = 400;
const CONCURRENCY = 20;
/** A mangled connection must be ended by the gateway within this (its body timeout is 2 s). */
const END_WITHIN_MS = 10_000;

/**
 * `backendTls`: the backend's tls table line (an h3 backend needs its CA and name). gRPC calls get
 * at most 300 ms (grpc_max_timeout), so a test can have a deadline end a call mid-response.
 */
function config(origin: string, protocol = "h1", backendTls = ""): string {
  return `${configHead()}[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
grpc_max_timeout = "300ms"
header_timeout = "2s"
body_timeout = "2s"
max_body_size = "64KiB"
  [[listeners.routes]]
  host = "origin"
  pool = "origin"
  [[listeners.routes]]
  respond = { status = 200, body = "gateway ok\\n" }
[[pools]]
name = "origin"
response_timeout = "1s"
  [[pools.backends]]
  address = "${origin}"
  protocol = "${protocol}"
  ${backendTls}
`;
}

/** Quiet this long after the last byte from the gateway: it has answered what it will. */
const QUIET_MS = 250;

/**
 * Writes `bytes` and reads what the gateway answers. Once it has been quiet for QUIET_MS (or has
 * closed), half-closes: from then on the gateway must end the connection within END_WITHIN_MS.
 * (Half-closing at once would test less: the gateway may drop what it queued for a client that
 * said it is gone.)
 */
async function exchange(port: number, bytes: Uint8Array): Promise<{ out: Uint8Array; ended: boolean }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const parts: Uint8Array[] = [];
  let ended = false;
  let halfClosed = false;
  let timedOut = false;
  let deadline: ReturnType<typeof setTimeout> | undefined;
  let quiet: ReturnType<typeof setTimeout> | undefined;
  const closeWrite = () => {
    if (halfClosed) return;
    halfClosed = true;
    conn.closeWrite().catch(() => {});
    deadline = setTimeout(() => {
      timedOut = true;
      try {
        conn.close();
      } catch { /* closed */ }
    }, END_WITHIN_MS);
  };
  const rearm = () => {
    clearTimeout(quiet);
    quiet = setTimeout(closeWrite, QUIET_MS);
  };
  try {
    // The gateway may answer and close before all is written (a refused head): that is fine.
    await (async () => {
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    })().catch(() => {});
    rearm();
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) {
        ended = true;
        break;
      }
      parts.push(buf.slice(0, n));
      if (!halfClosed) rearm();
    }
  } catch {
    ended = !timedOut; // reset by the gateway: ended too; closed by our deadline: not
  } finally {
    clearTimeout(quiet);
    clearTimeout(deadline);
    try {
      conn.close();
    } catch { /* closed by the deadline or the gateway */ }
  }
  return { out: concat(parts), ended };
}

/** Every response in an HTTP/1.1 answer stream starts with a status line; true if it looks so. */
function wellFormedH1(out: Uint8Array): boolean {
  if (out.length === 0) return true;
  return /^HTTP\/1\.1 [1-5]\d\d /.test(String.fromCharCode(...out.subarray(0, 13)));
}

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

/** One request through the pool (fetch cannot set Host): the raw answer. */
async function viaPool(gw: GatewayProcess, path: string): Promise<string> {
  const req = `GET ${path} HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n`;
  const { out, ended } = await exchange(gw.ports.web, latin1(req));
  assert.ok(ended);
  return String.fromCharCode(...out);
}

/**
 * Runs `fn` against a gateway in front of `backend` (pool protocol `protocol`), then checks that
 * no unhandled rejection was logged; stops both whatever happens.
 */
async function withGateway(
  backend: { address: string; stop(): Promise<void> },
  protocol: string,
  fn: (gw: GatewayProcess) => Promise<void>,
  backendTls = "",
): Promise<void> {
  const gw = await startGateway(config(backend.address, protocol, backendTls)).catch(async (e) => {
    await backend.stop();
    throw e;
  });
  try {
    await fn(gw);
    assert.doesNotMatch(gw.logs(), /unhandled rejection/);
  } finally {
    await gw.stop();
    await backend.stop();
  }
}

/** A fuzz test: real sockets to child processes, which the resource sanitizer cannot follow. */
function fuzzTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, sanitizeResources: false, sanitizeOps: false, fn });
}

/** The gateway answers itself and through the pool after a run. */
async function stillServing(gw: GatewayProcess): Promise<void> {
  const own = await fetch(gw.url("web", "/"));
  assert.equal(await own.text(), "gateway ok\n");
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

/**
 * GET /r/N through the HTTP/1.1 front to a hostile backend, rounds 0‥ROUNDS-1 in batches: each
 * client must get a well-formed answer (the relayed head, perhaps cut short after it, or the
 * gateway's own) and the end of its connection. The statuses seen, counted.
 */
async function backendRounds(
  gw: GatewayProcess,
  describe: (n: number) => string,
): Promise<Map<string, number>> {
  const statuses = new Map<string, number>();
  const get = (n: number) =>
    exchange(gw.ports.web, latin1(`GET /r/${n} HTTP/1.1\r\nHost: origin\r\nTE: trailers\r\n\r\n`));
  await inBatches(ROUNDS, CONCURRENCY, get, (n, { out, ended }) => {
    const label = `round ${n}: ${describe(n)}`;
    assert.ok(ended, `${label}: the client's connection was left open`);
    assert.ok(
      out.length > 0 && wellFormedH1(out),
      `${label}: the client got ${JSON.stringify(String.fromCharCode(...out))}`,
    );
    tally(statuses, String.fromCharCode(...out.subarray(9, 12)));
  });
  return statuses;
}

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
  "wire fuzz: 400 mutated HTTP/3 backend responses (and mutated control and encoder streams) each give the client a well-formed answer or a cut, never a hang",
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
