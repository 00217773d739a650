/**
 * The data plane: listeners, client connections, proxy state and upstream pools for one
 * isolate. It shares no memory with the admin plane: it is driven by snapshots (start,
 * apply) and signals-as-calls (rotate, drain), and reports through its own metrics
 * registry, so a data-plane worker can run exactly this (issue: every core).
 */

import type { ConfigSnapshot, ListenerConfig } from "../config/types.ts";
import type { ClientInfo } from "../http/exchange.ts";
import { H1ServerConn, type ServerConnection } from "../http/h1/server.ts";
import { PendingConnection } from "../http/h2/detect.ts";
import { H2ServerConn } from "../http/h2/server.ts";
import {
  ALWAYS_HEALTHY,
  buildRouters,
  ListenerProxy,
  type ProxyContext,
  type ProxyState,
} from "../http/proxy.ts";
import { ConnectionGuard } from "../net/guard.ts";
import { BoundListener } from "../net/listener.ts";
import { MemberList, memberSlot } from "../net/member_list.ts";
import { DataPlaneMetrics } from "../observability/gateway_metrics.ts";
import type { Logger } from "../observability/log.ts";
import { BackendRegistry } from "./backends.ts";
import type { HealthManager } from "../health/manager.ts";
import type { CollectedFamily } from "../observability/metrics.ts";
import { SharedCounters } from "./shared_counters.ts";
import { type L4Metrics, l4Metrics } from "../l4/metrics.ts";
import { TcpRelay } from "../l4/tcp.ts";
import { UdpProxy } from "../l4/udp.ts";
import { QuicListener } from "../http/h3/listener.ts";
import { H3ServerConn } from "../http/h3/server.ts";
import { CLOSE_FLUSH_MS, type QuicConnection } from "../quic/engine.ts";
import { TunnelRegistry } from "../websocket/tunnel.ts";
import { passthroughMetrics, QuicPassthrough } from "../quic/passthrough.ts";
import { RawQuicProxy } from "../quic/raw_proxy.ts";

/** A quic listener (HTTP/3) in this isolate; like ListenerRuntime but over one UDP endpoint. */
interface QuicRuntime {
  cfg: ListenerConfig;
  open: number;
  bound: QuicListener;
  guard: ConnectionGuard;
  proxy: ListenerProxy;
  /** Set when the listener has raw_proxy (QUIC Mode B): its connections are relayed, not served. */
  raw?: RawQuicProxy;
}

interface ListenerRuntime {
  cfg: ListenerConfig;
  /** Connections open on this listener in this isolate (the gauge; caps use the guard). */
  open: number;
  bound: BoundListener;
  guard: ConnectionGuard;
  proxy: ListenerProxy;
}

const CONNECTIONS = memberSlot("connections");

/** A TLS listener whose certificate files could not be reloaded (it keeps the previous ones). */
export interface RotationFailure {
  listener: string;
  error: string;
}

export class DataPlane {
  readonly metrics: DataPlaneMetrics;
  readonly #backends = new BackendRegistry();
  readonly #connections = new MemberList<ServerConnection>(CONNECTIONS);
  readonly #listeners = new Map<string, ListenerRuntime>();
  readonly #udp = new Map<string, UdpProxy>();
  readonly #quic = new Map<string, QuicRuntime>();
  /** [passthrough] (QUIC Mode A), worker 0 only like the other datagram listeners. */
  #passthrough: QuicPassthrough | undefined;
  /** The [passthrough] bind as configured at start (binds and the table's presence need a restart). */
  #passthroughBind: string | undefined;
  #hostsDatagram = false;
  /** Ports of listeners bound by another worker (quic/udp live in worker 0), for Alt-Svc. */
  #peerPorts: Record<string, number> = {};
  readonly #l4: L4Metrics;
  readonly #workerConnections: { inc(n?: number): void } | undefined;
  #state!: ProxyState;
  readonly ctx: ProxyContext;
  /** Open WebSocket / CONNECT tunnels: closed with 1001 at the end of a drain. */
  readonly tunnels: TunnelRegistry;
  #draining = false;

