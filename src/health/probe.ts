/**
 * Active probes: one bounded attempt each, on a fresh connection (never a pooled one, so a
 * probe measures what a new request would meet), over the backend's own TLS settings and
 * protocol (h2 / h2c backends are probed over HTTP/2: an h2c backend may not speak HTTP/1.1;
 * h3 backends over HTTP/3 on a QUIC connection of the probe's own).
 *   http: a request (HTTP/1.1 with `Connection: close`, or one HTTP/2 stream), status in the
 *         expected ranges, optional body substring (first 64 KiB only);
 *   grpc: grpc.health.v1.Health/Check over HTTP/2: grpc-status 0 and status SERVING;
 *   tcp:  the connect (and TLS handshake) succeeds; for an h3 backend, the QUIC handshake.
 */

import { type Body, bytesBody, type HeaderList, type ProxyRequest } from "../http/exchange.ts";
import { concat } from "../http/h1/bytes.ts";
import { findHeadEnd, newScanState, parseResponseHead } from "../http/h1/parse.ts";
import { ConnReader } from "../http/h1/reader.ts";
import { h2Forward, H2Pool } from "../http/h2/client.ts";
import { h3Forward, H3Pool, type H3Target } from "../http/h3/client.ts";
import { QuicClientEndpoint } from "../quic/engine.ts";
import { type ConnectTarget, openConnection } from "../net/connect.ts";
import { HEALTH_CHECK_PATH } from "../grpc/health.ts";
import {
  decodeHealthResponse,
  encodeHealthRequest,
  frameMessage,
  ServingStatus,
  unframeMessage,
} from "../grpc/messages.ts";

export interface HttpProbeSpec {
  kind: "http";
  method: string;
  path: string;
  host: string;
  expected: Array<[number, number]>;
  bodyContains?: string;
  /** Probe over HTTP/2 (h2 / h2c backends). */
  h2?: boolean;
}

export interface GrpcProbeSpec {
  kind: "grpc";
  /** HealthCheckRequest.service ("" = the server as a whole). */
  service: string;
  authority: string;
}

export type ProbeSpec = HttpProbeSpec | GrpcProbeSpec | { kind: "tcp" };

export interface ProbeResult {
  ok: boolean;
  detail: string;
}

const MAX_PROBE_BODY = 64 * 1024;

