/**
 * The proxy as a short list of phases (after Pingora's proxy_trait): route → pick → forward
 * → respond → log. Protocol-neutral: it sees ProxyRequest/ProxyResponse only. The state it
 * reads (routes, pools, pickers) is one immutable object swapped by reloads; a request reads
 * the reference once, so it never sees a mix of two snapshots.
 */

import { observeLatency } from "../balancer/ewma.ts";
import type { PickRequest } from "../balancer/picker.ts";
import { selectEndpoint } from "../balancer/select.ts";
import { affinityToken } from "../balancer/session_affinity.ts";
import type { ConfigSnapshot, ListenerConfig } from "../config/types.ts";
import type { Logger } from "../observability/log.ts";
import type { DataPlaneMetrics } from "../observability/gateway_metrics.ts";
import type { BackendRuntime, PoolRuntime } from "../runtime/backends.ts";
import {
  type Body,
  gatewayResponse,
  getHeader,
  type HeaderList,
  type ProxyRequest,
  type ProxyResponse,
} from "./exchange.ts";
import { h1Forward, UpstreamError } from "./h1/client.ts";
import { h2Forward } from "./h2/client.ts";
import { h3Forward } from "./h3/client.ts";
import type { H1Handler, RequestRecord } from "./h1/server.ts";
import {
  downstreamResponseHeaders,
  isIdempotent,
  sanitizeTrailers,
  upstreamRequestHeaders,
} from "./headers.ts";
import { Router } from "./router.ts";
import { turnNow } from "../net/clock.ts";
import type { SharedCounters } from "../runtime/shared_counters.ts";
import { GrpcDeadlineBody } from "../grpc/deadline.ts";
import { answerHealthCheck, HEALTH_CHECK_PATH } from "../grpc/health.ts";
import {
  encodeGrpcMessage,
  grpcErrorResponse,
  GrpcStatus,
  grpcStatusForHttp,
  isGrpcRequest,
} from "../grpc/status.ts";
import { clampGrpcTimeout, formatGrpcTimeout } from "../grpc/timeout.ts";
import { webSocketRequest } from "../websocket/handshake.ts";
import { Tunnel, type TunnelRegistry } from "../websocket/tunnel.ts";
import { forwardWebSocket, type TunnelAnswer } from "../websocket/upstream.ts";
import { openConnectTunnel } from "../websocket/connect.ts";

/** Everything a request needs from the current snapshot, swapped as one reference. */
export interface ProxyState {
  readonly snapshot: ConfigSnapshot;
  readonly routers: ReadonlyMap<string, Router>;
  readonly pools: ReadonlyMap<string, PoolRuntime>;
}

export function buildRouters(snapshot: ConfigSnapshot): Map<string, Router> {
  return new Map(snapshot.config.listeners.map((l) => [l.name, new Router(l.name, l.routes)]));
}

/** Health as the proxy sees it: a verdict per backend, and where live results are reported. */
export interface HealthView {
  isHealthy(key: string): boolean;
  /** A live exchange on `key` ended with `status` (0: no response — connect failure or timeout). */
  observe(key: string, status: number): void;
}

export const ALWAYS_HEALTHY: HealthView = { isHealthy: () => true, observe: () => {} };

export interface ProxyContext {
  state(): ProxyState;
  readonly metrics: DataPlaneMetrics;
  readonly log: Logger;
  health: HealthView;
  /** Caps shared by every worker of the process (in-flight requests, connections). */
  readonly counters: SharedCounters;
  /** Requests in flight in this isolate (for its gauge; the cap uses `counters`). */
  inFlight: number;
  /** Open tunnels (WebSocket, CONNECT) of this data plane: metrics, drain, reload. */
  readonly tunnels?: TunnelRegistry;
}

const MAX_ATTEMPTS = 2;

