/**
 * Header hygiene, in one place for every front×back cell (RFC 9110 §7.6): connection-specific
 * fields and those named in Connection are removed; X-Forwarded-For/-Proto/-Host and Via are
 * added; `te` survives only as `trailers`. Framing (Content-Length / Transfer-Encoding) is
 * decided by the writing codec from the Body, never copied blindly.
 */

import type { HeaderList, ProxyRequest } from "./exchange.ts";

export const VIA_TOKEN = "expressgateway";

/**
 * `name.toLowerCase()` for a field name, without the call when there is nothing to change.
 * The codecs lower-case names as they parse them, so nearly every name handed on is lower-case
 * already; the scan here is inlined into the caller, the native call is not, and per field of
 * every HTTP/2 message that showed in the profile.
 */
export function lowerCaseName(name: string): string {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return name.toLowerCase();
  }
  return name;
}

/** `<version> expressgateway` for the versions we speak, built once rather than per message. */
const VIA_FOR: Record<string, string> = {
  "1.0": `1.0 ${VIA_TOKEN}`,
  "1.1": `1.1 ${VIA_TOKEN}`,
  "2": `2 ${VIA_TOKEN}`,
  "3": `3 ${VIA_TOKEN}`,
};

function viaEntry(version: string): string {
  return VIA_FOR[version] ?? `${version} ${VIA_TOKEN}`;
}

const NONE: readonly string[] = Object.freeze([]);
const KEEP_ALIVE: readonly string[] = Object.freeze(["keep-alive"]);
const CLOSE: readonly string[] = Object.freeze(["close"]);

/**
 * Names listed in Connection fields (lower-cased). Usually empty or ["keep-alive"]/["close"]:
 * those answers are shared (the caller must not change them), so the usual message allocates
 * nothing here. Each response is asked twice (reuse of the upstream connection, hop-by-hop
 * removal) and each request once.
 */
export function connectionTokens(headers: HeaderList): readonly string[] {
  let out: string[] | undefined;
  let only: string | undefined; // the one Connection field, while there is just one
  let count = 0;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === "connection" && count++ === 0) only = headers[i + 1];
  }
  if (count === 0) return NONE;
  if (count === 1) {
    // The value as the peers send it, compared before any trim or case mapping.
    if (only === "keep-alive" || only === "Keep-Alive") return KEEP_ALIVE;
    if (only === "close" || only === "Close") return CLOSE;
  }
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== "connection") continue;
    const v = headers[i + 1];
    if (v.indexOf(",") < 0) {
      // One token (the usual "keep-alive" or "close"): no split array.
      const tok = v.trim().toLowerCase();
      if (tok) (out ??= []).push(tok);
      continue;
    }
    for (const t of v.split(",")) {
      const tok = t.trim().toLowerCase();
      if (tok) (out ??= []).push(tok);
    }
  }
  return out ?? NONE;
}

/**
 * Fields that describe one connection, never forwarded (RFC 9110 §7.6.1, RFC 9113 §8.2.2). A
 * switch, not a Set: asked for every field of every message, and a switch on interned names
 * needs no hash lookup (one paired bench_ab run said +2.8 % for h1-small; see
 * docs/benchmarks.md on how far a single run can be trusted).
 */
export function isHopByHop(name: string): boolean {
  switch (name) {
    case "connection":
    case "keep-alive":
    case "proxy-connection":
    case "transfer-encoding":
    case "te":
    case "trailer":
    case "upgrade":
    case "http2-settings":
      return true;
  }
  return false;
}

function isDropped(name: string, named: readonly string[]): boolean {
  return isHopByHop(name) || (named.length > 0 && named.includes(name));
}

export interface ForwardOptions {
  /** Overrides the Host sent upstream (per-backend `host_header`). */
  hostHeader?: string;
  /** Ask the upstream for trailers (`te: trailers`). */
  trailers: boolean;
}

/**
 * Headers for the upstream request: hop-by-hop removed, forwarding headers added. The
 * `host` field is included first (H1 upstreams need it; H2/H3 clients turn it into :authority).
 */
export function upstreamRequestHeaders(req: ProxyRequest, opts: ForwardOptions): HeaderList {
  const src = req.headers;
  const named = connectionTokens(src);
  const out: HeaderList = ["host", opts.hostHeader ?? req.authority];
  let xff: string | undefined;
  let via: string | undefined;
  for (let i = 0; i < src.length; i += 2) {
    const n = src[i];
    if (n === "host" || isDropped(n, named)) continue;
    if (n === "x-forwarded-for") {
      xff = xff === undefined ? src[i + 1] : `${xff}, ${src[i + 1]}`;
      continue;
    }
    if (n === "via") {
      via = via === undefined ? src[i + 1] : `${via}, ${src[i + 1]}`;
      continue;
    }
    if (n === "x-forwarded-proto" || n === "x-forwarded-host") continue;
    out.push(n, src[i + 1]);
  }
  out.push(
    "x-forwarded-for",
    xff === undefined ? req.client.ip : `${xff}, ${req.client.ip}`,
    "x-forwarded-proto",
    req.scheme,
    "x-forwarded-host",
    req.authority,
    "via",
    via === undefined ? viaEntry(req.version) : `${via}, ${viaEntry(req.version)}`,
  );
  if (opts.trailers) out.push("te", "trailers");
  return out;
}

/** Headers for the client: hop-by-hop removed, Via appended. */
export function downstreamResponseHeaders(headers: HeaderList, upstreamVersion: string): HeaderList {
  const named = connectionTokens(headers);
  const out: HeaderList = [];
  let via: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i];
    if (isDropped(n, named)) continue;
    if (n === "via") {
      via = via === undefined ? headers[i + 1] : `${via}, ${headers[i + 1]}`;
      continue;
    }
    out.push(n, headers[i + 1]);
  }
  out.push(
    "via",
    via === undefined ? viaEntry(upstreamVersion) : `${via}, ${viaEntry(upstreamVersion)}`,
  );
  return out;
}

/** Drops fields that must not appear in trailers (framing, routing, auth: RFC 9110 §6.5.1). */
export function sanitizeTrailers(trailers: HeaderList | undefined): HeaderList | undefined {
  if (!trailers) return undefined;
  const out: HeaderList = [];
  for (let i = 0; i < trailers.length; i += 2) {
    const n = trailers[i];
    if (
      isHopByHop(n) || n === "content-length" || n === "host" || n === "authorization" ||
      n === "content-type" || n === "cache-control" || n === "set-cookie"
    ) continue;
    out.push(n, trailers[i + 1]);
  }
  return out.length ? out : undefined;
}

export function isIdempotent(method: string): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS" || method === "PUT" ||
    method === "DELETE" || method === "TRACE";
}