export async function runProbe(
  target: ConnectTarget,
  spec: ProbeSpec,
  timeoutMs: number,
): Promise<ProbeResult> {
  if (spec.kind === "grpc" || (spec.kind === "http" && spec.h2)) {
    return await h2Probe(target, spec, timeoutMs);
  }
  const deadline = performance.now() + timeoutMs;
  let conn: Deno.Conn;
  try {
    conn = await openConnection(target, timeoutMs);
  } catch (e) {
    return { ok: false, detail: e instanceof Error ? e.message : String(e) };
  }
  if (spec.kind === "tcp") {
    closeQuietly(conn);
    return { ok: true, detail: "connected" };
  }
  const timer = setTimeout(() => closeQuietly(conn), Math.max(1, deadline - performance.now()));
  try {
    const req =
      `${spec.method} ${spec.path} HTTP/1.1\r\nhost: ${spec.host}\r\nuser-agent: expressgateway-health\r\n` +
      `accept: */*\r\nconnection: close\r\n\r\n`;
    const bytes = new TextEncoder().encode(req);
    let off = 0;
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    const r = new ConnReader(conn);
    const st = newScanState();
    let len: number;
    for (;;) {
      len = findHeadEnd(r.buf, r.start, r.end, st, { maxLine: 8192, maxHead: 65536 }, false);
      if (len >= 0) break;
      if (!(await r.fill())) return { ok: false, detail: "connection closed before a response" };
    }
    const head = parseResponseHead(r.buf, r.start + st.skip, r.start + len);
    r.start += len;
    const wanted = spec.bodyContains;
    if (wanted === undefined || !inRange(spec, head.status)) return httpVerdict(spec, head.status, "");
    // Connection: close lets us read until EOF, bounded; chunk framing bytes may sit in
    // between, which is harmless for a substring search over a small body.
    let body = new TextDecoder().decode(r.buf.subarray(r.start, r.end));
    while (body.length < MAX_PROBE_BODY && !body.includes(wanted)) {
      r.start = r.end;
      if (!(await r.fill())) break;
      body += new TextDecoder().decode(r.buf.subarray(r.start, r.end));
    }
    return httpVerdict(spec, head.status, body);
  } catch (e) {
    const late = performance.now() >= deadline;
    return {
      ok: false,
      detail: late ? `timed out after ${timeoutMs}ms` : e instanceof Error ? e.message : String(e),
    };
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

const PROBE_CLIENT = { ip: "127.0.0.1", port: 0, listener: "health", tls: false } as const;
const USER_AGENT = "expressgateway-health";

/** One HTTP/2 exchange on a one-connection pool of its own, closed afterwards (or at the timeout). */
function h2Probe(
  target: ConnectTarget,
  spec: HttpProbeSpec | GrpcProbeSpec,
  timeoutMs: number,
): Promise<ProbeResult> {
  const pool = new H2Pool("health-probe", target, probePoolLimits(timeoutMs));
  return onOwnPool(pool, timeoutMs, async () => {
    const grpc = spec.kind === "grpc";
    const authority = grpc ? spec.authority : spec.host;
    const on = { authority, version: "2", scheme: target.tls ? "https" : "http", trailers: true } as const;
    const req = grpc
      ? probeRequest({
        ...on,
        method: "POST",
        path: HEALTH_CHECK_PATH,
        extra: ["content-type", "application/grpc", "te", "trailers"],
        body: bytesBody(frameMessage(encodeHealthRequest(spec.service))),
      })
      : probeRequest({ ...on, method: spec.method, path: spec.path });
    const answer = await h2Forward(pool, req, req.headers, probeTimeouts(timeoutMs));
    const res = answer.response;
    const body = await probeBody(res.body);
    if (!grpc) return httpVerdict(spec, res.status, new TextDecoder().decode(body), "h2");
    if (res.status !== 200) return { ok: false, detail: `HTTP status ${res.status}` };
    const trailers = res.body?.trailers() ?? res.headers;
    const field = (name: string) => {
      for (let i = 0; i < trailers.length; i += 2) if (trailers[i] === name) return trailers[i + 1];
      return undefined;
    };
    const gs = field("grpc-status");
    if (gs !== "0") {
      const msg = field("grpc-message");
      return {
        ok: false,
        detail: `grpc-status ${gs ?? "missing"}${msg ? `: ${decodeURIComponent(msg)}` : ""}`,
      };
    }
    const m = unframeMessage(body);
    const status = m && !m.compressed ? decodeHealthResponse(m.msg) : undefined;
    if (status === ServingStatus.SERVING) return { ok: true, detail: "SERVING" };
    const names = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
    return {
      ok: false,
      detail: status === undefined ? "malformed HealthCheckResponse" : names[status] ?? `status ${status}`,
    };
  });
}

/**
 * The UDP sockets every h3 probe connects from (IPv4, IPv6), made once: a connection per probe,
 * not an endpoint per probe. Deno frees a closed QuicEndpoint's socket only when the object is
 * garbage-collected (measured: 20 opened and closed → 20 sockets held until a GC), which for an
 * idle gateway probing every 2 s could pile up descriptors.
 */
const probeEndpoints = new Map<string, QuicClientEndpoint>();

function probeEndpoint(target: H3Target): QuicClientEndpoint {
  const family = target.hostname.includes(":") ? "::" : "0.0.0.0";
  let e = probeEndpoints.get(family);
  if (!e) probeEndpoints.set(family, e = new QuicClientEndpoint(family));
  return e;
}

/**
 * An h3 backend: one HTTP/3 exchange (kind http) or just the QUIC handshake with our SETTINGS
 * sent (kind tcp) on a one-connection pool of its own, closed afterwards (or at the timeout).
 */
export function h3Probe(
  target: H3Target,
  spec: ProbeSpec,
  timeoutMs: number,
): Promise<ProbeResult> {
  if (spec.kind === "grpc") return Promise.resolve({ ok: false, detail: "gRPC health checks need HTTP/2" });
  const pool = new H3Pool("health-probe", target, probePoolLimits(timeoutMs), probeEndpoint(target));
  return onOwnPool(pool, timeoutMs, async () => {
    if (spec.kind === "tcp") {
      const conn = await pool.acquire();
      conn.release();
      return { ok: true, detail: "QUIC handshake completed" };
    }
    const req = probeRequest({
      method: spec.method,
      authority: spec.host,
      path: spec.path,
      version: "3",
      scheme: "https",
      trailers: false,
    });
    const answer = await h3Forward(pool, req, req.headers, probeTimeouts(timeoutMs));
    const body = await probeBody(answer.response.body);
    return httpVerdict(spec, answer.response.status, new TextDecoder().decode(body), "h3");
  });
}

/** A one-connection pool per probe: nothing kept idle, the probe's timeout for everything. */
function probePoolLimits(timeoutMs: number) {
  return { maxIdle: 0, maxTotal: 1, idleTimeoutMs: timeoutMs, connectTimeoutMs: timeoutMs };
}

/** The probe's timeout for the answer, and the response head cap. */
function probeTimeouts(timeoutMs: number) {
  return { responseTimeoutMs: timeoutMs, maxResponseHead: 65536 };
}

/** A probe's request: host, our user-agent, then `extra` fields (by default an accept-anything field). */
function probeRequest(r: {
  method: string;
  authority: string;
  path: string;
  version: ProxyRequest["version"];
  scheme: ProxyRequest["scheme"];
  trailers: boolean;
  extra?: HeaderList;
  body?: Body;
}): ProxyRequest {
  return {
    method: r.method,
    scheme: r.scheme,
    authority: r.authority,
    path: r.path,
    headers: ["host", r.authority, "user-agent", USER_AGENT, ...(r.extra ?? ["accept", "*/*"])],
    body: r.body ?? null,
    version: r.version,
    acceptsTrailers: r.trailers,
    client: PROBE_CLIENT,
  };
}

/**
 * Runs one probe on `pool`, which is aborted at the timeout and afterwards whatever happened;
 * a failure becomes a failed result ("timed out after …" when the timeout caused it).
 */
async function onOwnPool(
  pool: { abort(): void },
  timeoutMs: number,
  probe: () => Promise<ProbeResult>,
): Promise<ProbeResult> {
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    pool.abort();
  }, timeoutMs);
  try {
    return await probe();
  } catch (e) {
    return {
      ok: false,
      detail: late ? `timed out after ${timeoutMs}ms` : e instanceof Error ? e.message : String(e),
    };
  } finally {
    clearTimeout(timer);
    pool.abort();
  }
}