export class ListenerProxy implements H1Handler {
  readonly #requestsByKey = new Map<string, { inc(n?: number): void }>();
  #lastRequests: { route: string; pool: string; status: string; counter?: { inc(n?: number): void } } = {
    route: "",
    pool: "",
    status: "",
  };
  readonly #events = new Map<string, { inc(n?: number): void }>();
  /** This listener's own series, looked up once (listener series are never removed). */
  #listenerSeries:
    | {
      seconds: { observe(v: number): void };
      received: { inc(n: number): void };
      sent: { inc(n: number): void };
    }
    | undefined;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly listener: ListenerConfig,
    /** `alt-svc` value added to every response (alt_svc_h3: the quic listener's port). */
    private readonly altSvc?: string,
  ) {}

  handle(req: ProxyRequest, rec: RequestRecord): Promise<ProxyResponse> {
    const res = isGrpcRequest(req.headers) ? this.#handleGrpc(req, rec) : this.#handle(req, rec);
    // Without alt-svc the answer passes through as is: no extra promise per request.
    if (this.altSvc === undefined) return res;
    return res.then((r) => {
      if (!r.upgrade) r.headers.push("alt-svc", this.altSvc!);
      return r;
    });
  }

  /**
   * gRPC (docs/CONFIG.md, gRPC): refused on HTTP/1.x, Health/Check answered here when enabled,
   * the deadline clamped to grpc_max_timeout and enforced, and the gateway's own errors turned
   * into Trailers-Only gRPC errors.
   */
  async #handleGrpc(req: ProxyRequest, rec: RequestRecord): Promise<ProxyResponse> {
    const l = this.listener;
    if (req.version === "1.0" || req.version === "1.1") {
      rec.error = "grpc_over_http1";
      this.event("grpc_over_http1");
      const why =
        "gRPC needs HTTP/2: use h2c prior knowledge on http listeners or ALPN h2 on https listeners";
      return gatewayResponse(505, `${why}\n`, undefined, [
        "grpc-status",
        String(GrpcStatus.UNAVAILABLE),
        "grpc-message",
        encodeGrpcMessage(why),
      ]);
    }
    if (l.grpc_health && req.method === "POST" && req.path === HEALTH_CHECK_PATH) {
      rec.route = "grpc_health";
      return await answerHealthCheck(req, l, this.ctx.state(), this.ctx.health);
    }
    let deadline: number | undefined;
    if (l.grpc_max_timeout !== undefined) {
      const { ms, rewrite } = clampGrpcTimeout(getHeader(req.headers, "grpc-timeout"), l.grpc_max_timeout);
      if (rewrite) setHeader(req.headers, "grpc-timeout", formatGrpcTimeout(ms));
      deadline = performance.now() + ms;
    }
    const res = await this.#handle(req, rec, deadline);
    if (rec.error === undefined || res.body instanceof RelayBody) return res;
    // An answer of the gateway itself: say it in gRPC.
    res.body?.cancel();
    const code = rec.error === "deadline_exceeded"
      ? GrpcStatus.DEADLINE_EXCEEDED
      : grpcStatusForHttp(res.status);
    return grpcErrorResponse(code, `${GRPC_REASONS[rec.error] ?? rec.error} (gateway, HTTP ${res.status})`);
  }

  /**
   * Not async: the forward path hands on #forward's promise, one async layer less per request
   * (a promise, a generator and a resumption). A synchronous failure becomes a rejection as it
   * would in an async function.
   */
  #handle(req: ProxyRequest, rec: RequestRecord, deadline?: number): Promise<ProxyResponse> {
    try {
      const res = this.#route(req, rec, deadline);
      return res instanceof Promise ? res : Promise.resolve(res);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #route(req: ProxyRequest, rec: RequestRecord, deadline?: number): ProxyResponse | Promise<ProxyResponse> {
    const ctx = this.ctx;
    if (req.method === "CONNECT" && req.protocol === undefined) return this.#connect(req, rec);
    // An extended CONNECT (RFC 8441 over HTTP/2, RFC 9220 over HTTP/3) or an HTTP/1.1 Upgrade.
    const ws = webSocketRequest(req);
    if (req.method === "CONNECT" && ws === undefined) {
      rec.error = "unsupported_protocol";
      this.event("unsupported_protocol");
      return gatewayResponse(501, "this extended CONNECT protocol is not supported\n");
    }
    const state = ctx.state();
    const route = state.routers.get(this.listener.name)?.match(req.authority, req.path);
    if (!route) {
      rec.error = "no_route";
      return gatewayResponse(404, "no route for this host and path\n");
    }
    rec.route = route.id;
    const rc = route.config;
    if (getHeader(req.headers, "early-data") === "1" && !(rc.early_data && isSafeMethod(req.method))) {
      // RFC 8470: replayable 0-RTT data (flagged by the H3 codec or an intermediary) is forwarded
      // only where the route allows it and the method is safe; the client retries after its handshake.
      rec.error = "too_early";
      this.event("too_early");
      return gatewayResponse(425, "too early: retry after the TLS handshake\n");
    }
    if (rc.respond) {
      // A 2xx to an extended CONNECT would open a tunnel to nowhere.
      if (ws === "connect" && rc.respond.status < 300) return webSocketRefused(rec);
      return gatewayResponse(rc.respond.status, rc.respond.body, rc.respond.content_type);
    }
    const pool = state.pools.get(rc.pool!);
    if (!pool) {
      rec.error = "no_pool";
      return gatewayResponse(503, "pool unavailable\n");
    }
    rec.pool = pool.name;
    if (ws && !pool.config.websocket) return webSocketRefused(rec);
    if (!ctx.counters.takeInFlight(state.snapshot.config.runtime.max_in_flight)) {
      rec.error = "in_flight_cap";
      ctx.metrics.guardRejections.with(this.listener.name, "in_flight_cap").inc();
      return gatewayResponse(503, "gateway is at its in-flight request limit\n", undefined, [
        "retry-after",
        "1",
      ]);
    }
    ctx.inFlight++;
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        ctx.inFlight--;
        ctx.counters.releaseInFlight();
      }
    };
    return this.#forward(req, rec, pool, ws, deadline, release);
  }

  async #forward(
    req: ProxyRequest,
    rec: RequestRecord,
    pool: PoolRuntime,
    ws: "h1" | "connect" | undefined,
    /** gRPC deadline (performance.now() ms): bounds the wait for the head and the body. */
    deadline: number | undefined,
    /** Frees the request's in-flight slot: when a relayed body ends, else when this returns or throws. */
    release: () => void,
  ): Promise<ProxyResponse> {
    const ctx = this.ctx;
    const pickReq = pickRequestOf(req);
    let exclude: Set<string> | undefined;
    let lastError: UpstreamError | undefined;
    let relayed = false;
    try {
      for (let attempt = 0;; attempt++) {
        const sel = selectEndpoint(pool.picker, pickReq, {
          isHealthy: ctx.health.isHealthy,
          exclude,
          panicThreshold: pool.config.panic_threshold / 100,
        });
        if (!sel) {
          if (lastError) {
            // The retry found no other backend: the client gets the failure that happened.
            rec.error = lastError.status === 504 ? "upstream_timeout" : "upstream_failed";
            return gatewayResponse(
              lastError.status,
              lastError.status === 504 ? "upstream timed out\n" : "upstream failed\n",
            );
          }
          rec.error = "no_backend";
          return gatewayResponse(503, "no backend available\n", undefined, ["retry-after", "1"]);
        }
        const backend = pool.backends.get(sel.endpoint.key)!;
        rec.backend = backend.config.address;
        let byDeadline = false;
        const stats = backend.stats;
        stats.inFlight++;
        // Latency as measured here feeds EWMA and a histogram in seconds: the turn's clock will do.
        const t0 = turnNow();
        try {
          const headers = upstreamRequestHeaders(req, {
            hostHeader: backend.config.host_header,
            trailers: ws === undefined && req.acceptsTrailers,
          });
          const left = deadline === undefined
            ? Infinity
            : Math.max(1, Math.ceil(deadline - performance.now()));
          byDeadline = left < pool.config.response_timeout;
          const timeouts = {
            responseTimeoutMs: byDeadline ? left : pool.config.response_timeout,
            maxResponseHead: 64 * 1024,
            holdMs: pool.config.response_timeout,
          };
          const answer: TunnelAnswer = ws
            ? await forwardWebSocket(backend, req, ws, headers, timeouts)
            : backend.h3
            ? await h3Forward(backend.h3, req, headers, timeouts)
            : backend.h2
            ? await h2Forward(backend.h2, req, headers, timeouts)
            : await h1Forward(backend.h1, req, headers, timeouts);
          const ms = turnNow() - t0;
          rec.upstreamMs = ms;
          observeLatency(stats, ms, t0 + ms, pool.config.ewma_decay);
          (backend.latency ??= ctx.metrics.upstreamSeconds.with(pool.name, backend.config.address)).observe(
            ms / 1000,
          );
          const res = answer.response;
          ctx.health.observe(backend.key, res.status);
          if (answer.tunnel) {
            // The handshake succeeded: `res` is final. The backend counts the tunnel as in flight
            // until it ends (least_request & co. see long-lived WebSockets as load).
            if (pool.config.algorithm === "session_affinity") {
              addAffinityCookie(res.headers, pickReq, backend, pool.config.affinity_cookie);
            }
            res.upgrade = new Tunnel(answer.tunnel, {
              kind: "websocket",
              listener: this.listener.name,
              idleTimeoutMs: pool.config.tunnel_idle_timeout,
              maxLifetimeMs: pool.config.tunnel_max_lifetime,
              backendKey: backend.key,
              onEnd: () => stats.inFlight--,
            }, ctx.tunnels);
            return res;
          }
          res.headers = downstreamResponseHeaders(res.headers, answer.version);
          if (pool.config.algorithm === "session_affinity") {
            addAffinityCookie(res.headers, pickReq, backend, pool.config.affinity_cookie);
          }
          if (res.body) {
            const body = deadline === undefined
              ? res.body
              : new GrpcDeadlineBody(res.body, deadline, () => this.event("grpc_deadline_exceeded"));
            const relay = new RelayBody(body, req.acceptsTrailers);
            relay.onEnd(() => {
              stats.inFlight--;
              release();
            });
            relayed = true;
            res.body = relay;
          } else stats.inFlight--;
          return res;
        } catch (e) {
          stats.inFlight--;
          if (!(e instanceof UpstreamError)) {
            // The client's request body failed (timeout, too large, bad framing): the server
            // codec reports that itself.
            rec.error = "request_body_failed";
            return gatewayResponse(400, "request body failed\n");
          }
          const kind = e.staleConnection
            ? "stale_keepalive"
            : e.status === 504
            ? "timeout"
            : e.beforeRequest
            ? "connect"
            : "protocol";
          // A stale pooled connection says nothing about the backend's health.
          if (!e.staleConnection) ctx.health.observe(backend.key, 0);
          ctx.metrics.upstreamErrors.with(pool.name, backend.config.address, kind).inc();
          ctx.log.warn("upstream failed", {
            pool: pool.name,
            backend: backend.config.address,
            error: e.message,
            attempt,
          });
          if (
            e.beforeRequest && attempt + 1 < MAX_ATTEMPTS && (ws !== undefined || isIdempotent(req.method)) &&
            (!req.body || req.body.received === 0)
          ) {
            lastError = e;
            if (e.staleConnection) {
              // The backend closed an idle keep-alive connection: retry it on a fresh one.
              backend.h1.flushIdle();
            } else (exclude ??= new Set()).add(backend.key);
            ctx.metrics.retries.with(pool.name).inc();
            continue;
          }
          rec.error = kind === "timeout"
            ? (byDeadline ? "deadline_exceeded" : "upstream_timeout")
            : "upstream_failed";
          return gatewayResponse(e.status, e.status === 504 ? "upstream timed out\n" : "upstream failed\n");
        }
      }
    } finally {
      if (!relayed) release(); // answered by the gateway itself, or failed: nothing left in flight
    }
  }

  /** Plain `CONNECT host:port` (RFC 9110 §9.3.6): a TCP tunnel, only to what the listener allows. */
  async #connect(req: ProxyRequest, rec: RequestRecord): Promise<ProxyResponse> {
    const cfg = this.listener.connect_tunnels;
    if (!cfg) {
      rec.error = "connect_not_enabled";
      this.event("connect_not_enabled");
      return gatewayResponse(405, "CONNECT is not enabled on this listener\n");
    }
    if (getHeader(req.headers, "early-data") === "1") {
      // RFC 8470: a CONNECT in replayable 0-RTT data (HTTP/3) is never safe to act on.
      rec.error = "too_early";
      this.event("too_early");
      return gatewayResponse(425, "too early: retry after the TLS handshake\n");
    }
    const opened = await openConnectTunnel(req.authority, cfg);
    if (typeof opened === "string") {
      rec.error = opened;
      this.event(opened);
      return opened === "connect_denied"
        ? gatewayResponse(403, "CONNECT to this destination is not allowed\n")
        : gatewayResponse(502, "could not connect to the destination\n");
    }
    rec.backend = opened.target;
    const upgrade = new Tunnel(opened.stream, {
      kind: "connect",
      listener: this.listener.name,
      idleTimeoutMs: cfg.idle_timeout,
      maxLifetimeMs: cfg.max_lifetime,
    }, this.ctx.tunnels);
    return { status: 200, headers: [], body: null, upgrade };
  }

  complete(rec: RequestRecord): void {
    const ctx = this.ctx;
    const listener = this.listener.name;
    const status = STATUS_CLASS[Math.floor(rec.status / 100)] ?? "none";
    const route = rec.route ?? "none";
    const pool = rec.pool ?? "none";
    // The same series as last time (the common case) without building the key.
    const last = this.#lastRequests;
    let c = last.route === route && last.pool === pool && last.status === status ? last.counter : undefined;
    if (!c) {
      const key = `${route}\u0000${pool}\u0000${status}`;
      c = this.#requestsByKey.get(key);
      if (!c) {
        c = ctx.metrics.requests.with(listener, route, pool, status);
        this.#requestsByKey.set(key, c);
      }
      this.#lastRequests = { route, pool, status, counter: c };
    }
    c.inc();
    const totalMs = (rec.end ?? turnNow()) - rec.start;
    const series = this.#listenerSeries ??= {
      seconds: ctx.metrics.requestSeconds.with(listener),
      received: ctx.metrics.bytesReceived.with(listener),
      sent: ctx.metrics.bytesSent.with(listener),
    };
    series.seconds.observe(totalMs / 1000);
    series.received.inc(rec.bytesIn);
    series.sent.inc(rec.bytesOut);
    if (ctx.state().snapshot.config.observability.access_log) {
      ctx.log.access({
        listener,
        route: rec.route,
        pool: rec.pool,
        backend: rec.backend,
        method: rec.method,
        authority: rec.authority,
        path: rec.path,
        version: rec.version,
        status: rec.status,
        bytes_in: rec.bytesIn,
        bytes_out: rec.bytesOut,
        upstream_ms: rec.upstreamMs === undefined ? undefined : round(rec.upstreamMs),
        total_ms: round(totalMs),
        error: rec.error,
      });
    }
  }

  event(kind: string): void {
    let c = this.#events.get(kind);
    if (!c) {
      c = this.ctx.metrics.protocolEvents.with(this.listener.name, kind);
      this.#events.set(kind, c);
    }
    c.inc();
  }
}

