/**
 * HTTP/2 ↔ exchange translation and the message-level rules of RFC 9113 §8:
 *   - field validity (§8.2.1: no uppercase, no CTL/SP/colon in names; no NUL/CR/LF or edge
 *     whitespace in values) — a violation makes the message malformed (stream PROTOCOL_ERROR);
 *   - connection-specific fields are malformed (§8.2.2), `te` only as "trailers";
 *   - request pseudo-headers (§8.3.1, CONNECT §8.5, extended CONNECT RFC 8441 §4) and response
 *     pseudo-headers (§8.3.2); pseudo-headers never in trailers, never after regular fields;
 *   - Host ↔ :authority, cookies joined with "; " towards the exchange (§8.2.3) and split again
 *     towards an HTTP/2 peer (better HPACK reuse).
 * Pure functions; a string result is the reason a message is malformed.
 */

import type { HeaderList } from "../exchange.ts";
import type { HeaderField } from "./hpack.ts";
import { lowerCaseName } from "../headers.ts";

/** 1 for octets that may appear in a regular HTTP/2 field name (§8.2.1). */
const NAME_OK = new Uint8Array(256);
for (let c = 0x21; c < 0x7f; c++) NAME_OK[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) NAME_OK[c] = 0; // uppercase
NAME_OK[0x3a] = 0; // ':' only starts pseudo-headers

/** Visible ASCII: what a request target may hold (same rule as the H1 parser). */
const TARGET_OK = new Uint8Array(256);
for (let c = 0x21; c < 0x7f; c++) TARGET_OK[c] = 1;

/** RFC 9110 tchar, for :method. */
const TCHAR = new Uint8Array(256);
for (const ch of "!#$%&'*+-.^_`|~") TCHAR[ch.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

const AUTHORITY = /^[A-Za-z0-9.\-_~!$&'()*+,;=:%\[\]]+$/;

/** Fields that only make sense on one HTTP/1.1 connection (§8.2.2). */
export function isConnectionSpecific(name: string): boolean {
  switch (name) {
    case "connection":
    case "keep-alive":
    case "proxy-connection":
    case "transfer-encoding":
    case "upgrade":
      return true;
  }
  return false;
}

export function validFieldName(n: string): boolean {
  if (n.length === 0) return false;
  for (let i = 0; i < n.length; i++) {
    const c = n.charCodeAt(i);
    if (c > 0xff || NAME_OK[c] === 0) return false;
  }
  return true;
}

export function validFieldValue(v: string): boolean {
  const n = v.length;
  if (n === 0) return true;
  let c = v.charCodeAt(0);
  if (c === 0x20 || c === 0x09) return false;
  c = v.charCodeAt(n - 1);
  if (c === 0x20 || c === 0x09) return false;
  for (let i = 0; i < n; i++) {
    c = v.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d) return false;
  }
  return true;
}

function allIn(s: string, table: Uint8Array): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || table[c] === 0) return false;
  }
  return true;
}

/** content-length: digits only; repeated values must agree (RFC 9110 §8.6). -2 = invalid. */
function contentLength(value: string, prev: number): number {
  if (value.length === 0 || value.length > 15) return -2;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -2;
  }
  const n = Number(value);
  if (prev >= 0 && prev !== n) return -2;
  return n;
}

export interface H2RequestHead {
  method: string;
  /** :scheme (absent for plain CONNECT). */
  scheme: string | undefined;
  /** :authority, else Host; "" when neither. */
  authority: string;
  /** :path, or the authority for plain CONNECT. */
  path: string;
  /** :protocol of an extended CONNECT. */
  protocol: string | undefined;
  /** Regular fields, lower-case, without host / content-length / te / expect; cookies joined. */
  headers: HeaderList;
  /** content-length, -1 when absent. */
  contentLength: number;
  expectContinue: boolean;
}

