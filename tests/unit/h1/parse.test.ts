/**
 * The HTTP/1.1 request parser driven directly: findHeadEnd → parseRequestHead → requestTarget →
 * requestFraming → LengthBody/ChunkedBody, over a fake socket that delivers the bytes in
 * given splits (every byte boundary, random pieces, one byte at a time). Valid messages must
 * parse identically however they are split; the smuggling corpus must fail with the status
 * the gateway answers (400, 414, 431) however it is split.
 */

import assert from "node:assert/strict";
import { BodyTooLargeError, ChunkedBody, LengthBody } from "../../../src/http/h1/body.ts";
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

/**
 * Parses every request in the stream the way the server codec does (head loop with fill,
 * then the body decoder, then the next request on the same buffer).
 */
async function parseStream(
  pieces: Uint8Array[],
  limits: HeadLimits = LIMITS,
  maxBody = 1 << 30,
): Promise<Parsed[]> {
  const r = new ConnReader(new PieceConn(pieces));
  const out: Parsed[] = [];
  for (;;) {
    const st = newScanState();
    let len: number;
    for (;;) {
      len = findHeadEnd(r.buf, r.start, r.end, st, limits, true);
      if (len >= 0) break;
      const pending = r.end - r.start - st.skip;
      if (!(await r.fill(Math.min(limits.maxHead + 4, Math.max(4096, pending * 2))))) {
        if (r.end - r.start - st.skip > 0) throw new H1ParseError(400, "connection closed inside a head");
        return out;
      }
    }
    const head = parseRequestHead(r.buf, r.start + st.skip, r.start + len, limits.maxLine);
    r.start += len;
    const target = { authority: "", path: "" };
    assert.ok(requestTarget(head, target), "not a CONNECT request");
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
      assert.equal(clean, true);
      trailers = dec.trailers();
    }
    out.push({ method: head.method, ...target, minor: head.minor, headers: head.headers, body, trailers });
  }
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
