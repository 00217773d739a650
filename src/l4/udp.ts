/**
 * L4 UDP proxying: a session table keyed by client address. A new client gets a backend
 * (picked by the pool's algorithm on the client IP) and its own ephemeral upstream socket, so
 * replies can be told apart and sent back from the listener's address. Sessions expire after
 * idle_timeout; max_connections bounds the table (new clients past it are dropped, counted).
 */

import type { PickRequest } from "../balancer/picker.ts";
import { selectEndpoint } from "../balancer/select.ts";
import type { ListenerConfig } from "../config/types.ts";
import { parseHostPort } from "../config/units.ts";
import type { ProxyContext } from "../http/proxy.ts";
import { type Deadline, sweeper } from "../net/deadlines.ts";
import { BindError } from "../net/listener.ts";
import type { Logger } from "../observability/log.ts";
import type { L4Metrics } from "./metrics.ts";

const MAX_DATAGRAM = 65535;

class UdpSession implements Deadline {
  deadline = Infinity;
  reason = "idle";
  closed = false;

  constructor(
    readonly key: string,
    readonly client: Deno.NetAddr,
    readonly upstream: Deno.DatagramConn,
    readonly backend: Deno.NetAddr,
    readonly backendKey: string,
    private readonly owner: UdpProxy,
  ) {}

  touch(idleMs: number): void {
    this.deadline = performance.now() + idleMs;
  }

  onExpire(): void {
    this.owner.metrics.idleTimeouts.with(this.owner.cfg.name).inc();
    this.owner.endSession(this);
  }
}

export class UdpProxy {
  #socket: Deno.DatagramConn;
  readonly #sessions = new Map<string, UdpSession>();
  #closed = false;

  private constructor(
    public cfg: ListenerConfig,
    socket: Deno.DatagramConn,
    private readonly ctx: ProxyContext,
    readonly metrics: L4Metrics,
    private readonly log: Logger,
  ) {
    this.#socket = socket;
  }

  static bind(cfg: ListenerConfig, ctx: ProxyContext, metrics: L4Metrics, log: Logger): UdpProxy {
    const addr = parseHostPort(cfg.bind)!;
    try {
      const socket = Deno.listenDatagram({ transport: "udp", hostname: addr.host, port: addr.port });
      return new UdpProxy(cfg, socket, ctx, metrics, log);
    } catch (e) {
      throw new BindError(cfg.name, cfg.bind, e);
    }
  }

  get port(): number {
    return (this.#socket.addr as Deno.NetAddr).port;
  }

  get sessions(): number {
    return this.#sessions.size;
  }

  start(): void {
    this.#receiveLoop();
  }

  async #receiveLoop(): Promise<void> {
    for (;;) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await this.#socket.receive(new Uint8Array(MAX_DATAGRAM));
      } catch (e) {
        if (this.#closed) return;
        this.log.warn("udp receive failed", { listener: this.cfg.name, error: String(e) });
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      this.#fromClient(data, from as Deno.NetAddr);
    }
  }

  #fromClient(data: Uint8Array, client: Deno.NetAddr): void {
    const key = `${client.hostname}:${client.port}`;
    let s = this.#sessions.get(key);
    if (!s) {
      if (this.#sessions.size >= this.cfg.max_connections) {
        this.metrics.udpDrops.with(this.cfg.name, "session_cap").inc();
        return;
      }
      s = this.#newSession(key, client);
      if (!s) return;
    }
    s.touch(this.cfg.idle_timeout);
    s.upstream.send(data, s.backend).then(
      () => this.metrics.datagramsUp.with(this.cfg.name).inc(),
      () => this.metrics.udpDrops.with(this.cfg.name, "send_failed").inc(),
    );
  }

  #newSession(key: string, client: Deno.NetAddr): UdpSession | undefined {
    const state = this.ctx.state();
    const poolName = this.cfg.routes[0]?.pool;
    const pool = poolName ? state.pools.get(poolName) : undefined;
    const req: PickRequest = { clientIp: client.hostname, header: () => undefined, cookie: () => undefined };
    const sel = pool && selectEndpoint(pool.picker, req, {
      isHealthy: this.ctx.health.isHealthy,
      panicThreshold: pool.config.panic_threshold / 100,
    });
    if (!pool || !sel) {
      this.metrics.udpDrops.with(this.cfg.name, "no_backend").inc();
      return undefined;
    }
    const b = pool.backends.get(sel.endpoint.key)!;
    const hp = parseHostPort(b.config.address)!;
    const upstream = Deno.listenDatagram({
      transport: "udp",
      hostname: hp.host.includes(":") ? "::" : "0.0.0.0",
      port: 0,
    });
    const s = new UdpSession(
      key,
      client,
      upstream,
      { transport: "udp", hostname: hp.host, port: hp.port },
      b.key,
      this,
    );
    this.#sessions.set(key, s);
    sweeper.add(s);
    b.stats.inFlight++;
    this.metrics.sessionsActive.with(this.cfg.name).inc();
    this.#replyLoop(s, () => b.stats.inFlight--);
    return s;
  }

  /** Backend → client, sent from the listener's socket so the client sees the address it used. */
  async #replyLoop(s: UdpSession, onEnd: () => void): Promise<void> {
    try {
      for (;;) {
        const [data, from] = await s.upstream.receive(new Uint8Array(MAX_DATAGRAM));
        const f = from as Deno.NetAddr;
        if (f.port !== s.backend.port) continue; // only the chosen backend may answer this session
        s.touch(this.cfg.idle_timeout);
        await this.#socket.send(data, s.client);
        this.metrics.datagramsDown.with(this.cfg.name).inc();
      }
    } catch {
      // the session socket was closed (idle expiry or shutdown)
    } finally {
      onEnd();
      this.endSession(s);
    }
  }

  endSession(s: UdpSession): void {
    if (s.closed) return;
    s.closed = true;
    sweeper.delete(s);
    if (this.#sessions.get(s.key) === s) this.#sessions.delete(s.key);
    this.metrics.sessionsActive.with(this.cfg.name).dec();
    try {
      s.upstream.close();
    } catch { /* already closed */ }
  }

  close(): void {
    this.#closed = true;
    try {
      this.#socket.close();
    } catch { /* already closed */ }
    for (const s of [...this.#sessions.values()]) this.endSession(s);
  }
}
