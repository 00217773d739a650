/**
 * The HTTP/1.1 request parser driven directly: findHeadEnd → parseRequestHead → requestTarget →
 * requestFraming → LengthBody/ChunkedBody, over a fake socket that delivers the bytes in
 * given splits (every byte boundary, random pieces, one byte at a time). Valid messages must
 * parse identically however they are split; the smuggling corpus must fail with the status
 * the gateway answers (400, 414, 431) however it is split.
 */

import assert from "node:assert/strict";
import { BodyTooLargeError, ChunkedBody, LengthBody, TruncatedBodyError } from "../../../src/http/h1/body.ts";
import {
  findHeadEnd,
  H1ParseError,
  type HeadLimits,
  newScanState,
  parseContentLength,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  requestTarget,
  responseFraming,
} from "../../../src/http/h1/parse.ts";
import { ConnReader, type Readable } from "../../../src/http/h1/reader.ts";
import { rng } from "../h2/helpers.ts";
import { latin1Bytes, SMUGGLING } from "./corpus.ts";
import { mutate } from "../../helpers/fuzz.ts";

const enc = new TextEncoder();
const LIMITS: HeadLimits = { maxLine: 8192, maxHead: 32 * 1024 };

/** A socket that returns the given pieces, one per read (split further if the buffer is smaller). */
class PieceConn implements Readable {
  #pieces: Uint8Array[];
  reads = 0;
  constructor(pieces: Uint8Array[]) {
    this.#pieces = pieces.filter((p) => p.length > 0);
  }
  read(p: Uint8Array): Promise<number | null> {
    this.reads++;
    const next = this.#pieces.shift();
    if (!next) return Promise.resolve(null);
    const n = Math.min(next.length, p.length);
    p.set(next.subarray(0, n));
    if (n < next.length) this.#pieces.unshift(next.subarray(n));
    return Promise.resolve(n);
  }
}

function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  out.push(bytes.subarray(prev));
  return out;
}

function randomSplits(bytes: Uint8Array, rand: () => number): Uint8Array[] {
  const cuts: number[] = [];
  let at = 0;
  while (at < bytes.length) {
    at += 1 + Math.floor(rand() * 24);
    if (at < bytes.length) cuts.push(at);
  }
  return splitAt(bytes, cuts);
}

interface Parsed {
  method: string;
  authority: string;
  path: string;
  minor: number;
  headers: string[];
  body: string;
  trailers?: string[];
}

/** What parsing a stream gave: the requests before the end, and how it ended. */
interface StreamResult {
  requests: Parsed[];
  /** What was thrown (the stream ends there), if anything. */
  error?: unknown;
  /** The stream ended at an authority-form (CONNECT) target, which the server codec decides about. */
  connect?: boolean;
  /** A body decoder ended without reporting a clean end. */
  unclean?: boolean;
}

/**
 * Parses every request in the stream the way the server codec does (head loop with fill,
 * then the body decoder, then the next request on the same buffer), until EOF or the first
 * error, which is returned rather than thrown.
 */
