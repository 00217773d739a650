/**
 * The WebSocket opening handshake as the gateway sees it: recognizing an upgrade request on
 * every front (RFC 6455 §4.1 over HTTP/1.1, extended CONNECT: RFC 8441 over HTTP/2, RFC 9220 over
 * HTTP/3), and the key/accept pair it needs when it bridges them (an HTTP/2 or HTTP/3 client has no Sec-WebSocket-Key,
 * an HTTP/1.1 client expects a Sec-WebSocket-Accept from an HTTP/2 backend that sends none).
 * Everything else — Sec-WebSocket-Protocol, -Extensions, -Version, Origin — passes through
 * untouched, so subprotocols and extensions are negotiated end to end.
 */

import { createHash } from "node:crypto";
import { getHeader, type HeaderList, type ProxyRequest } from "../http/exchange.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (§4.2.2). */
export function acceptFor(key: string): string {
  return createHash("sha1").update(key + GUID).digest("base64");
}

/** A fresh Sec-WebSocket-Key: 16 random bytes, base64 (§4.1). */
export function newKey(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...b));
}

/** A Sec-WebSocket-Key a server would accept: base64 of exactly 16 bytes. */
export function validKey(key: string | undefined): key is string {
  return key !== undefined && /^[A-Za-z0-9+/]{21}[AQgw]==$/.test(key);
}

/** Does a comma-separated field (all its lines) list `token`, case-insensitively? */
export function hasToken(headers: HeaderList, name: string, token: string): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== name) continue;
    for (const t of headers[i + 1].split(",")) if (t.trim().toLowerCase() === token) return true;
  }
  return false;
}

/**
 * How a request asks for a WebSocket: "h1" (GET + Connection: upgrade + Upgrade: websocket on an
 * HTTP/1.1 front), "connect" (extended CONNECT with :protocol = websocket on HTTP/2 or HTTP/3), else
 * undefined. An Upgrade on anything but an HTTP/1.1 GET is not a WebSocket handshake (§4.1) and
 * is dropped as a hop-by-hop field, as before.
 */
export function webSocketRequest(req: ProxyRequest): "h1" | "connect" | undefined {
  if (req.method === "CONNECT") return req.protocol === "websocket" ? "connect" : undefined;
  if (req.version !== "1.1" || req.method !== "GET") return undefined;
  return hasToken(req.headers, "connection", "upgrade") && hasToken(req.headers, "upgrade", "websocket")
    ? "h1"
    : undefined;
}

/** The client's Sec-WebSocket-Key, when it sent one. */
export function clientKey(req: ProxyRequest): string | undefined {
  return getHeader(req.headers, "sec-websocket-key");
}
