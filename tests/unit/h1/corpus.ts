/**
 * The HTTP/1.1 request-smuggling corpus shared by the parser unit test and the live-gateway
 * attack test (tests/attacks/h1_smuggling.test.ts). Each request is ambiguous or invalid per
 * RFC 9112 and must be refused, never guessed at; where the RFC leaves room, the comment next
 * to the case states our decision.
 */

export function latin1Bytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

export interface SmugglingCase {
  name: string;
  /** latin1: one char per byte */
  raw: string;
  /** what the gateway answers (default 400) */
  status?: number;
  /**
   * The error is only visible after the head and a first piece of body were forwarded (the
   * body streams): the backend may see the head but never a complete request.
   */
  late?: boolean;
}

export const SMUGGLING: SmugglingCase[] = [
  {
    name: "CL.TE: Content-Length and Transfer-Encoding together",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
  },
  {
    name: "TE.CL: Transfer-Encoding first, then Content-Length",
    raw:
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
  },
  {
    name: "TE.TE: xchunked",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
  },
  {
    // RFC 9112 §6.3: chunked must be the final coding, so "chunked, identity" is invalid framing.
    name: "TE.TE: chunked, identity (chunked not final)",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
  },
  {
    // Valid syntax per RFC 9112 only if "identity" were a coding: it was removed from the
    // registry (RFC 9110). We accept exactly one coding, `chunked`; anything else is refused.
    name: "TE.TE: identity, chunked (policy: only a single 'chunked')",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
  },
  {
    name: "TE.TE: two Transfer-Encoding fields",
    raw:
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
  },
  {
    name: "TE.TE: vertical tab around chunked",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
  },
  {
    name: "TE.TE: quoted chunked",
    raw: 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n',
  },
  {
    name: "leading space before Transfer-Encoding (obs-fold of the previous line)",
    raw: "POST / HTTP/1.1\r\nHost: h\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  },
  {
    name: "obs-fold continuation of a value",
    raw: "GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n",
  },
  {
    name: "space before the colon",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
  },
  {
    name: "tab before the colon",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length\t: 1\r\n\r\nx",
  },
  {
    // RFC 9110 §8.6 lets a recipient accept identical duplicates; we refuse every duplicate.
    name: "duplicate identical Content-Length (policy: all duplicates refused)",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
  },
  {
    name: "duplicate differing Content-Length",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
  },
  { name: "Content-Length +6", raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +6\r\n\r\nabcdef" },
  { name: "Content-Length -1", raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n" },
  {
    name: "Content-Length with internal space",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\n",
  },
  {
    // A list of identical values is tolerated by RFC 9110 §8.6; we refuse it.
    name: "Content-Length 6,6 (policy: refused)",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6,6\r\n\r\nabcdef",
  },
  { name: "Content-Length 0x6", raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x6\r\n\r\nabcdef" },
  { name: "Content-Length empty", raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n" },
  {
    name: "Content-Length beyond 2^53",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
  },
  { name: "NUL in a header value", raw: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n" },
  { name: "DEL in a header value", raw: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7fb\r\n\r\n" },
  { name: "NUL in the request target", raw: "GET /a\x00b HTTP/1.1\r\nHost: h\r\n\r\n" },
  { name: "bare LF line endings", raw: "GET / HTTP/1.1\nHost: h\n\n" },
  { name: "bare LF after one header", raw: "GET / HTTP/1.1\r\nHost: h\nX-A: 1\r\n\r\n" },
  { name: "bare LF inside a value", raw: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\nb\r\n\r\n" },
  { name: "bare CR inside a value", raw: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n" },
  { name: "bare CR ending the request line", raw: "GET / HTTP/1.1\rHost: h\r\n\r\n" },
  { name: "leading bare LF", raw: "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n" },
  {
    name: "HTTP/1.0 with Transfer-Encoding: chunked",
    raw: "POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  },
  {
    name: "chunk size with 0x",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
  },
  {
    name: "negative chunk size",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
  },
  {
    name: "chunk size overflow FFFFFFFFFFFFFFFFF",
    raw:
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n",
  },
  {
    name: "chunk size with a space inside",
    raw:
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1 0\r\n0123456789abcdef\r\n0\r\n\r\n",
  },
  {
    name: "chunk data longer than its size (missing CRLF)",
    late: true,
    raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
  },
  {
    name: "bare LF in chunked framing",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
  },
  {
    name: "empty chunk size line",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n",
  },
  {
    name: "obs-fold in trailers",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n b\r\n\r\n",
  },
  {
    name: "bare LF in trailers",
    raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\nX-U: b\r\n\r\n",
  },
  { name: "missing Host on HTTP/1.1", raw: "GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n" },
  { name: "two Host fields", raw: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" },
  { name: "Host with userinfo", raw: "GET / HTTP/1.1\r\nHost: user@h\r\n\r\n" },
  { name: "Host with a space inside", raw: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n" },
  { name: "absolute-form with userinfo", raw: "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n" },
  { name: "request line with two spaces", raw: "GET  / HTTP/1.1\r\nHost: h\r\n\r\n" },
  { name: "two spaces before the version", raw: "GET /  HTTP/1.1\r\nHost: h\r\n\r\n" },
  { name: "tab as request-line separator", raw: "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n" },
  { name: "invalid token char in method", raw: "G@T / HTTP/1.1\r\nHost: h\r\n\r\n" },
  { name: "invalid token char in header name", raw: "GET / HTTP/1.1\r\nHost: h\r\nX[A]: 1\r\n\r\n" },
  { name: "empty header name", raw: "GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n" },
  { name: "header line without colon", raw: "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n" },
  { name: "lower-case version", raw: "GET / http/1.1\r\nHost: h\r\n\r\n" },
  { name: "HTTP/2.0 on an HTTP/1 connection", raw: "GET / HTTP/2.0\r\nHost: h\r\n\r\n", status: 505 },
  { name: "relative target", raw: "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n" },
  { name: "connection closed inside a head", raw: "GET / HTTP/1.1\r\nHost: h\r\n" },
];