async function parseAll(
  pieces: Uint8Array[],
  limits: HeadLimits = LIMITS,
  maxBody = 1 << 30,
): Promise<StreamResult> {
  const r = new ConnReader(new PieceConn(pieces));
  const requests: Parsed[] = [];
  try {
    for (;;) {
      const st = newScanState();
      let len: number;
      for (;;) {
        len = findHeadEnd(r.buf, r.start, r.end, st, limits, true);
        if (len >= 0) break;
        const pending = r.end - r.start - st.skip;
        if (!(await r.fill(Math.min(limits.maxHead + 4, Math.max(4096, pending * 2))))) {
          if (r.end - r.start - st.skip > 0) throw new H1ParseError(400, "connection closed inside a head");
          return { requests };
        }
      }
      const head = parseRequestHead(r.buf, r.start + st.skip, r.start + len, limits.maxLine);
      r.start += len;
      const target = { authority: "", path: "" };
      if (!requestTarget(head, target)) return { requests, connect: true };
      const framing = requestFraming(head.headers, head.minor);
      let body = "";
      let trailers: string[] | undefined;
      if (framing.kind === "length" || framing.kind === "chunked") {
        let clean: boolean | undefined;
        const dec = framing.kind === "length"
          ? new LengthBody(r, framing.length, maxBody, (c) => clean = c, 400)
          : new ChunkedBody(r, maxBody, (c) => clean = c, 400);
        for (;;) {
          const chunk = await dec.read();
          if (chunk === null) break;
          body += String.fromCharCode(...chunk);
        }
        if (clean !== true) return { requests, unclean: true };
        trailers = dec.trailers();
      }
      requests.push({
        method: head.method,
        ...target,
        minor: head.minor,
        headers: head.headers,
        body,
        trailers,
      });
    }
  } catch (e) {
    return { requests, error: e };
  }
}

/** parseAll for a stream that must parse: its error is thrown, any other unclean end fails. */
async function parseStream(
  pieces: Uint8Array[],
  limits: HeadLimits = LIMITS,
  maxBody = 1 << 30,
): Promise<Parsed[]> {
  const res = await parseAll(pieces, limits, maxBody);
  if (res.error !== undefined) throw res.error;
  assert.ok(!res.connect, "not a CONNECT request");
  assert.equal(res.unclean, undefined, "every body ended cleanly");
  return res.requests;
}

async function expectError(
  pieces: Uint8Array[],
  status: number,
  limits: HeadLimits = LIMITS,
  maxBody?: number,
): Promise<H1ParseError> {
  try {
    const got = await parseStream(pieces, limits, maxBody);
    assert.fail(`expected H1ParseError ${status}, parsed ${JSON.stringify(got)}`);
  } catch (e) {
    if (!(e instanceof H1ParseError)) throw e;
    assert.equal(e.status, status, `status for: ${e.message}`);
    return e;
  }
}

const VALID: Array<{ name: string; raw: string; expect: Partial<Parsed>[] }> = [
  {
    name: "simple GET",
    raw: "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n",
    expect: [{ method: "GET", authority: "example.com", path: "/a?b=1", minor: 1, body: "" }],
  },
  {
    name: "POST with Content-Length",
    raw: "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world",
    expect: [{ method: "POST", path: "/up", body: "hello world" }],
  },
  {
    name: "chunked with extensions and trailers",
    raw: "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "5;ext=1\r\nhello\r\n6 ; a=b\r\n world\r\n0\r\nX-Sum: abc\r\nX-Other: 1\r\n\r\n",
    expect: [{ body: "hello world", trailers: ["x-sum", "abc", "x-other", "1"] }],
  },
  {
    name: "chunked with upper-case hex and leading zeros",
    raw: "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "0000000000000000000A\r\n0123456789\r\n000\r\n\r\n",
    expect: [{ body: "0123456789" }],
  },
  {
    name: "RFC 9112: OWS around values, tab as OWS, Transfer-Encoding case-insensitive",
    raw: "POST /t HTTP/1.1\r\nHost:h\r\nTransfer-Encoding:\tChunked \t\r\nX-A:  spaced value  \r\n\r\n" +
      "3\r\nabc\r\n0\r\n\r\n",
    expect: [{ body: "abc", headers: ["host", "h", "transfer-encoding", "Chunked", "x-a", "spaced value"] }],
  },
  {
    name: "Content-Length with surrounding OWS is one plain number",
    raw: "POST /t HTTP/1.1\r\nHost: h\r\nContent-Length:  3 \r\n\r\nabc",
    expect: [{ body: "abc" }],
  },
  {
    name: "pipelined requests with an empty line between them",
    raw: "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok" +
      "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n",
    expect: [{ path: "/1" }, { path: "/2", body: "ok" }, { path: "/3" }],
  },
  {
    name: "absolute-form: the target's authority wins over Host",
    raw: "GET http://real.example:8080?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
    expect: [{ authority: "real.example:8080", path: "/?q=1" }],
  },
  {
    name: "HTTP/1.0 without Host, obs-text in a value",
    raw: "GET / HTTP/1.0\r\nX-Latin: caf\xe9\r\n\r\n",
    expect: [{ minor: 0, authority: "", headers: ["x-latin", "caf\xe9"] }],
  },
  {
    name: "OPTIONS *",
    raw: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    expect: [{ method: "OPTIONS", path: "*" }],
  },
];