/** Validates a request field section (§8.3.1); a string is why it is malformed. */
export function parseRequestFields(fields: HeaderField[], allowProtocol: boolean): H2RequestHead | string {
  let method: string | undefined;
  let scheme: string | undefined;
  let authority: string | undefined;
  let path: string | undefined;
  let protocol: string | undefined;
  let host: string | undefined;
  let cookie: string | undefined;
  let length = -1;
  let expectContinue = false;
  let regular = false;
  const headers: HeaderList = [];
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    const name = f[0];
    const value = f[1];
    if (name.charCodeAt(0) === 0x3a) {
      if (regular) return `pseudo-header ${name} after regular fields`;
      switch (name) {
        case ":method":
          if (method !== undefined) return "duplicate :method";
          method = value;
          break;
        case ":scheme":
          if (scheme !== undefined) return "duplicate :scheme";
          scheme = value;
          break;
        case ":authority":
          if (authority !== undefined) return "duplicate :authority";
          authority = value;
          break;
        case ":path":
          if (path !== undefined) return "duplicate :path";
          path = value;
          break;
        case ":protocol":
          if (!allowProtocol) return ":protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL";
          if (protocol !== undefined) return "duplicate :protocol";
          protocol = value;
          break;
        default:
          return `pseudo-header ${name} is not allowed in a request`;
      }
      continue;
    }
    regular = true;
    if (!validFieldName(name)) return `invalid field name ${JSON.stringify(name)}`;
    if (!validFieldValue(value)) return `invalid value for ${name}`;
    if (isConnectionSpecific(name)) return `connection-specific field ${name}`;
    switch (name) {
      case "te":
        if (value.trim().toLowerCase() !== "trailers") return `te: ${value} (only "trailers" is allowed)`;
        continue;
      case "cookie":
        cookie = cookie === undefined ? value : `${cookie}; ${value}`;
        continue;
      case "content-length":
        length = contentLength(value, length);
        if (length === -2) return "invalid content-length";
        continue;
      case "host":
        if (host !== undefined) return "several host fields";
        host = value;
        continue;
      case "expect":
        // The gateway answers Expect itself (as the HTTP/1.1 codec does); never forwarded.
        if (value.toLowerCase() === "100-continue") expectContinue = true;
        continue;
    }
    headers.push(name, value);
  }
  if (cookie !== undefined) headers.push("cookie", cookie);
  if (method === undefined) return "missing :method";
  if (!allIn(method, TCHAR)) return "invalid :method";
  if (method === "CONNECT" && protocol === undefined) {
    // §8.5: only :method and :authority.
    if (scheme !== undefined || path !== undefined) return "CONNECT with :scheme or :path";
    if (!authority) return "CONNECT without :authority";
    if (!AUTHORITY.test(authority)) return "invalid :authority";
    return {
      method,
      scheme,
      authority,
      path: authority,
      protocol,
      headers,
      contentLength: length,
      expectContinue,
    };
  }
  if (protocol !== undefined && method !== "CONNECT") return ":protocol on a method other than CONNECT";
  if (scheme === undefined) return "missing :scheme";
  if (path === undefined) return "missing :path";
  if (path.length === 0) return "empty :path";
  if (!allIn(path, TARGET_OK)) return "invalid :path";
  if (path.charCodeAt(0) !== 0x2f && !(path === "*" && method === "OPTIONS")) return "invalid :path";
  const auth = authority ?? host ?? "";
  if (scheme === "http" || scheme === "https") {
    if (!auth) return "missing :authority and host";
    if (authority !== undefined && host !== undefined && authority.toLowerCase() !== host.toLowerCase()) {
      return ":authority and host differ";
    }
  } else return `unsupported :scheme ${scheme}`;
  if (!AUTHORITY.test(auth)) return "invalid :authority";
  if (protocol !== undefined && authority === undefined) return "extended CONNECT without :authority";
  return { method, scheme, authority: auth, path, protocol, headers, contentLength: length, expectContinue };
}

export interface H2ResponseHead {
  status: number;
  /** Regular fields as received (content-length kept: HEAD/304 metadata). */
  headers: HeaderList;
  contentLength: number;
}

/** Validates a response field section (§8.3.2). */
export function parseResponseFields(fields: HeaderField[]): H2ResponseHead | string {
  let status = -1;
  let regular = false;
  let length = -1;
  const headers: HeaderList = [];
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    const name = f[0];
    const value = f[1];
    if (name.charCodeAt(0) === 0x3a) {
      if (regular) return `pseudo-header ${name} after regular fields`;
      if (name !== ":status") return `pseudo-header ${name} is not allowed in a response`;
      if (status !== -1) return "duplicate :status";
      if (!/^[1-9][0-9][0-9]$/.test(value)) return `invalid :status ${JSON.stringify(value)}`;
      status = Number(value);
      continue;
    }
    regular = true;
    if (!validFieldName(name)) return `invalid field name ${JSON.stringify(name)}`;
    if (!validFieldValue(value)) return `invalid value for ${name}`;
    if (isConnectionSpecific(name)) return `connection-specific field ${name}`;
    if (name === "content-length") {
      length = contentLength(value, length);
      if (length === -2) return "invalid content-length";
    }
    headers.push(name, value);
  }
  if (status === -1) return "missing :status";
  return { status, headers, contentLength: length };
}