/** A response body up to MAX_PROBE_BODY bytes (the rest is cancelled). */
async function probeBody(b: Body | null): Promise<Uint8Array> {
  let body: Uint8Array = new Uint8Array(0);
  if (!b) return body;
  for (;;) {
    const c = await b.read();
    if (c === null) break;
    if (body.length + c.length > MAX_PROBE_BODY) {
      b.cancel();
      break;
    }
    body = concat(body, c);
  }
  return body;
}

function inRange(spec: HttpProbeSpec, status: number): boolean {
  return spec.expected.some(([lo, hi]) => status >= lo && status <= hi);
}

/**
 * An http probe's answer judged: status in range, then the body substring if one is asked for.
 * `via` names the protocol in the detail ("h2", "h3"; none for HTTP/1.1).
 */
function httpVerdict(spec: HttpProbeSpec, status: number, body: string, via?: string): ProbeResult {
  const what = via === undefined ? `status ${status}` : `status ${status} (${via})`;
  if (!inRange(spec, status)) return { ok: false, detail: what };
  if (spec.bodyContains === undefined) return { ok: true, detail: what };
  return body.includes(spec.bodyContains)
    ? { ok: true, detail: `${what}, body matched` }
    : { ok: false, detail: `${what}, body lacks ${JSON.stringify(spec.bodyContains)}` };
}

/** "200-399,404" → [[200,399],[404,404]]; undefined when malformed. */
export function parseStatusRanges(text: string): Array<[number, number]> | undefined {
  const out: Array<[number, number]> = [];
  for (const part of text.split(",")) {
    const m = /^\s*(\d{3})(?:\s*-\s*(\d{3}))?\s*$/.exec(part);
    if (!m) return undefined;
    const lo = Number(m[1]), hi = Number(m[2] ?? m[1]);
    if (lo < 100 || hi > 599 || lo > hi) return undefined;
    out.push([lo, hi]);
  }
  return out.length ? out : undefined;
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* already closed */ }
}