function check(got: Parsed[], expect: Partial<Parsed>[], label: string): void {
  assert.equal(got.length, expect.length, label);
  for (let i = 0; i < expect.length; i++) {
    for (const [k, v] of Object.entries(expect[i])) {
      assert.deepEqual(got[i][k as keyof Parsed], v, `${label}: request ${i} ${k}`);
    }
  }
}

Deno.test("valid requests parse identically when split at every byte boundary", async () => {
  for (const v of VALID) {
    const bytes = latin1Bytes(v.raw);
    check(await parseStream([bytes]), v.expect, `${v.name} (whole)`);
    for (let k = 1; k < bytes.length; k++) {
      check(await parseStream(splitAt(bytes, [k])), v.expect, `${v.name} (split at ${k})`);
    }
    // one byte per read: every state of every decoder sees a boundary
    check(await parseStream(splitAt(bytes, [...Array(bytes.length).keys()].slice(1))), v.expect, v.name);
  }
});

Deno.test("valid requests parse identically in random splits (seeded)", async () => {
  const rand = rng(4242);
  for (const v of VALID) {
    const bytes = latin1Bytes(v.raw);
    for (let round = 0; round < 50; round++) {
      check(await parseStream(randomSplits(bytes, rand)), v.expect, `${v.name} (round ${round})`);
    }
  }
});

Deno.test("smuggling corpus: every case is refused with its status, whole and split", async () => {
  const rand = rng(7);
  for (const c of SMUGGLING) {
    const bytes = latin1Bytes(c.raw);
    const status = c.status ?? 400;
    const e = await expectError([bytes], status);
    assert.ok(e.message.length > 0, c.name);
    for (let k = 1; k < bytes.length; k++) await expectError(splitAt(bytes, [k]), status);
    for (let round = 0; round < 10; round++) await expectError(randomSplits(bytes, rand), status);
  }
});

Deno.test("request line over the cap → 414, whether it arrives whole or in pieces", async () => {
  const limits = { maxLine: 100, maxHead: 1000 };
  const long = `GET /${"a".repeat(200)} HTTP/1.1\r\nHost: h\r\n\r\n`;
  await expectError([enc.encode(long)], 414, limits);
  await expectError(randomSplits(enc.encode(long), rng(1)), 414, limits);
  // longer than the whole header cap, still a request-line problem
  const huge = `GET /${"a".repeat(5000)} HTTP/1.1\r\nHost: h\r\n\r\n`;
  await expectError([enc.encode(huge)], 414, limits);
  // a request line that never ends is cut at the cap, without waiting for more
  const r = new ConnReader(new PieceConn([enc.encode(`GET /${"a".repeat(150)}`)]));
  await r.fill();
  assert.throws(
    () => findHeadEnd(r.buf, r.start, r.end, newScanState(), limits, true),
    (e) => e instanceof H1ParseError && e.status === 414,
  );
  // exactly at the cap is fine
  const atCap = `GET /${"a".repeat(100 - 14)} HTTP/1.1`;
  assert.equal(atCap.length, 100);
  const ok = await parseStream([enc.encode(`${atCap}\r\nHost: h\r\n\r\n`)], limits);
  assert.equal(ok.length, 1);
});

