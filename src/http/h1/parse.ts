/**
 * Strict HTTP/1.1 message-head parsing (RFC 9112) from bytes. Two steps:
 *   1. findHeadEnd() scans incrementally for the blank line, rejecting bare LF and
 *      enforcing the request-line and header-block caps while bytes are still arriving, so a
 *      slow or hostile sender never makes us rescan or buffer past the cap;
 *   2. parseRequestHead()/parseResponseHead() validate every character class once and
 *      produce latin1 strings with lower-case header names.
 * Anything ambiguous is an error: the proxy never forwards a request it had to guess about.
 */

import { latin1, latin1Cached } from "./bytes.ts";

export class H1ParseError extends Error {
  constructor(readonly status: 400 | 414 | 431 | 501 | 505 | 502, message: string) {
    super(message);
    this.name = "H1ParseError";
  }
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

// Character classes, one bit each.
const TCHAR = 1;
const FIELD_VCHAR = 2; // VCHAR and obs-text (a field value may also hold SP/HTAB inside)
const TARGET = 4; // request-target characters: visible ASCII
const CLASS = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) CLASS[c] |= FIELD_VCHAR | TARGET;
for (let c = 0x80; c <= 0xff; c++) CLASS[c] |= FIELD_VCHAR;
for (const ch of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  CLASS[ch.charCodeAt(0)] |= TCHAR;
}

export interface HeadLimits {
  /** Longest first line (request line or status line), bytes. */
  maxLine: number;
  /** Largest head (first line + fields), bytes. */
  maxHead: number;
}

/**
 * Incremental search for the end of a message head in bytes[base, end). All positions in the
 * state are relative to `base` (the reader's start), because the reader may compact or move its
 * buffer between calls; `scanned` keeps the progress of earlier calls so each byte is examined
 * once however the head is split. Returns the head length (relative offset just past the blank
 * line) or -1 when more bytes are needed. Leading blank lines (allowed before a request line,
 * RFC 9112 §2.2) are skipped by advancing `skip`: the head itself starts at base + skip.
 */
export interface ScanState {
  skip: number;
  scanned: number;
  /** Relative end of the first line once seen, else -1. */
  firstLineEnd: number;
}

export function newScanState(): ScanState {
  return { skip: 0, scanned: 0, firstLineEnd: -1 };
}

/** Starts a new search with `st` (a connection keeps one instead of allocating per message). */
export function resetScanState(st: ScanState): ScanState {
  st.skip = st.scanned = 0;
  st.firstLineEnd = -1;
  return st;
}

export function findHeadEnd(
  bytes: Uint8Array,
  base: number,
  end: number,
  st: ScanState,
  limits: HeadLimits,
  isRequest: boolean,
): number {
  const bad = isRequest ? 400 : 502;
  let i = base + st.scanned;
  if (st.scanned === st.skip) {
    // Skip leading CRLFs between pipelined messages (RFC 9112 §2.2), but not without end: a
    // peer that only sends empty lines must not grow the buffer forever.
    while (i + 1 < end && bytes[i] === CR && bytes[i + 1] === LF) i += 2;
    if (i < end && bytes[i] === LF) throw new H1ParseError(bad, "bare LF");
    st.skip = st.scanned = i - base;
    if (st.skip > limits.maxLine) throw new H1ParseError(bad, "too many empty lines before the message");
    if (i + 1 >= end && i < end && bytes[i] === CR) return -1;
  }
  const start = base + st.skip;
  for (; i < end; i++) {
    const b = bytes[i];
    if (b === LF) {
      if (i === start || bytes[i - 1] !== CR) {
        throw capPassedBefore(i - start, st, limits, isRequest) ??
          new H1ParseError(bad, "bare LF in message head");
      }
      if (st.firstLineEnd < 0) {
        st.firstLineEnd = i + 1 - base;
        // Checked here too, so a long line that arrives whole is a 414, not a 431.
        if (i - 1 - start > limits.maxLine) throw lineTooLong(isRequest);
      }
      // Blank line: CRLF immediately after the previous line's CRLF.
      if (i - 3 >= start && bytes[i - 2] === LF && bytes[i - 3] === CR) {
        st.scanned = i + 1 - base;
        if (i + 1 - start > limits.maxHead) {
          throw new H1ParseError(isRequest ? 431 : 502, "header block too large");
        }
        return i + 1 - base;
      }
    } else if (b === CR) {
      if (i + 1 < end && bytes[i + 1] !== LF) {
        throw capPassedBefore(i - start, st, limits, isRequest) ??
          new H1ParseError(bad, "bare CR in message head");
      }
    }
  }
  // A CR as the last byte is examined again with its successor on the next call (else a CR
  // followed by anything but LF in the next read would slip through).
  const held = end > start && bytes[end - 1] === CR ? 1 : 0;
  st.scanned = end - base - held;
  // The caps count the bytes known to be clean: a held CR is judged with its successor.
  const clean = end - start - held;
  if (st.firstLineEnd < 0 && clean > limits.maxLine) throw lineTooLong(isRequest);
  if (clean > limits.maxHead) {
    throw new H1ParseError(isRequest ? 431 : 502, "header block too large");
  }
  return -1;
}