function webSocketRefused(rec: RequestRecord): ProxyResponse {
  rec.error = "websocket_disabled";
  return gatewayResponse(403, "WebSockets are not enabled for this route\n");
}

/** The status label by status / 100 (0: no status), built once rather than per request. */
const STATUS_CLASS = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];

/** What the gateway's own gRPC errors say (grpc-message), by RequestRecord.error. */
const GRPC_REASONS: Record<string, string> = {
  no_route: "no route for this authority and method",
  no_pool: "pool unavailable",
  no_backend: "no backend available",
  in_flight_cap: "gateway is at its in-flight request limit",
  upstream_failed: "upstream failed",
  upstream_timeout: "upstream timed out",
  deadline_exceeded: "deadline exceeded before the backend answered",
  request_body_failed: "request body failed",
};

/** Replaces the value of `name` (first occurrence) or appends it. */
function setHeader(headers: HeaderList, name: string, value: string): void {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === name) {
      headers[i + 1] = value;
      return;
    }
  }
  headers.push(name, value);
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/**
 * What a picker may ask of a request: a class rather than an object of closures, so a request
 * costs one small allocation here (the cookie map only for pickers that ask for a cookie).
 */
class RequestPick implements PickRequest {
  #cookies: Map<string, string> | undefined;
  constructor(private readonly req: ProxyRequest) {}
  get clientIp(): string {
    return this.req.client.ip;
  }
  header(name: string): string | undefined {
    return getHeader(this.req.headers, name);
  }
  cookie(name: string): string | undefined {
    let cookies = this.#cookies;
    if (!cookies) {
      cookies = this.#cookies = new Map();
      const h = this.req.headers;
      for (let i = 0; i < h.length; i += 2) {
        if (h[i] !== "cookie") continue;
        for (const part of h[i + 1].split(";")) {
          const eq = part.indexOf("=");
          if (eq > 0) cookies.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
        }
      }
    }
    return cookies.get(name);
  }
}