Deno.test("header block over the cap → 431, whole or in pieces", async () => {
  const limits = { maxLine: 100, maxHead: 1000 };
  let raw = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (let i = 0; i < 40; i++) raw += `X-Filler-${i}: ${"v".repeat(30)}\r\n`;
  raw += "\r\n";
  await expectError([enc.encode(raw)], 431, limits);
  await expectError(randomSplits(enc.encode(raw), rng(2)), 431, limits);
  // never ending head: refused once the cap is passed
  await expectError([enc.encode(raw.slice(0, 1200))], 431, limits);
});

Deno.test("endless empty lines before a request are refused, not buffered", async () => {
  const limits = { maxLine: 100, maxHead: 1000 };
  await expectError([enc.encode("\r\n".repeat(600))], 400, limits);
  // a few are fine (RFC 9112 §2.2)
  assert.equal((await parseStream([enc.encode("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")])).length, 1);
});

Deno.test("a CR at the end of one read and a non-LF at the start of the next is a bare CR", () => {
  const st = newScanState();
  const a = enc.encode("GET / HTTP/1.1\r\nHost: h\r");
  const buf = new Uint8Array(64);
  buf.set(a);
  assert.equal(findHeadEnd(buf, 0, a.length, st, LIMITS, true), -1);
  buf[a.length] = 0x58; // 'X'
  assert.throws(
    () => findHeadEnd(buf, 0, a.length + 1, st, LIMITS, true),
    (e) => e instanceof H1ParseError && e.status === 400 && /bare CR/.test(e.message),
  );
});

Deno.test("chunked body past max_body_size fails with BodyTooLargeError; Content-Length checks", async () => {
  const raw = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n";
  await assert.rejects(parseStream([enc.encode(raw)], LIMITS, 15), BodyTooLargeError);
  assert.equal((await parseStream([enc.encode(raw)], LIMITS, 20))[0].body.length, 20);
  assert.equal(parseContentLength("0"), 0);
  assert.equal(parseContentLength("007"), 7);
  assert.equal(parseContentLength("123456789012345"), 123456789012345);
  for (const bad of ["", "+1", "-1", "1 ", " 1", "1,1", "0x1", "1e3", "1234567890123456"]) {
    assert.equal(parseContentLength(bad), -1, JSON.stringify(bad));
  }
});

Deno.test("truncated bodies: Content-Length and chunked ending early are not clean", async () => {
  for (
    const raw of [
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
    ]
  ) {
    await assert.rejects(parseStream([enc.encode(raw)]), /truncated/, raw);
  }
});

Deno.test("request framing rules in isolation", () => {
  assert.deepEqual(requestFraming(["transfer-encoding", "chunked"], 1), { kind: "chunked" });
  assert.deepEqual(requestFraming(["transfer-encoding", "CHUNKED"], 1), { kind: "chunked" });
  assert.deepEqual(requestFraming(["content-length", "0"], 1), { kind: "none" });
  assert.deepEqual(requestFraming(["content-length", "12"], 0), { kind: "length", length: 12 });
  assert.deepEqual(requestFraming([], 1), { kind: "none" });
  for (const te of ["gzip, chunked", "chunked,", ",chunked", "chunked;q=1", "chunke", "chunkedx", ""]) {
    assert.throws(
      () => requestFraming(["transfer-encoding", te], 1),
      (e) => e instanceof H1ParseError && e.status === 400,
      te,
    );
  }
  const out = { authority: "", path: "" };
  assert.ok(
    requestTarget({ method: "GET", target: "HTTP://A.example/p", minor: 1, headers: ["host", "b"] }, out),
  );
  assert.deepEqual(out, { authority: "A.example", path: "/p" });
  assert.equal(
    requestTarget({ method: "CONNECT", target: "a:443", minor: 1, headers: ["host", "a"] }, out),
    false,
  );
});