/**
 * The cap error for a head that passed a cap before a syntax error `at` bytes into it, else
 * undefined. Without it the answer would depend on how the bytes arrived: split into reads, the
 * clean bytes before the error are counted at the end of a read and refused as too long (414,
 * 431); whole, the scan would reach the error first (400). Only error paths call this.
 */
function capPassedBefore(
  at: number,
  st: ScanState,
  limits: HeadLimits,
  isRequest: boolean,
): H1ParseError | undefined {
  if (st.firstLineEnd < 0 && at > limits.maxLine) return lineTooLong(isRequest);
  if (at > limits.maxHead) return new H1ParseError(isRequest ? 431 : 502, "header block too large");
  return undefined;
}

function lineTooLong(isRequest: boolean): H1ParseError {
  return isRequest
    ? new H1ParseError(414, "request line too long")
    : new H1ParseError(502, "status line too long");
}

export interface RequestHead {
  method: string;
  target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1 */
  minor: number;
  /** flat [name, value, …], names lower-cased, values trimmed of OWS */
  headers: string[];
}

export interface ResponseHead {
  status: number;
  reason: string;
  minor: number;
  headers: string[];
}

/** Parses a complete request head in bytes[start, end) (end is just past the blank line). */
export function parseRequestHead(
  bytes: Uint8Array,
  start: number,
  end: number,
  maxLine: number,
): RequestHead {
  let i = start;
  const mStart = i;
  while (CLASS[bytes[i]] & TCHAR) i++;
  if (i === mStart || bytes[i] !== SP) throw new H1ParseError(400, "invalid method");
  const method = latin1Cached(bytes, mStart, i);
  i++;
  const tStart = i;
  while (CLASS[bytes[i]] & TARGET) i++;
  if (i === tStart || bytes[i] !== SP) throw new H1ParseError(400, "invalid request target");
  const target = latin1(bytes, tStart, i);
  i++;
  const minor = parseVersion(bytes, i);
  i += 8;
  if (bytes[i] !== CR || bytes[i + 1] !== LF) throw new H1ParseError(400, "invalid request line");
  if (i - start > maxLine) throw new H1ParseError(414, "request line too long");
  i += 2;
  return { method, target, minor, headers: parseFields(bytes, i, end, 400) };
}

/** Parses a complete response head (status line + fields). */
export function parseResponseHead(bytes: Uint8Array, start: number, end: number): ResponseHead {
  let i = start;
  const minor = parseVersion(bytes, i);
  i += 8;
  if (bytes[i] !== SP) throw new H1ParseError(502, "invalid status line");
  i++;
  const d0 = bytes[i] - 0x30, d1 = bytes[i + 1] - 0x30, d2 = bytes[i + 2] - 0x30;
  if (!(d0 >= 1 && d0 <= 5 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9)) {
    throw new H1ParseError(502, "invalid status code");
  }
  const status = d0 * 100 + d1 * 10 + d2;
  i += 3;
  let reason = "";
  if (bytes[i] === SP) {
    i++;
    const rStart = i;
    while (bytes[i] !== CR && ((CLASS[bytes[i]] & FIELD_VCHAR) || bytes[i] === SP || bytes[i] === HTAB)) i++;
    reason = latin1Cached(bytes, rStart, i);
  }
  if (bytes[i] !== CR || bytes[i + 1] !== LF) throw new H1ParseError(502, "invalid status line");
  i += 2;
  return { status, reason, minor, headers: parseFields(bytes, i, end, 502) };
}

