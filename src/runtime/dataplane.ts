/**
 * The data plane: listeners, client connections, proxy state and upstream pools for one
 * isolate. It shares no memory with the admin plane: it is driven by snapshots (start,
 * apply) and signals-as-calls (rotate, drain), and reports through its own metrics
 * registry, so a data-plane worker can run exactly this (issue: every core).
 */

import type { ConfigSnapshot, ListenerConfig } from "../config/types.ts";
import type { ClientInfo } from "../http/exchange.ts";
import { H1ServerConn, type ServerConnection } from "../http/h1/server.ts";
import {
  ALWAYS_HEALTHY,
  buildRouters,
  ListenerProxy,
  type ProxyContext,
  type ProxyState,
} from "../http/proxy.ts";
import { ConnectionGuard } from "../net/guard.ts";
import { BoundListener } from "../net/listener.ts";
import { DataPlaneMetrics } from "../observability/gateway_metrics.ts";
import type { Logger } from "../observability/log.ts";
import { BackendRegistry } from "./backends.ts";

interface ListenerRuntime {
  cfg: ListenerConfig;
  bound: BoundListener;
  guard: ConnectionGuard;
  proxy: ListenerProxy;
}

export class DataPlane {
  readonly metrics: DataPlaneMetrics;
  readonly #backends = new BackendRegistry();
  readonly #connections = new Set<ServerConnection>();
  readonly #listeners = new Map<string, ListenerRuntime>();
  #state!: ProxyState;
  readonly ctx: ProxyContext;
  #draining = false;

  constructor(readonly log: Logger, metrics?: DataPlaneMetrics) {
    this.metrics = metrics ?? new DataPlaneMetrics();
    this.ctx = {
      state: () => this.#state,
      metrics: this.metrics,
      log,
      health: ALWAYS_HEALTHY,
      inFlight: 0,
    };
    this.metrics.registry.onCollect(() => this.#refreshGauges());
  }

  get state(): ProxyState {
    return this.#state;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Bound ports by listener name (tests bind port 0). */
  ports(): Record<string, number> {
    return Object.fromEntries([...this.#listeners].map(([n, l]) => [n, l.bound.port]));
  }

  /** Builds state and binds every listener; if any bind fails, closes those bound and throws. */
  async start(snapshot: ConfigSnapshot): Promise<void> {
    const pools = await this.#backends.build(snapshot);
    this.#backends.commit(pools);
    this.#state = { snapshot, routers: buildRouters(snapshot), pools };
    const bound: BoundListener[] = [];
    try {
      for (const l of snapshot.config.listeners) bound.push(await BoundListener.bind(l));
    } catch (e) {
      for (const b of bound) b.close();
      this.#backends.closeAll();
      throw e;
    }
    for (const b of bound) {
      const rt: ListenerRuntime = {
        cfg: b.cfg,
        bound: b,
        guard: new ConnectionGuard(b.cfg.max_connections, b.cfg.max_connections_per_ip),
        proxy: new ListenerProxy(this.ctx, b.cfg),
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
      const rt = this.#listeners.get(l.name);
      if (!rt) continue;
      rt.cfg = l;
      rt.guard.maxConnections = l.max_connections;
      rt.guard.maxPerIp = l.max_connections_per_ip;
      rt.proxy = new ListenerProxy(this.ctx, l);
    }
    this.#state = state;
    const removed = this.#backends.commit(pools);
    for (const b of removed) {
      this.metrics.backendInFlight.remove(b.pool, b.config.address);
      this.metrics.backendEwma.remove(b.pool, b.config.address);
      this.metrics.poolConnections.remove(b.pool, b.config.address, "open");
      this.metrics.poolConnections.remove(b.pool, b.config.address, "idle");
    }
  }

  /** SIGUSR1 on every TLS listener; returns the names that failed with why. */
  async rotateCertificates(): Promise<string[]> {
    const failures: string[] = [];
    for (const rt of this.#listeners.values()) {
      if (!rt.bound.certs) continue;
      try {
        await rt.bound.rotateCertificates(this.log);
      } catch (e) {
        failures.push(`${rt.cfg.name}: ${e instanceof Error ? e.message : String(e)}`);
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
    const client: ClientInfo = { ip, port: remote.port, listener: listenerName, tls };
    try {
      (conn as Deno.TcpConn).setNoDelay?.(true);
    } catch { /* TLS conns forward this to the TCP socket; best effort */ }
    const server = new H1ServerConn(conn, rt.cfg, client, rt.proxy);
    this.#connections.add(server);
    server.run().catch(() => {}).finally(() => {
      this.#connections.delete(server);
      rt.guard.release(ip);
    });
  }

  #refreshGauges(): void {
    const m = this.metrics;
    m.inFlight.set(this.ctx.inFlight);
    for (const rt of this.#listeners.values()) m.connectionsActive.with(rt.cfg.name).set(rt.guard.total);
    for (const b of this.#backends.all()) {
      m.backendInFlight.with(b.pool, b.config.address).set(b.stats.inFlight);
      m.backendEwma.with(b.pool, b.config.address).set(b.stats.ewmaMs / 1000);
      m.backendPicks.with(b.pool, b.config.address).value = b.stats.picks;
      m.poolConnections.with(b.pool, b.config.address, "open").set(b.h1.open);
      m.poolConnections.with(b.pool, b.config.address, "idle").set(b.h1.idle);
    }
  }

  /**
   * Graceful stop: stop accepting, close idle connections, let busy ones finish their current
   * exchange up to `timeoutMs`, then cut the rest. Returns how many were cut off.
   */
  async drain(timeoutMs: number): Promise<number> {
    this.#draining = true;
    for (const rt of this.#listeners.values()) rt.bound.close();
    for (const c of this.#connections) c.drain();
    const deadline = performance.now() + timeoutMs;
    while (this.#connections.size > 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
    const cut = this.#connections.size;
    for (const c of this.#connections) c.abort();
    if (cut > 0) this.metrics.drainCutoff.inc(cut);
    this.#backends.closeAll();
    return cut;
  }

  stop(): void {
    this.#draining = true;
    for (const rt of this.#listeners.values()) rt.bound.close();
    for (const c of this.#connections) c.abort();
    this.#backends.closeAll();
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}