  constructor(
    readonly log: Logger,
    metrics?: DataPlaneMetrics,
    /** Shared with the other workers of the process; a fresh one when running alone. */
    readonly counters: SharedCounters = new SharedCounters(),
    /** Set when this data plane is one of several workers (labels its per-worker counter). */
    readonly workerId?: number,
  ) {
    this.metrics = metrics ?? new DataPlaneMetrics();
    this.tunnels = new TunnelRegistry(this.metrics);
    this.ctx = {
      state: () => this.#state,
      metrics: this.metrics,
      log,
      health: ALWAYS_HEALTHY,
      counters,
      inFlight: 0,
      tunnels: this.tunnels,
    };
    this.#l4 = l4Metrics(this.metrics.registry);
    if (workerId !== undefined) {
      this.#workerConnections = this.metrics.registry
        .counter(
          "expressgateway_worker_connections_total",
          "Client connections accepted, by data-plane worker.",
          ["worker"],
        )
        .with(String(workerId));
    }
    this.metrics.registry.onCollect(() => this.#refreshGauges());
  }

  get state(): ProxyState {
    return this.#state;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  collect(): Promise<CollectedFamily[]> {
    return Promise.resolve(this.metrics.registry.collect());
  }

  attachHealth(h: HealthManager): void {
    this.ctx.health = h;
  }

  /** Bound ports by listener name (tests bind port 0). */
  ports(): Record<string, number> {
    return Object.fromEntries([
      ...[...this.#listeners].map(([n, l]) => [n, l.bound.port]),
      ...[...this.#udp].map(([n, u]) => [n, u.port]),
      ...[...this.#quic].map(([n, q]) => [n, q.bound.port]),
      ...(this.#passthrough ? [["passthrough", this.#passthrough.port]] : []),
    ]);
  }

  /** Builds state and binds every listener; if any bind fails, closes those bound and throws. */
  async start(snapshot: ConfigSnapshot, opts: StartOptions = {}): Promise<void> {
    const pools = await this.#backends.build(snapshot);
    this.#backends.commit(pools);
    this.#state = { snapshot, routers: buildRouters(snapshot), pools };
    this.#peerPorts = { ...opts.ports };
    const bound: BoundListener[] = [];
    const udp: UdpProxy[] = [];
    const quic: QuicListener[] = [];
    let passthrough: QuicPassthrough | undefined;
    try {
      for (const configured of snapshot.config.listeners) {
        const port = opts.ports?.[configured.name];
        const l = port ? { ...configured, bind: withPort(configured.bind, port) } : configured;
        if (l.protocol === "udp") {
          if (!opts.skipDatagram) udp.push(UdpProxy.bind(l, this.ctx, this.#l4, this.log));
        } else if (l.protocol === "quic") {
          if (!opts.skipDatagram) quic.push(await QuicListener.bind(l));
        } else bound.push(await BoundListener.bind(l));
      }
      const pt = snapshot.config.passthrough;
      if (pt && !opts.skipDatagram) {
        const port = opts.ports?.passthrough;
        passthrough = QuicPassthrough.bind(
          port ? { ...pt, bind: withPort(pt.bind, port) } : pt,
          this.ctx,
          passthroughMetrics(this.metrics.registry),
          this.log,
        );
      }
    } catch (e) {
      for (const b of bound) b.close();
      for (const u of udp) u.close();
      for (const q of quic) q.close();
      passthrough?.close();
      this.#backends.closeAll();
      throw e;
    }
    for (const u of udp) {
      this.#udp.set(u.cfg.name, u);
      u.start();
    }
    this.#hostsDatagram = !opts.skipDatagram;
    this.#passthroughBind = snapshot.config.passthrough?.bind;
    if (passthrough) {
      this.#passthrough = passthrough;
      passthrough.start();
    }
    const listenerIndex = (name: string) => snapshot.config.listeners.findIndex((l) => l.name === name);
    for (const q of quic) {
      const rt: QuicRuntime = {
        cfg: q.cfg,
        open: 0,
        bound: q,
        guard: new ConnectionGuard(
          this.counters,
          listenerIndex(q.cfg.name),
          q.cfg.max_connections,
          q.cfg.max_connections_per_ip,
        ),
        proxy: new ListenerProxy(this.ctx, q.cfg),
        raw: q.cfg.raw_proxy ? new RawQuicProxy(q.cfg.name, this.metrics.registry, this.log) : undefined,
      };
      this.#quic.set(q.cfg.name, rt);
      q.serve(
        (c) => this.#onQuicConnection(rt, c),
        (e) => this.log.debug("quic accept failed", { listener: rt.cfg.name, error: String(e) }),
      );
    }
    for (const b of bound) {
      const rt: ListenerRuntime = {
        cfg: b.cfg,
        open: 0,
        bound: b,
        guard: new ConnectionGuard(
          this.counters,
          snapshot.config.listeners.findIndex((l) => l.name === b.cfg.name),
          b.cfg.max_connections,
          b.cfg.max_connections_per_ip,
        ),
        proxy: new ListenerProxy(this.ctx, b.cfg, this.#altSvc(b.cfg)),
      };
      this.#listeners.set(b.cfg.name, rt);
      b.serve((conn, tls) => this.#onConnection(rt.cfg.name, conn, tls), this.log);
    }
  }

  /** Swaps in a new snapshot (already validated and reduced to its live-applicable part). */
  async apply(snapshot: ConfigSnapshot): Promise<void> {
    const pools = await this.#backends.build(snapshot);
    const state: ProxyState = { snapshot, routers: buildRouters(snapshot), pools };
    for (const l of snapshot.config.listeners) {
      const u = this.#udp.get(l.name);
      if (u) u.cfg = l;
      const q = this.#quic.get(l.name);
      if (q) {
        q.cfg = l;
        q.guard.maxConnections = l.max_connections;
        q.guard.maxPerIp = l.max_connections_per_ip;
        q.proxy = new ListenerProxy(this.ctx, l);
        q.raw?.reload();
      }
      const rt = this.#listeners.get(l.name);
      if (!rt) continue;
      rt.cfg = l;
      rt.guard.maxConnections = l.max_connections;
      rt.guard.maxPerIp = l.max_connections_per_ip;
      rt.proxy = new ListenerProxy(this.ctx, l, this.#altSvc(l));
    }
    const pt = this.#passthrough, next = snapshot.config.passthrough;
    if (pt && next) pt.reconfigure({ ...next, bind: pt.cfg.bind });
    if (this.#hostsDatagram && next?.bind !== this.#passthroughBind) {
      this.log.warn("[passthrough] added, removed or rebound: takes effect at the next restart", {
        live: this.#passthroughBind ?? null,
        next: next?.bind ?? null,
      });
    }
    this.#state = state;
    const removed = this.#backends.commit(pools);
    // Tunnels live on across reloads; only those whose backend is gone are closed (1001).
    this.tunnels.closeBackends(new Set(removed.map((b) => b.key)));
    // A removed backend's series go too (label cardinality stays bounded by the config).
    const m = this.metrics;
    for (const b of removed) {
      const id = { pool: b.pool, backend: b.config.address };
      for (
        const fam of [
          m.backendInFlight,
          m.backendEwma,
          m.poolConnections,
          m.backendPicks,
          m.upstreamConnects,
          m.upstreamProtocolEvents,
        ]
      ) {
        fam.removeMatching(id);
      }
      m.upstreamSeconds.removeMatching(id);
      m.upstreamErrors.removeMatching(id);
    }
  }

  /** SIGUSR1 on every TLS listener; returns the listeners that failed, with why. */
  async rotateCertificates(): Promise<RotationFailure[]> {
    const failures: RotationFailure[] = [];
    for (const rt of this.#listeners.values()) {
      if (!rt.bound.certs) continue;
      try {
        await rt.bound.rotateCertificates(this.log);
      } catch (e) {
        failures.push({ listener: rt.cfg.name, error: e instanceof Error ? e.message : String(e) });
      }
    }
    return failures;
  }

  #onConnection(listenerName: string, conn: Deno.Conn, tls: boolean): void {
    const rt = this.#listeners.get(listenerName)!;
    const remote = conn.remoteAddr as Deno.NetAddr;
    const ip = remote.hostname;
    if (this.#draining) {
      closeQuietly(conn);
      return;
    }
    const rejected = rt.guard.admit(ip);
    if (rejected) {
      this.metrics.guardRejections.with(listenerName, rejected).inc();
      closeQuietly(conn);
      return;
    }
    this.metrics.connectionsTotal.with(listenerName).inc();
    this.#workerConnections?.inc();
    rt.open++;
    const client: ClientInfo = { ip, port: remote.port, listener: listenerName, tls };
    try {
      (conn as Deno.TcpConn).setNoDelay?.(true);
    } catch { /* TLS conns forward this to the TCP socket; best effort */ }
    const done = () => {
      rt.open--;
      rt.guard.release(ip);
    };
    if (rt.cfg.protocol === "tcp") {
      const relay = new TcpRelay(conn, rt.cfg, this.ctx, this.#l4);
      this.#connections.add(relay);
      relay.run().catch(() => {}).finally(() => {
        this.#connections.delete(relay);
        done();
      });
      return;
    }
    // HTTP: ALPN (TLS) or the h2c preface (cleartext) picks the codec, within header_timeout.
    const pending = new PendingConnection(conn, rt.cfg.header_timeout);
    this.#connections.add(pending);
    const cfg = rt.cfg;
    const proxy = rt.proxy;
    pending.detect(tls).then((d) => {
      this.#connections.delete(pending);
      if (!d || pending.aborted || this.#draining) {
        pending.abort();
        return;
      }
      const server = d.protocol === "h2"
        ? new H2ServerConn(d.conn, cfg, client, proxy, d.initial, {
          enableConnectProtocol: this.#allowsWebSocket(cfg.name),
        })
        : new H1ServerConn(d.conn, cfg, client, proxy, d.initial);
      this.#connections.add(server);
      return server.run().catch(() => {}).finally(() => this.#connections.delete(server));
    }).catch(() => {}).finally(done);
  }

  /**
   * RFC 8441 (HTTP/2) and RFC 9220 (HTTP/3) are advertised (SETTINGS_ENABLE_CONNECT_PROTOCOL) on a
   * listener when one of its routes leads to a pool that allows WebSockets (`websocket`, default true),
   * per the current snapshot.
   */
  #allowsWebSocket(listener: string): boolean {
    const cfg = this.#state.snapshot.config;
    const l = cfg.listeners.find((x) => x.name === listener);
    return !!l?.routes.some((r) =>
      r.pool !== undefined && cfg.pools.find((p) => p.name === r.pool)?.websocket
    );
  }

  /** `alt-svc` value for an http/https listener that names a quic listener, else undefined. */
  #altSvc(cfg: ListenerConfig): string | undefined {
    const target = cfg.alt_svc_h3;
    if (!target) return undefined;
    const port = this.#quic.get(target)?.bound.port ?? this.#peerPorts[target] ??
      Number(
        this.#state.snapshot.config.listeners.find((l) => l.name === target)?.bind.match(/:(\d+)$/)?.[1],
      );
    return port ? `h3=":${port}"; ma=86400` : undefined;
  }

  #onQuicConnection(rt: QuicRuntime, qc: QuicConnection): void {
    const ip = qc.remote.ip;
    const name = rt.cfg.name;
    if (this.#draining) {
      qc.close(0x100, "shutting down");
      return;
    }
    const rejected = rt.guard.admit(ip);
    if (rejected) {
      this.metrics.guardRejections.with(name, rejected).inc();
      qc.close(0x107, "too many connections"); // H3_EXCESSIVE_LOAD
      return;
    }
    this.metrics.connectionsTotal.with(name).inc();
    this.#workerConnections?.inc();
    rt.open++;
    if (rt.raw && rt.cfg.raw_proxy) {
      // QUIC Mode B: relayed to a fresh backend connection; bounded by the guard above, like any.
      const relay = rt.raw.relay(qc, rt.cfg);
      this.#connections.add(relay);
      relay.run().finally(() => {
        this.#connections.delete(relay);
        rt.open--;
        rt.guard.release(ip);
      });
      return;
    }
    const cfg = rt.cfg;
    const client: ClientInfo = { ip, port: qc.remote.port, listener: name, tls: true };
    const server = new H3ServerConn(qc, cfg, client, rt.proxy, {
      qpackMaxTableCapacity: cfg.qpack_max_table_capacity,
      qpackBlockedStreams: cfg.qpack_blocked_streams,
      // RFC 9220, on the same rule as RFC 8441 over HTTP/2.
      enableConnectProtocol: this.#allowsWebSocket(name),
    });
    this.#connections.add(server);
    server.run().catch(() => {}).finally(() => {
      this.#connections.delete(server);
      rt.open--;
      rt.guard.release(ip);
    });
  }

  #refreshGauges(): void {
    const m = this.metrics;
    m.inFlight.set(this.ctx.inFlight);
    this.#passthrough?.refreshGauges();
    for (const rt of this.#listeners.values()) m.connectionsActive.with(rt.cfg.name).set(rt.open);
    for (const rt of this.#quic.values()) m.connectionsActive.with(rt.cfg.name).set(rt.open);
    for (const b of this.#backends.all()) {
      m.backendInFlight.with(b.pool, b.config.address).set(b.stats.inFlight);
      m.backendEwma.with(b.pool, b.config.address).set(b.stats.ewmaMs / 1000);
      m.backendPicks.with(b.pool, b.config.address).value = b.stats.picks;
      // The pool the backend's requests go to: h3 or h2 by its protocol, else HTTP/1.1.
      const used = b.h3 ?? b.h2 ?? b.h1;
      m.poolConnections.with(b.pool, b.config.address, "open").set(used.open);
      m.poolConnections.with(b.pool, b.config.address, "idle").set(used.idle);
      m.upstreamConnects.with(b.pool, b.config.address).value = used.connects;
      const refused = (b.h3 ?? b.h2)?.events;
      if (refused) {
        for (const [event, n] of refused) {
          m.upstreamProtocolEvents.with(b.pool, b.config.address, event).value = n;
        }
      }
    }
  }

  /**
   * Graceful stop: stop accepting, close idle connections, let busy ones finish their current
   * exchange up to `timeoutMs`, then cut the rest. Returns how many were cut off.
   */
  async drain(timeoutMs: number): Promise<number> {
    this.#draining = true;
    for (const rt of this.#listeners.values()) rt.bound.close();
    for (const q of this.#quic.values()) q.bound.stopAccepting();
    if (this.#passthrough) this.#passthrough.draining = true;
    for (const c of this.#connections) c.drain();
    const deadline = performance.now() + timeoutMs;
    // Passthrough flows end only by idle expiry (their QUIC close is encrypted), so they get
    // the whole drain timeout unless they all go idle first.
    const busy = () => this.#connections.size > 0 || (this.#passthrough?.flowCount ?? 0) > 0;
    while (busy() && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
    // Tunnels had the drain timeout: WebSockets now get close 1001 on both sides (and a moment to
    // answer it), CONNECT tunnels are closed; their connections then end on their own.
    if (this.tunnels.size > 0) {
      await this.tunnels.closeAll("drain");
      const settle = performance.now() + 250;
      while (this.#connections.size > 0 && performance.now() < settle) {
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    const cut = this.#connections.size;
    for (const c of this.#connections) c.abort();
    if (cut > 0) this.metrics.drainCutoff.inc(cut);
    // Cut QUIC connections have only queued their CONNECTION_CLOSE (engine.ts, CLOSE_FLUSH_MS): the
    // endpoints and this isolate must outlive it (seen: a Mode B drain test whose client never
    // learnt of the close).
    if (cut > 0 && this.#quic.size > 0) await new Promise((r) => setTimeout(r, CLOSE_FLUSH_MS));
    for (const u of this.#udp.values()) u.close();
    for (const q of this.#quic.values()) q.bound.close();
    this.#passthrough?.close();
    this.#backends.closeAll();
    return cut;
  }

  stop(): void {
    this.#draining = true;
    for (const rt of this.#listeners.values()) rt.bound.close();
    for (const c of this.#connections) c.abort();
    for (const u of this.#udp.values()) u.close();
    for (const q of this.#quic.values()) q.bound.close();
    this.#passthrough?.close();
    this.#backends.closeAll();
  }
}

export interface StartOptions {
  /** Concrete ports for listeners configured with port 0 (workers after the first bind these). */
  ports?: Record<string, number>;
  /** Leave UDP and QUIC listeners to another worker (Deno has no reusePort for datagram sockets). */
  skipDatagram?: boolean;
}

function withPort(bind: string, port: number): string {
  return bind.replace(/:\d+$/, `:${port}`);
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}