function parseVersion(bytes: Uint8Array, i: number): number {
  // "HTTP/1.x"
  if (
    bytes[i] !== 0x48 || bytes[i + 1] !== 0x54 || bytes[i + 2] !== 0x54 || bytes[i + 3] !== 0x50 ||
    bytes[i + 4] !== 0x2f || bytes[i + 6] !== 0x2e
  ) throw new H1ParseError(400, "invalid HTTP version");
  const major = bytes[i + 5] - 0x30, minor = bytes[i + 7] - 0x30;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) throw new H1ParseError(400, "invalid HTTP version");
  if (major !== 1) throw new H1ParseError(505, "HTTP version not supported");
  return minor === 0 ? 0 : 1;
}

/**
 * Field lines from i up to the blank line that ends at `end`. Also used for chunked trailers.
 * Rejects obs-fold, whitespace before the colon, empty names and control characters.
 */
export function parseFields(bytes: Uint8Array, i: number, end: number, errorStatus: 400 | 502): string[] {
  const headers: string[] = [];
  const stop = end - 2; // the blank line's CRLF
  while (i < stop) {
    const b = bytes[i];
    if (b === SP || b === HTAB) {
      throw new H1ParseError(errorStatus === 400 ? 400 : 502, "obsolete line folding");
    }
    const nStart = i;
    while (CLASS[bytes[i]] & TCHAR) i++;
    if (i === nStart) throw new H1ParseError(errorStatus, "invalid header field name");
    if (bytes[i] !== COLON) {
      throw new H1ParseError(
        errorStatus,
        bytes[i] === SP || bytes[i] === HTAB ? "whitespace before colon" : "invalid header field name",
      );
    }
    const name = lowerName(bytes, nStart, i);
    i++;
    while (bytes[i] === SP || bytes[i] === HTAB) i++;
    const vStart = i;
    let vEnd = i;
    for (;;) {
      const c = bytes[i];
      if (CLASS[c] & FIELD_VCHAR) vEnd = ++i;
      else if (c === SP || c === HTAB) i++;
      else break;
    }
    if (bytes[i] !== CR || bytes[i + 1] !== LF) {
      throw new H1ParseError(errorStatus, "invalid character in header field value");
    }
    headers.push(name, latin1Cached(bytes, vStart, vEnd));
    i += 2;
  }
  return headers;
}

// Interned lower-case names for the common headers, so most requests allocate no name strings.
const COMMON = [
  "host",
  "user-agent",
  "accept",
  "accept-encoding",
  "accept-language",
  "connection",
  "content-length",
  "content-type",
  "transfer-encoding",
  "cookie",
  "te",
  "upgrade",
  "date",
  "server",
  "expect",
  "keep-alive",
  "cache-control",
  "authorization",
  "referer",
  "origin",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "via",
  "trailer",
  "proxy-connection",
  "last-modified",
  "etag",
  "set-cookie",
  "location",
  "vary",
];
/** By length: an array index, not a Map lookup, on every header name. */
const internByLength: (string[] | undefined)[] = [];
for (const n of COMMON) (internByLength[n.length] ??= []).push(n);

function lowerName(bytes: Uint8Array, s: number, e: number): string {
  const candidates = e - s < internByLength.length ? internByLength[e - s] : undefined;
  if (candidates) {
    outer: for (const c of candidates) {
      for (let k = 0; k < c.length; k++) {
        if ((bytes[s + k] | 0x20) !== c.charCodeAt(k)) continue outer;
      }
      return c;
    }
  }
  return latin1(bytes, s, e).toLowerCase();
}

export interface RequestTarget {
  /** Host / the absolute-form target's authority (may include a port; "" for HTTP/1.0 without Host). */
  authority: string;
  /** origin-form path with query ("*" for OPTIONS *). */
  path: string;
}

