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
import { turnNow } from "../net/clock.ts";
import { BindError } from "../net/listener.ts";
import type { Logger } from "../observability/log.ts";
import type { L4Metrics } from "./metrics.ts";
import type { CounterChild, GaugeChild } from "../observability/metrics.ts";
import { startL4Session } from "../runtime/backends.ts";

const MAX_DATAGRAM = 65535;
/**
 * Receives kept in flight on the listener socket, each with its own buffer and awaiting its own
 * send: datagrams that arrive together complete in one event-loop turn instead of one turn
 * each (1 → 4 here: about +3% datagrams/s through the listener, +20% in a bare relay; 8 or 16
 * measured no better than 4). Deno resolves them in arrival order and each loop issues its send
 * before it receives again, so a client's datagrams leave in the order they came (only a send
 * that has to wait for socket buffer space can be overtaken by the next one).
 */
const RECEIVERS = 4;

class UdpSession implements Deadline {
  deadline = Infinity;
  reason = "idle";
  closed = false;

  constructor(
    readonly client: Deno.NetAddr,
    readonly upstream: Deno.DatagramConn,
    readonly backend: Deno.NetAddr,
    readonly backendKey: string,
    private readonly owner: UdpProxy,
  ) {
    this.replyHost = /^\d{1,3}(\.\d{1,3}){3}$/.test(backend.hostname) ? backend.hostname : undefined;
  }

  /**
   * The backend's address when it is an IPv4 literal, to check a reply's source host as well as
   * its port (a name, or IPv6 with its several spellings, is checked by port only).
   */
  readonly replyHost: string | undefined;

  touch(idleMs: number): void {
    // Per datagram, for a deadline the sweeper checks every 250 ms: the turn's clock will do.
    this.deadline = turnNow() + idleMs;
  }

  onExpire(): void {
    this.owner.countIdleTimeout();
    this.owner.endSession(this);
  }
}