/** Validates trailers: no pseudo-headers (§8.1), valid fields, nothing connection-specific. */
export function parseTrailerFields(fields: HeaderField[]): HeaderList | string {
  const out: HeaderList = [];
  for (let i = 0; i < fields.length; i++) {
    const name = fields[i][0];
    const value = fields[i][1];
    if (name.charCodeAt(0) === 0x3a) return `pseudo-header ${name} in trailers`;
    if (!validFieldName(name)) return `invalid field name ${JSON.stringify(name)}`;
    if (!validFieldValue(value)) return `invalid value for ${name}`;
    if (isConnectionSpecific(name)) return `connection-specific field ${name}`;
    out.push(name, value);
  }
  return out;
}

/** Fields never sent on an HTTP/2 connection, whatever the exchange carries. */
function dropOutgoing(name: string): boolean {
  return isConnectionSpecific(name) || name === "te" || name === "host" || name === "http2-settings" ||
    name === "trailer" || name === "content-length";
}

/**
 * Response head for an HTTP/2 client. `bodyLength` becomes content-length when known; for
 * responses without content (HEAD, 204, 304) a content-length from the origin passes as metadata.
 */
export function responseFields(
  status: number,
  headers: HeaderList,
  bodyLength: number | undefined,
  noBody: boolean,
): HeaderField[] {
  const flat = responseFieldList(status, headers, bodyLength, noBody);
  const out: HeaderField[] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i], flat[i + 1]]);
  return out;
}

/** responseFields() as a flat list `[":status", "200", name, value, …]` (HpackEncoder.encodeFlat). */
export function responseFieldList(
  status: number,
  headers: HeaderList,
  bodyLength: number | undefined,
  noBody: boolean,
): string[] {
  const out: string[] = [":status", String(status)];
  for (let i = 0; i < headers.length; i += 2) {
    const name = lowerCaseName(headers[i]);
    if (name === "content-length") {
      if (noBody && bodyLength === undefined) out.push(name, headers[i + 1]);
      continue;
    }
    if (dropOutgoing(name) || name.charCodeAt(0) === 0x3a) continue;
    out.push(name, headers[i + 1]);
  }
  if (bodyLength !== undefined && !noBody) out.push("content-length", String(bodyLength));
  return out;
}

/**
 * Request head for an HTTP/2 upstream from the cleaned upstream header list (`host` first):
 * Host becomes :authority, cookies are split into separate fields, `te` survives only as trailers.
 */
export function requestFields(
  method: string,
  scheme: string,
  path: string,
  headers: HeaderList,
  bodyLength: number | undefined,
  protocol?: string,
): HeaderField[] {
  let authority = "";
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === "host") {
      authority = headers[i + 1];
      break;
    }
  }
  const out: HeaderField[] = [[":method", method]];
  if (method !== "CONNECT" || protocol !== undefined) {
    out.push([":scheme", scheme], [":authority", authority], [":path", path]);
    if (protocol !== undefined) out.push([":protocol", protocol]);
  } else {
    out.push([":authority", authority]);
  }
  let te = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = lowerCaseName(headers[i]);
    const value = headers[i + 1];
    if (name === "te") {
      if (/(^|,)\s*trailers\s*(;|,|$)/i.test(value)) te = true;
      continue;
    }
    if (dropOutgoing(name) || name.charCodeAt(0) === 0x3a) continue;
    if (name === "cookie") {
      for (const part of value.split(";")) {
        const c = part.trim();
        if (c) out.push(["cookie", c]);
      }
      continue;
    }
    out.push([name, value]);
  }
  if (te) out.push(["te", "trailers"]);
  if (bodyLength !== undefined) out.push(["content-length", String(bodyLength)]);
  return out;
}

/** Trailer fields for an HTTP/2 peer. */
export function trailerFields(trailers: HeaderList): HeaderField[] {
  const out: HeaderField[] = [];
  for (let i = 0; i < trailers.length; i += 2) {
    const name = trailers[i].toLowerCase();
    if (dropOutgoing(name) || name.charCodeAt(0) === 0x3a) continue;
    out.push([name, trailers[i + 1]]);
  }
  return out;
}