// RFC 3986 reg-name / IPv4 / IP-literal characters plus ':' for the port; no userinfo ('@').
const AUTHORITY = /^[A-Za-z0-9.\-_~!$&'()*+,;=:%\[\]]+$/;
const ABSOLUTE = /^https?:\/\/([^/?#]+)([^#]*)$/i;

/**
 * Host rules (RFC 9112 §3.2): exactly one Host in HTTP/1.1, at most one in 1.0, with valid
 * characters; an absolute-form target's authority wins over Host (§3.2.2) and becomes the
 * Host sent upstream. Returns undefined for a target that is none of origin-, asterisk- or
 * absolute-form (authority-form: CONNECT), which the caller decides about. The result is
 * written into `out` (the request's log record), so a request allocates no extra object.
 */
export function requestTarget(head: RequestHead, out: RequestTarget): boolean {
  const h = head.headers;
  let host: string | undefined;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i] === "host") {
      if (host !== undefined) throw new H1ParseError(400, "several Host fields");
      host = h[i + 1];
    }
  }
  if (host === undefined && head.minor === 1) throw new H1ParseError(400, "missing Host");
  let authority = host ?? "";
  let path = head.target;
  if (path.charCodeAt(0) !== 0x2f) {
    if (head.method === "CONNECT") return false;
    if (path !== "*" || head.method !== "OPTIONS") {
      const abs = ABSOLUTE.exec(path);
      if (!abs) throw new H1ParseError(400, "invalid request target");
      authority = abs[1];
      path = abs[2].charCodeAt(0) === 0x2f ? abs[2] : `/${abs[2]}`;
    }
  }
  if (authority.length > 0 && !AUTHORITY.test(authority)) throw new H1ParseError(400, "invalid Host");
  out.authority = authority;
  out.path = path;
  return true;
}

export type Framing =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "close" }; // response only: read until the connection closes

// Shared answers for the framings without a length: no allocation per message.
const NO_BODY: Framing = Object.freeze({ kind: "none" });
const CHUNKED: Framing = Object.freeze({ kind: "chunked" });
const UNTIL_CLOSE: Framing = Object.freeze({ kind: "close" });

/**
 * Request body framing per RFC 9112 §6.3, strict: Transfer-Encoding must be exactly
 * `chunked`; both TE and CL, several CL fields, or a CL that is not plain digits → 400.
 */
export function requestFraming(headers: string[], minor: number): Framing {
  let te: string | undefined;
  let cl: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i];
    if (n === "transfer-encoding") {
      if (te !== undefined) throw new H1ParseError(400, "several Transfer-Encoding fields");
      te = headers[i + 1];
    } else if (n === "content-length") {
      if (cl !== undefined) throw new H1ParseError(400, "several Content-Length fields");
      cl = headers[i + 1];
    }
  }
  if (te !== undefined) {
    if (cl !== undefined) throw new H1ParseError(400, "both Transfer-Encoding and Content-Length");
    if (minor === 0) throw new H1ParseError(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (te.length !== 7 || te.toLowerCase() !== "chunked") {
      throw new H1ParseError(400, "Transfer-Encoding other than a single final 'chunked'");
    }
    return CHUNKED;
  }
  if (cl !== undefined) {
    const length = parseContentLength(cl);
    if (length < 0) throw new H1ParseError(400, "invalid Content-Length");
    return length === 0 ? NO_BODY : { kind: "length", length };
  }
  return NO_BODY;
}

/**
 * Response body framing (RFC 9112 §6.3), from the upstream. A response to HEAD, any 1xx,
 * 204 and 304 has no body. Invalid framing from a backend → 502 (never relayed).
 */
export function responseFraming(headers: string[], status: number, method: string): Framing {
  if (method === "HEAD" || status < 200 || status === 204 || status === 304) return NO_BODY;
  let te: string | undefined;
  let cl: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i];
    if (n === "transfer-encoding") te = te === undefined ? headers[i + 1] : `${te}, ${headers[i + 1]}`;
    else if (n === "content-length") {
      if (cl !== undefined && cl !== headers[i + 1]) {
        throw new H1ParseError(502, "upstream sent differing Content-Length fields");
      }
      cl = headers[i + 1];
    }
  }
  if (te !== undefined) {
    const codings = te.toLowerCase().split(",").map((s) => s.trim());
    if (codings[codings.length - 1] === "chunked") return CHUNKED;
    return UNTIL_CLOSE;
  }
  if (cl !== undefined) {
    const length = parseContentLength(cl);
    if (length < 0) throw new H1ParseError(502, "upstream sent an invalid Content-Length");
    return length === 0 ? NO_BODY : { kind: "length", length };
  }
  return UNTIL_CLOSE;
}

/** Plain decimal digits only (no sign, no spaces, no list); -1 if invalid or unsafe. */
export function parseContentLength(v: string): number {
  if (v.length === 0 || v.length > 15) return -1;
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const d = v.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
