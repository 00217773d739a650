/**
 * L4 TCP proxying: a byte relay between a client connection and a backend picked by the
 * pool's algorithm (hash algorithms key on the client IP). Each direction is a read → await
 * write loop, so backpressure is end to end; EOF on one side becomes a half-close
 * (closeWrite) on the other, and the pair closes when both directions ended. An idle timeout
 * covers both directions; an optional PROXY protocol v2 header tells the backend who the
 * client was.
 */

import type { PickRequest } from "../balancer/picker.ts";
import { selectEndpoint } from "../balancer/select.ts";
import type { ListenerConfig } from "../config/types.ts";
import type { ServerConnection } from "../http/h1/server.ts";
import type { ProxyContext } from "../http/proxy.ts";
import { openConnection } from "../net/connect.ts";
import { type Deadline, sweeper } from "../net/deadlines.ts";
import type { L4Metrics } from "./metrics.ts";
import { proxyV2Header } from "./proxy_protocol.ts";
import { giveBodyBuffer, takeBodyBuffer } from "../net/buffers.ts";
import { rawSocketRid, readSocket, writeSocket } from "../net/raw_socket.ts";
import { startL4Session } from "../runtime/backends.ts";

export class TcpRelay implements Deadline, ServerConnection {
  deadline = Infinity;
  reason = "idle";
  #backend: Deno.Conn | undefined;
  #closed = false;
  /** Releases the backend's in-flight count once the relay ends. */
  #onEnd: (() => void) | undefined;

  constructor(
    private readonly client: Deno.Conn,
    private readonly cfg: ListenerConfig,
    private readonly ctx: ProxyContext,
    private readonly metrics: L4Metrics,
  ) {}

  get active(): boolean {
    return !this.#closed;
  }

  /** A relay has no request boundary: draining lets it run until the drain timeout cuts it. */
  drain(): void {}

  abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    sweeper.delete(this);
    closeQuietly(this.client);
    if (this.#backend) closeQuietly(this.#backend);
  }

  onExpire(): void {
    this.metrics.idleTimeouts.with(this.cfg.name).inc();
    this.abort();
  }

  #touch(): void {
    this.deadline = performance.now() + this.cfg.idle_timeout;
  }

  async run(): Promise<void> {
    const state = this.ctx.state();
    const poolName = state.snapshot.config.listeners.find((l) => l.name === this.cfg.name)?.routes[0]?.pool;
    const pool = poolName ? state.pools.get(poolName) : undefined;
    const remote = this.client.remoteAddr as Deno.NetAddr;
    if (!pool) {
      this.metrics.failures.with(this.cfg.name, "no_pool").inc();
      this.abort();
      return;
    }
    const req: PickRequest = { clientIp: remote.hostname, header: () => undefined, cookie: () => undefined };
    let exclude: Set<string> | undefined;
    // Connect failures are retried once on another backend: no byte was relayed yet.
    for (let attempt = 0; attempt < 2 && !this.#backend && !this.#closed; attempt++) {
      const sel = selectEndpoint(pool.picker, req, {
        isHealthy: this.ctx.health.isHealthy,
        exclude,
        panicThreshold: pool.config.panic_threshold / 100,
      });
      if (!sel) {
        if (!exclude) this.metrics.failures.with(this.cfg.name, "no_backend").inc();
        break;
      }
      const b = pool.backends.get(sel.endpoint.key)!;
      let conn: Deno.Conn;
      try {
        conn = await openConnection(b.h1.target, pool.config.connect_timeout);
      } catch {
        this.ctx.health.observe(b.key, 0);
        this.metrics.failures.with(this.cfg.name, "connect").inc();
        (exclude ??= new Set()).add(b.key);
        continue;
      }
      b.h1.connects++; // upstream_connects_total: the backend's pool stands for its L4 sessions too
      this.ctx.health.observe(b.key, 200);
      if (this.#closed) {
        // Cut (drain cut-off, stop) while connecting: abort() had no backend to close.
        closeQuietly(conn);
        return;
      }
      this.#backend = conn;
      this.#onEnd = startL4Session(b);
    }
    const backend = this.#backend;
    if (!backend || this.#closed) {
      this.abort();
      return;
    }
    this.metrics.sessionsActive.with(this.cfg.name).inc();
    sweeper.add(this);
    this.#touch();
    try {
      if (this.cfg.proxy_protocol === "v2") {
        await this.#writeAll(backend, proxyV2Header(remote, this.client.localAddr as Deno.NetAddr));
      }
      await Promise.all([
        this.#pump(this.client, backend, this.metrics.bytesUp.with(this.cfg.name)),
        this.#pump(backend, this.client, this.metrics.bytesDown.with(this.cfg.name)),
      ]);
    } catch {
      // a reset on either side ends both; nothing to report beyond the close
    } finally {
      this.metrics.sessionsActive.with(this.cfg.name).dec();
      this.#onEnd?.();
      this.abort();
    }
  }

  /**
   * All of `b` to `c`. A write that makes progress is activity, as a read is: a client reading
   * slowly but steadily is not idle, while one that stopped reading leaves the write pending and
   * the idle timeout ends the relay (closing the socket cancels the write).
   */
  async #writeAll(c: Deno.Conn, b: Uint8Array, rid = rawSocketRid(c)): Promise<void> {
    let off = await writeSocket(c, rid, b);
    while (off < b.length) {
      this.#touch();
      off += await writeSocket(c, rid, b.subarray(off));
    }
  }

  /** from → to until EOF, then half-close `to`. A failure closes both sides. */
  async #pump(from: Deno.Conn, to: Deno.Conn, bytes: { inc(n: number): void }): Promise<void> {
    // A pooled 60 KiB buffer (src/net/buffers.ts): no 64 KiB allocation per direction per
    // connection, and writes that fit one loopback segment. Returned once this direction ended:
    // every write from it has settled by then.
    const buf = takeBodyBuffer();
    const rid = rawSocketRid(from), toRid = rawSocketRid(to);
    try {
      for (;;) {
        const n = await readSocket(from, rid, buf);
        if (!n) break;
        this.#touch();
        await this.#writeAll(to, buf.subarray(0, n), toRid);
        bytes.inc(n);
      }
      try {
        await to.closeWrite();
      } catch { /* already closed */ }
    } catch (e) {
      this.abort();
      throw e;
    } finally {
      giveBodyBuffer(buf);
    }
  }
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* already closed */ }
}
