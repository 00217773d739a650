/**
 * Opening the backend side of a WebSocket, for both fronts and both kinds of backend:
 *
 *   client (front)             backend h1 (Upgrade)                backend h2/h2c (RFC 8441), h3 (RFC 9220)
 *   HTTP/1.1 GET + Upgrade     101 passed through as is            extended CONNECT; 200 → 101 with
 *                                                                  Sec-WebSocket-Accept from the client's key
 *   HTTP/2 or HTTP/3           GET + Upgrade with a key we make;   extended CONNECT; 200 passed through
 *   extended CONNECT           101 checked (accept) → 200
 *
 * An h3 backend gets an RFC 9220 extended CONNECT, the same exchange as RFC 8441 over HTTP/3.
 * An h2/h2c/h3 backend is asked only if its SETTINGS advertised ENABLE_CONNECT_PROTOCOL; otherwise
 * the client gets 502 (a backend that speaks only HTTP/2 or HTTP/3 cannot take an HTTP/1.1 Upgrade
 * either).
 * A backend that refuses (any answer but 101 / 2xx) has its answer relayed as a normal response.
 */

import { gatewayResponse, getHeader, type HeaderList, type ProxyRequest } from "../http/exchange.ts";
import {
  type ForwardTimeouts,
  h1Forward,
  type H1Pool,
  type UpstreamAnswer,
  UpstreamError,
} from "../http/h1/client.ts";
import type { H2Pool } from "../http/h2/client.ts";
import { h3Connect, type H3Pool } from "../http/h3/client.ts";
import { ErrorCode } from "../http/h2/frames.ts";
import { requestFields } from "../http/h2/headers.ts";
import { H2StreamTimeout } from "../http/h2/stream.ts";
import { downstreamResponseHeaders } from "../http/headers.ts";
import type { ByteStream } from "../http/exchange.ts";
import { acceptFor, clientKey, hasToken, newKey, validKey } from "./handshake.ts";
import { ConnStream, H2TunnelStream } from "./streams.ts";

export interface TunnelAnswer extends UpstreamAnswer {
  /** The backend accepted: the upstream side of the tunnel; `response` is final for the client. */
  tunnel?: ByteStream;
}

const EMPTY = new Uint8Array(0);

/**
 * Sends the WebSocket handshake to one backend. `headers` is the cleaned upstream header list
 * (`host` first, hop-by-hop fields already removed); `mode` says how the client asked.
 * Throws UpstreamError like the plain forwarders.
 */
export async function forwardWebSocket(
  backend: { h1: H1Pool; h2?: H2Pool; h3?: H3Pool },
  req: ProxyRequest,
  mode: "h1" | "connect",
  headers: HeaderList,
  t: ForwardTimeouts,
): Promise<TunnelAnswer> {
  const { h2, h3 } = backend;
  if (!h2 && !h3) return await viaH1(backend.h1, req, mode === "h1", headers, t);
  // A CONNECT-based exchange (RFC 8441 / RFC 9220) carries no Sec-WebSocket-Key: an HTTP/1.1
  // client's key is checked here and answered by us (Sec-WebSocket-Accept in `opened`).
  const key = mode === "h1" ? clientKey(req) : undefined;
  if (mode === "h1" && !validKey(key)) {
    return { response: gatewayResponse(400, "missing or invalid Sec-WebSocket-Key\n"), version: "1.1" };
  }
  return h3 ? await viaH3(h3, req, key, headers, t) : await viaH2(h2!, req, key, headers, t);
}

async function viaH1(
  pool: H1Pool,
  req: ProxyRequest,
  fromH1: boolean,
  headers: HeaderList,
  t: ForwardTimeouts,
): Promise<TunnelAnswer> {
  const hs = fromH1 ? headers.slice() : without(headers, "sec-websocket-key");
  const key = fromH1 ? undefined : newKey();
  if (key !== undefined) {
    hs.push("sec-websocket-key", key);
    if (getHeader(hs, "sec-websocket-version") === undefined) hs.push("sec-websocket-version", "13");
  }
  hs.push("connection", "upgrade", "upgrade", "websocket");
  const answer = await h1Forward(pool, { ...req, method: "GET", body: null }, hs, t, true);
  const up = answer.upgraded;
  if (!up) {
    if (!fromH1 && answer.response.status >= 200 && answer.response.status < 300) {
      // A 2xx to an extended CONNECT means "tunnel open": a backend that answered the Upgrade with
      // a plain 2xx must not make the client believe it has a WebSocket.
      answer.response.body?.cancel();
      throw new UpstreamError(
        `${pool.key} answered the WebSocket handshake without switching protocols`,
        502,
        false,
      );
    }
    return answer; // refused: a normal response
  }
  const res = answer.response;
  if (!hasToken(res.headers, "upgrade", "websocket")) {
    up.close();
    throw new UpstreamError(`${pool.key} switched to a protocol other than websocket`, 502, false);
  }
  if (key !== undefined && getHeader(res.headers, "sec-websocket-accept") !== acceptFor(key)) {
    up.close();
    throw new UpstreamError(`${pool.key} sent a wrong Sec-WebSocket-Accept`, 502, false);
  }
  const r = up.reader;
  const tunnel = new ConnStream(up.conn, r.buf.subarray(r.start, r.end), () => up.close());
  const out = downstreamResponseHeaders(res.headers, "1.1");
  if (fromH1) {
    out.push("connection", "upgrade", "upgrade", "websocket");
    return { response: { status: 101, headers: out, body: null }, version: "1.1", tunnel };
  }
  return {
    response: { status: 200, headers: without(out, "sec-websocket-accept"), body: null },
    version: "1.1",
    tunnel,
  };
}