function pickRequestOf(req: ProxyRequest): PickRequest {
  return new RequestPick(req);
}

/** Sets the sticky cookie unless the client already carries this backend's token. */
function addAffinityCookie(
  headers: HeaderList,
  req: PickRequest,
  backend: BackendRuntime,
  cookie: string,
): void {
  const token = affinityToken(backend);
  if (req.cookie(cookie) === token) return;
  headers.push("set-cookie", `${cookie}=${token}; Path=/; HttpOnly; SameSite=Lax`);
}

/**
 * The upstream body as relayed to the client: runs end-of-exchange callbacks exactly once
 * (end, failure or cancel) and passes trailers only to clients that accept them, sanitized.
 * One wrapper per response keeps the per-chunk cost to a single extra await.
 */
export class RelayBody implements Body {
  #ended = false;
  /** The usual single end callback in a field; an array only for more. */
  #first: (() => void) | undefined;
  #more: Array<() => void> | undefined;

  constructor(private readonly inner: Body, private readonly passTrailers: boolean) {}

  get length(): number | undefined {
    return this.inner.length;
  }

  get received(): number {
    return this.inner.received;
  }

  onEnd(fn: () => void): void {
    if (this.#ended) fn();
    else if (this.#first === undefined) this.#first = fn;
    else (this.#more ??= []).push(fn);
  }

  async read(): Promise<Uint8Array | null> {
    try {
      const chunk = await this.inner.read();
      if (chunk === null) this.#end();
      return chunk;
    } catch (e) {
      this.#end();
      throw e;
    }
  }

  tryRead(): Uint8Array | null | undefined {
    if (this.inner.tryRead === undefined) return undefined;
    try {
      const chunk = this.inner.tryRead();
      if (chunk === null) this.#end();
      return chunk;
    } catch (e) {
      this.#end();
      throw e;
    }
  }

  trailers(): HeaderList | undefined {
    return this.passTrailers ? sanitizeTrailers(this.inner.trailers()) : undefined;
  }

  cancel(reason?: unknown): void {
    this.#end();
    this.inner.cancel(reason);
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#first?.();
    if (this.#more) { for (const fn of this.#more) fn(); }
  }
}

/** RFC 9110 §9.2.1 safe methods: the only ones forwarded from replayable early data. */
function isSafeMethod(m: string): boolean {
  return m === "GET" || m === "HEAD" || m === "OPTIONS" || m === "TRACE";
}