export class UdpProxy {
  #socket: Deno.DatagramConn;
  /**
   * Sessions by client port, then (only when clients on several addresses share a port) by
   * client hostname: a datagram finds its session with a number lookup and a string compare,
   * without building a key string, and spoofed sources cannot make a lookup longer than that.
   */
  readonly #byPort = new Map<number, UdpSession | Map<string, UdpSession>>();
  #count = 0;
  #closed = false;
  // The listener-labelled series, resolved once (cfg.name is fixed for a listener's life).
  #up: CounterChild | undefined;
  #down: CounterChild | undefined;
  #active: GaugeChild | undefined;

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
    return this.#count;
  }

  start(): void {
    for (let i = 0; i < RECEIVERS; i++) this.#receiveLoop();
  }

  /**
   * Client → backend. The buffer is reused for every datagram, so the send is awaited before
   * the next receive (Deno's send keeps a view of it until it completes); that also bounds the
   * sends in flight to RECEIVERS, and a full socket buffer pushes back on the receives.
   */
  async #receiveLoop(): Promise<void> {
    const buf = new Uint8Array(MAX_DATAGRAM);
    for (;;) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await this.#socket.receive(buf);
      } catch (e) {
        if (this.#closed) return;
        this.log.warn("udp receive failed", { listener: this.cfg.name, error: String(e) });
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      if (this.#closed) return; // received as the listener closed: no session after close()
      const s = this.#sessionFor(from as Deno.NetAddr);
      if (s === undefined) continue;
      s.touch(this.cfg.idle_timeout);
      try {
        await s.upstream.send(data, s.backend);
        (this.#up ??= this.metrics.datagramsUp.with(this.cfg.name)).inc();
      } catch {
        if (!this.#closed && !s.closed) this.#drop("send_failed");
      }
    }
  }

  #sessionFor(client: Deno.NetAddr): UdpSession | undefined {
    const e = this.#byPort.get(client.port);
    if (e instanceof UdpSession) {
      if (e.client.hostname === client.hostname) return e;
    } else if (e !== undefined) {
      const s = e.get(client.hostname);
      if (s !== undefined) return s;
    }
    if (this.#count >= this.cfg.max_connections) {
      this.#drop("session_cap");
      return undefined;
    }
    return this.#newSession(client);
  }

  #drop(reason: "session_cap" | "no_backend" | "send_failed" | "oversize"): void {
    this.metrics.udpDrops.with(this.cfg.name, reason).inc();
  }

  countIdleTimeout(): void {
    this.metrics.idleTimeouts.with(this.cfg.name).inc();
  }

  #newSession(client: Deno.NetAddr): UdpSession | undefined {
    const state = this.ctx.state();
    const poolName = this.cfg.routes[0]?.pool;
    const pool = poolName ? state.pools.get(poolName) : undefined;
    const req: PickRequest = { clientIp: client.hostname, header: () => undefined, cookie: () => undefined };
    const sel = pool && selectEndpoint(pool.picker, req, {
      isHealthy: this.ctx.health.isHealthy,
      panicThreshold: pool.config.panic_threshold / 100,
    });
    if (!pool || !sel) {
      this.#drop("no_backend");
      return undefined;
    }
    const b = pool.backends.get(sel.endpoint.key)!;
    const hp = parseHostPort(b.config.address)!;
    let upstream: Deno.DatagramConn;
    try {
      upstream = Deno.listenDatagram({
        transport: "udp",
        hostname: hp.host.includes(":") ? "::" : "0.0.0.0",
        port: 0,
      });
    } catch {
      // e.g. out of file descriptors: this datagram cannot be sent; the receive loops go on.
      this.#drop("send_failed");
      return undefined;
    }
    const s = new UdpSession(
      client,
      upstream,
      { transport: "udp", hostname: hp.host, port: hp.port },
      b.key,
      this,
    );
    this.#insert(s);
    sweeper.add(s);
    const end = startL4Session(b);
    (this.#active ??= this.metrics.sessionsActive.with(this.cfg.name)).inc();
    this.#replyLoop(s, end);
    return s;
  }

  /**
   * Backend → client, sent from the listener's socket so the client sees the address it used.
   * One buffer for the session's life (the send is awaited before the next receive), of
   * udp_max_datagram bytes (+1): the per-session memory (10,000 sessions × 64 KiB is 640 MiB;
   * DNS-sized replies need 4 KiB). A reply longer than udp_max_datagram may have been cut by the
   * kernel, so it is dropped and counted (oversize) rather than relayed truncated.
   */
  async #replyLoop(s: UdpSession, onEnd: () => void): Promise<void> {
    const size = this.cfg.udp_max_datagram;
    // One byte of slack: a reply of exactly `size` bytes fits and is relayed; only one that
    // reaches the slack byte may have been cut.
    const mayTruncate = size < MAX_DATAGRAM;
    const buf = new Uint8Array(mayTruncate ? size + 1 : size);
    try {
      for (;;) {
        const [data, from] = await s.upstream.receive(buf);
        const f = from as Deno.NetAddr;
        // Only the chosen backend may answer this session: another host sending from the same
        // port number to the session's socket is ignored.
        if (f.port !== s.backend.port || (s.replyHost !== undefined && f.hostname !== s.replyHost)) continue;
        s.touch(this.cfg.idle_timeout);
        if (mayTruncate && data.length > size) {
          this.#drop("oversize");
          continue;
        }
        try {
          await this.#socket.send(data, s.client);
          (this.#down ??= this.metrics.datagramsDown.with(this.cfg.name)).inc();
        } catch {
          // One reply lost (e.g. no buffer space), not the session; a closed listener ends it.
          if (this.#closed) break;
          this.#drop("send_failed");
        }
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
    this.#unlink(s);
    (this.#active ??= this.metrics.sessionsActive.with(this.cfg.name)).dec();
    try {
      s.upstream.close();
    } catch { /* already closed */ }
  }

  #insert(s: UdpSession): void {
    const port = s.client.port;
    const e = this.#byPort.get(port);
    if (e === undefined) this.#byPort.set(port, s);
    else if (e instanceof UdpSession) {
      this.#byPort.set(port, new Map([[e.client.hostname, e], [s.client.hostname, s]]));
    } else e.set(s.client.hostname, s);
    this.#count++;
  }

  #unlink(s: UdpSession): void {
    const port = s.client.port;
    const e = this.#byPort.get(port);
    if (e === s) this.#byPort.delete(port);
    else if (e instanceof Map && e.get(s.client.hostname) === s) {
      e.delete(s.client.hostname);
      if (e.size === 1) this.#byPort.set(port, e.values().next().value!);
    } else return; // not in the table
    this.#count--;
  }

  close(): void {
    this.#closed = true;
    try {
      this.#socket.close();
    } catch { /* already closed */ }
    const all: UdpSession[] = [];
    for (const e of this.#byPort.values()) {
      if (e instanceof UdpSession) all.push(e);
      else all.push(...e.values());
    }
    for (const s of all) this.endSession(s);
  }
}