Deno.test("response heads and framing (upstream side)", () => {
  const parse = (s: string) => {
    const b = latin1Bytes(s);
    const st = newScanState();
    const len = findHeadEnd(b, 0, b.length, st, LIMITS, false);
    assert.ok(len > 0);
    return parseResponseHead(b, st.skip, len);
  };
  const h = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
  assert.equal(h.status, 200);
  assert.deepEqual(responseFraming(h.headers, 200, "GET"), { kind: "length", length: 5 });
  assert.deepEqual(responseFraming(h.headers, 200, "HEAD"), { kind: "none" });
  assert.deepEqual(responseFraming(h.headers, 304, "GET"), { kind: "none" });
  assert.deepEqual(responseFraming(h.headers, 204, "GET"), { kind: "none" });
  const noReason = parse("HTTP/1.1 204\r\n\r\n");
  assert.equal(noReason.status, 204);
  assert.deepEqual(responseFraming(parse("HTTP/1.0 200 OK\r\n\r\n").headers, 200, "GET"), { kind: "close" });
  assert.deepEqual(
    responseFraming(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").headers, 200, "GET"),
    { kind: "chunked" },
  );
  assert.throws(
    () => responseFraming(["content-length", "1", "content-length", "2"], 200, "GET"),
    (e) => e instanceof H1ParseError && e.status === 502,
  );
  for (
    const bad of ["HTTP/1.1 99 X\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nA : b\r\n\r\n"]
  ) {
    assert.throws(() => parse(bad), H1ParseError, bad);
  }
});

Deno.test("a cap passed before a syntax error is the answer, however the bytes arrive", async () => {
  // Found by the mutation fuzz below: whole, the scan used to reach the bare LF first (400); in
  // pieces, the clean bytes past the cap were refused first (414 / 431).
  const limits = { maxLine: 24, maxHead: 96 };
  const longLine = latin1Bytes("GET http://real.exampe:8080?q=1 HTTP/1.1\nHost: other.example\r\n\r\n");
  let big = "GET / HTTP/1.1\r\n";
  for (let i = 0; i < 8; i++) big += `X-F${i}: ${"v".repeat(10)}\r\n`;
  const bigHead = latin1Bytes(`${big}Bad\rX: y\r\n\r\n`);
  for (const [bytes, status] of [[longLine, 414], [bigHead, 431]] as const) {
    await expectError([bytes], status, limits);
    for (let k = 1; k < bytes.length; k++) await expectError(splitAt(bytes, [k]), status, limits);
  }
});

// --- mutation fuzzing --------------------------------------------------------------------------

/** Bytes the grammar cares about, so mutations hit the branches rather than only letters. */
const HTTP1_OCTETS = [0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x3b, 0x2c, 0x00, 0x7f, 0xff, 0x30, 0x61, 0x46, 0x2f];

/**
 * How a stream ended, as a comparable string: the requests parsed, then the class (and status)
 * of the error or the kind of end. Anything thrown that the codec does not throw on purpose
 * (a TypeError, a RangeError, an assertion) fails the test here.
 */
function verdict(res: StreamResult, label: string): string {
  const e = res.error;
  let end = res.connect ? "connect" : res.unclean ? "unclean" : "eof";
  if (e !== undefined) {
    if (e instanceof H1ParseError) end = `H1ParseError ${e.status}`;
    else if (e instanceof BodyTooLargeError || e instanceof TruncatedBodyError) end = e.name;
    else throw new Error(`${label}: unexpected ${e instanceof Error ? e.stack : String(e)}`);
  }
  return `${JSON.stringify(res.requests)} → ${end}`;
}

Deno.test("mutation fuzz: 3,000 mutated requests get the same verdict whole, split and byte by byte", async () => {
  const rand = rng(90210);
  const seeds = [...VALID.map((v) => v.raw), ...SMUGGLING.map((c) => c.raw)].map(latin1Bytes);
  // Small caps too, so 414 and 431 are reached from arbitrary states of the scanner.
  const tight: HeadLimits = { maxLine: 24, maxHead: 96 };
  const counts = new Map<string, number>();
  for (let round = 0; round < 3000; round++) {
    const bytes = mutate(seeds[round % seeds.length], rand, 0, HTTP1_OCTETS, 0.7);
    const limits = round % 4 === 3 ? tight : LIMITS;
    const maxBody = round % 5 === 4 ? 4 : 1 << 30;
    const label = `round ${round}: ${JSON.stringify(String.fromCharCode(...bytes))}`;
    const whole = verdict(await parseAll([bytes], limits, maxBody), label);
    const split = verdict(await parseAll(randomSplits(bytes, rand), limits, maxBody), label);
    assert.equal(split, whole, `${label} (random split)`);
    if (round % 3 === 0) {
      const oneByOne = splitAt(bytes, [...Array(bytes.length).keys()].slice(1));
      assert.equal(
        verdict(await parseAll(oneByOne, limits, maxBody), label),
        whole,
        `${label} (byte by byte)`,
      );
    }
    const end = whole.slice(whole.lastIndexOf("→ ") + 2);
    counts.set(end, (counts.get(end) ?? 0) + 1);
  }
  // The mutations reach both sides of the grammar: refusals of several kinds, and accepted streams.
  assert.ok((counts.get("eof") ?? 0) > 50, JSON.stringify([...counts]));
  for (const kind of ["H1ParseError 400", "H1ParseError 414", "H1ParseError 431", "BodyTooLargeError"]) {
    assert.ok((counts.get(kind) ?? 0) > 0, `${kind} never reached: ${JSON.stringify([...counts])}`);
  }
});

/** Scans and parses one response head in the given pieces: the head, or the error's status. */
function responseVerdict(pieces: Uint8Array[], limits: HeadLimits, label: string): string {
  const buf = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  const st = newScanState();
  let end = 0;
  try {
    for (const p of pieces) {
      buf.set(p, end);
      end += p.length;
      const len = findHeadEnd(buf, 0, end, st, limits, false);
      if (len >= 0) {
        const h = parseResponseHead(buf, st.skip, len);
        return JSON.stringify([h, responseFraming(h.headers, h.status, "GET")]);
      }
    }
    return "incomplete";
  } catch (e) {
    if (e instanceof H1ParseError) return `H1ParseError ${e.status}`;
    throw new Error(`${label}: unexpected ${e instanceof Error ? e.stack : String(e)}`);
  }
}

Deno.test("mutation fuzz: 3,000 mutated response heads get the same verdict whole and split", () => {
  const rand = rng(8086);
  const seeds = [
    "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 32\r\n\r\n",
    "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: gzip, chunked\r\nVary: a, b\r\n\r\n",
    "HTTP/1.0 204\r\nX-A:\tv \r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
  ].map(latin1Bytes);
  const tight: HeadLimits = { maxLine: 20, maxHead: 64 };
  const kinds = new Set<string>();
  for (let round = 0; round < 3000; round++) {
    const bytes = mutate(seeds[round % seeds.length], rand, 0, HTTP1_OCTETS, 0.7);
    const limits = round % 4 === 3 ? tight : LIMITS;
    const label = `round ${round}: ${JSON.stringify(String.fromCharCode(...bytes))}`;
    const whole = responseVerdict([bytes], limits, label);
    assert.equal(responseVerdict(randomSplits(bytes, rand), limits, label), whole, `${label} (random split)`);
    assert.equal(
      responseVerdict(splitAt(bytes, [...Array(bytes.length).keys()].slice(1)), limits, label),
      whole,
      `${label} (byte by byte)`,
    );
    kinds.add(whole.startsWith("[") ? "parsed" : whole);
  }
  // An upstream's bad head is a 502 to the client (the codec throws 502, or 400 for the version).
  assert.ok(
    kinds.has("parsed") && kinds.has("H1ParseError 502") && kinds.has("incomplete"),
    [...kinds].join(),
  );
});