/** RFC 8441. `key`: the HTTP/1.1 client's Sec-WebSocket-Key (undefined for an extended-CONNECT client). */
async function viaH2(
  pool: H2Pool,
  req: ProxyRequest,
  key: string | undefined,
  headers: HeaderList,
  t: ForwardTimeouts,
): Promise<TunnelAnswer> {
  const conn = await pool.acquire();
  if (!conn.peerConnectProtocol) {
    conn.unreserve();
    throw new UpstreamError(
      `${pool.key} does not support WebSockets over HTTP/2 (no SETTINGS_ENABLE_CONNECT_PROTOCOL)`,
      502,
      false,
    );
  }
  // RFC 8441 §5: no Sec-WebSocket-Key / -Accept over HTTP/2; Connection and Upgrade are dropped
  // by requestFields (connection-specific).
  const fields = requestFields(
    "CONNECT",
    pool.scheme,
    req.path,
    without(headers, "sec-websocket-key"),
    undefined,
    "websocket",
  );
  let s;
  try {
    s = conn.open(fields, false, "CONNECT");
  } catch (e) {
    conn.unreserve();
    throw new UpstreamError(`cannot open a stream to ${pool.key}: ${errText(e)}`, 502, true);
  }
  s.waitTimeoutMs = t.responseTimeoutMs;
  s.arm();
  let head;
  try {
    head = await s.headWait;
  } catch (e) {
    s.disarm();
    if (!s.closed) conn.resetStream(s, ErrorCode.CANCEL);
    if (e instanceof UpstreamError) throw e;
    if (e instanceof H2StreamTimeout) {
      throw new UpstreamError(`${pool.key} did not answer within ${t.responseTimeoutMs}ms`, 504, false);
    }
    throw new UpstreamError(`${pool.key}: ${errText(e)}`, 502, false);
  }
  if (head.status < 200 || head.status > 299) {
    // Refused: relay the answer; our side of the stream ends now (no tunnel will use it).
    conn.sendData(s, EMPTY, true).catch(() => {});
    const ended = s.recvEnded && s.queued === 0;
    return { response: { status: head.status, headers: head.headers, body: ended ? null : s }, version: "2" };
  }
  return opened(head.headers, key, "2", new H2TunnelStream(conn, s));
}

/** RFC 9220: the RFC 8441 exchange over HTTP/3 (no Sec-WebSocket-Key / -Accept on the wire). */
async function viaH3(
  pool: H3Pool,
  req: ProxyRequest,
  key: string | undefined,
  headers: HeaderList,
  t: ForwardTimeouts,
): Promise<TunnelAnswer> {
  const answer = await h3Connect(pool, req.path, without(headers, "sec-websocket-key"), "websocket", t);
  const head = answer.head;
  if (!answer.tunnel) {
    return { response: { status: head.status, headers: head.headers, body: answer.body }, version: "3" };
  }
  return opened(head.headers, key, "3", answer.tunnel);
}

/**
 * A CONNECT-based backend (RFC 8441 / RFC 9220) opened the tunnel: an HTTP/1.1 client (`key` set)
 * gets 101 with the Sec-WebSocket-Accept for its own key, an extended-CONNECT client 200.
 */
function opened(
  headers: HeaderList,
  key: string | undefined,
  version: string,
  tunnel: ByteStream,
): TunnelAnswer {
  const out = without(downstreamResponseHeaders(headers, version), "content-length");
  if (key !== undefined) {
    out.push("connection", "upgrade", "upgrade", "websocket", "sec-websocket-accept", acceptFor(key));
    return { response: { status: 101, headers: out, body: null }, version, tunnel };
  }
  return { response: { status: 200, headers: out, body: null }, version, tunnel };
}

function without(headers: HeaderList, name: string): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i] !== name) out.push(headers[i], headers[i + 1]);
  return out;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
