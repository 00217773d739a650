/**
 * A tunnel: two ByteStreams (the client's side and the upstream's) relayed as raw bytes both
 * ways, each direction a read → await write loop (as the L4 relay), so a peer that stops reading
 * stops the other peer through TCP or HTTP/2 flow control rather than growing a buffer. EOF on one
 * side becomes a half-close of the other; the tunnel ends when both directions ended, or when
 * either side fails (then both are torn down).
 *
 * The gateway ends a tunnel itself on its idle timeout, on its maximum lifetime, at the end of a
 * drain, or when a reload removes its backend. A WebSocket then gets a close frame with 1001
 * (going away) on each side: the relay follows frame boundaries in each direction (FrameTracker),
 * finishes the frame in flight, writes the close frame, half-closes, and gives the peers
 * CLOSE_GRACE_MS to answer and close before it cuts both. A CONNECT tunnel is just closed.
 */

import type { ByteStream, TunnelTotals, Upgrade } from "../http/exchange.ts";
import { type Deadline, sweeper } from "../net/deadlines.ts";
import { MemberList, memberSlot } from "../net/member_list.ts";
import type { DataPlaneMetrics } from "../observability/gateway_metrics.ts";
import { CloseCode, closeFrame, FrameTracker } from "./frames.ts";

/** How long peers get to answer our close frame and end their side before both are cut. */
export const CLOSE_GRACE_MS = 1000;

export type TunnelEndReason =
  | "closed"
  | "error"
  | "idle_timeout"
  | "max_lifetime"
  | "drain"
  | "backend_removed"
  | "client_gone";

export interface TunnelOptions {
  kind: "websocket" | "connect";
  listener: string;
  /** No byte either way for this long ends the tunnel; 0 = never. */
  idleTimeoutMs: number;
  /** The tunnel ends this long after it began, busy or not; 0 = never. */
  maxLifetimeMs: number;
  /** Identity of the backend (backendKey) for a reload that removes it. */
  backendKey?: string;
  /** Called once when the tunnel ended (or was cancelled before it began). */
  onEnd?: () => void;
}

interface Direction {
  readonly src: ByteStream;
  readonly dst: ByteStream;
  /** WebSocket frame boundaries of what goes to dst (undefined for CONNECT tunnels). */
  readonly tracker: FrameTracker | undefined;
  /** dst is the server side: frames the gateway writes there must be masked. */
  readonly masked: boolean;
  bytes: number;
  /** A write to dst is in progress. */
  writing: boolean;
  /** Nothing more goes to dst (its half-close was sent, after our close frame when ending). */
  done: boolean;
}

export class Tunnel implements Upgrade, Deadline {
  deadline = Infinity;
  reason = "tunnel";
  #client: ByteStream | undefined;
  #dirs: Direction[] = [];
  #started = 0;
  #lastActivity = 0;
  #ending: TunnelEndReason | undefined;
  #grace: ReturnType<typeof setTimeout> | undefined;
  #finished = false;
  /** A side failed (reset, write error) rather than ending cleanly. */
  #failed = false;
  #endCallbacks: Array<() => void> = [];
  #resolveDone!: () => void;
  readonly #done = new Promise<void>((r) => this.#resolveDone = r);

  constructor(
    readonly upstream: ByteStream,
    readonly opts: TunnelOptions,
    private readonly registry?: TunnelRegistry,
  ) {
    if (opts.onEnd) this.#endCallbacks.push(opts.onEnd);
  }

  get kind(): "websocket" | "connect" {
    return this.opts.kind;
  }

  get backendKey(): string | undefined {
    return this.opts.backendKey;
  }

  /** Why the gateway is ending it, if it is. */
  get ending(): TunnelEndReason | undefined {
    return this.#ending;
  }

  cancel(): void {
    if (this.#finished) return;
    this.#ending ??= "client_gone";
    this.upstream.abort();
    this.#finish(false);
  }

  async run(client: ByteStream): Promise<TunnelTotals> {
    if (this.#finished) {
      client.abort();
      return { fromClient: 0, toClient: 0 };
    }
    this.#client = client;
    const ws = this.opts.kind === "websocket";
    const up: Direction = {
      src: client,
      dst: this.upstream,
      tracker: ws ? new FrameTracker() : undefined,
      masked: true,
      bytes: 0,
      writing: false,
      done: false,
    };
    const down: Direction = {
      src: this.upstream,
      dst: client,
      tracker: ws ? new FrameTracker() : undefined,
      masked: false,
      bytes: 0,
      writing: false,
      done: false,
    };
    this.#dirs = [up, down];
    this.#started = this.#lastActivity = performance.now();
    this.registry?.add(this);
    if (this.opts.idleTimeoutMs > 0 || this.opts.maxLifetimeMs > 0) {
      this.#arm();
      sweeper.add(this);
    }
    await Promise.all([this.#pump(up), this.#pump(down)]);
    this.#finish(true);
    return { fromClient: up.bytes, toClient: down.bytes };
  }

  /**
   * Ends the tunnel on the gateway's initiative: close frames (1001) for a WebSocket, then cut
   * after CLOSE_GRACE_MS at most. Resolves once the tunnel is over.
   */
  shutdown(reason: TunnelEndReason): Promise<void> {
    if (this.#finished || this.#ending !== undefined) return this.#done;
    this.#ending = reason;
    this.deadline = Infinity;
    if (this.opts.kind !== "websocket" || !this.#client) {
      this.#abortBoth();
      return this.#done;
    }
    for (const d of this.#dirs) if (!d.writing) void this.#closeDirection(d);
    this.#grace = setTimeout(() => this.#abortBoth(), CLOSE_GRACE_MS);
    return this.#done;
  }

  onEnd(fn: () => void): void {
    if (this.#finished) fn();
    else this.#endCallbacks.push(fn);
  }

  // --- Deadline: idle timeout and maximum lifetime --------------------------------------------

  #arm(): void {
    const { idleTimeoutMs: idle, maxLifetimeMs: life } = this.opts;
    this.deadline = Math.min(
      life > 0 ? this.#started + life : Infinity,
      idle > 0 ? this.#lastActivity + idle : Infinity,
    );
  }

  onExpire(): void {
    const now = performance.now();
    const { idleTimeoutMs: idle, maxLifetimeMs: life } = this.opts;
    if (life > 0 && now >= this.#started + life) void this.shutdown("max_lifetime");
    else if (idle > 0 && now >= this.#lastActivity + idle) void this.shutdown("idle_timeout");
    else this.#arm(); // activity since the deadline was set: look again later
  }

  // --- relay ----------------------------------------------------------------------------------

  async #pump(d: Direction): Promise<void> {
    try {
      for (;;) {
        const chunk = await d.src.read();
        if (chunk === null) break;
        this.#lastActivity = performance.now();
        if (d.done) continue; // after our close frame: drop what the peer still sends until it ends
        let n = chunk.length;
        if (d.tracker) n = d.tracker.advance(chunk, this.#ending !== undefined);
        if (n > 0) {
          d.writing = true;
          await d.dst.write(n === chunk.length ? chunk : chunk.subarray(0, n));
          d.writing = false;
          d.bytes += n;
        }
        if (this.#ending !== undefined) await this.#closeDirection(d);
      }
      if (!d.done) {
        d.done = true;
        await d.dst.closeWrite();
      }
    } catch {
      // A reset or failed write on either side ends both directions.
      d.writing = false;
      this.#failed = true;
      this.#abortBoth();
    }
  }

  /** When ending: at a frame boundary, the close frame goes to dst, then its half-close. */
  async #closeDirection(d: Direction): Promise<void> {
    if (d.done || (d.tracker && !d.tracker.atBoundary)) return; // the pump finishes the frame first
    d.done = true;
    try {
      if (d.tracker) {
        d.writing = true;
        await d.dst.write(closeFrame(CloseCode.GOING_AWAY, d.masked));
        d.writing = false;
      }
      await d.dst.closeWrite();
    } catch {
      this.#abortBoth();
    }
  }

  #abortBoth(): void {
    this.upstream.abort();
    this.#client?.abort();
  }

  #finish(ran: boolean): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#grace !== undefined) clearTimeout(this.#grace);
    sweeper.delete(this);
    this.#abortBoth();
    if (ran) this.registry?.delete(this, this.#ending ?? (this.#failed ? "error" : "closed"));
    for (const fn of this.#endCallbacks.splice(0)) fn();
    this.#resolveDone();
  }
}

const TUNNELS = memberSlot("tunnels");

/**
 * The open tunnels of one data plane, for /metrics (opened, active, ended by reason), the drain
 * (close them all at its end) and reloads (close those whose backend was removed).
 */
export class TunnelRegistry {
  /** A MemberList, not a Set: tunnels come and go for the process's life (net/member_list.ts). */
  readonly #open = new MemberList<Tunnel>(TUNNELS);

  constructor(private readonly metrics?: DataPlaneMetrics) {}

  get size(): number {
    return this.#open.size;
  }

  add(t: Tunnel): void {
    this.#open.add(t);
    this.metrics?.tunnelsTotal.with(t.opts.listener, t.kind).inc();
    this.metrics?.tunnelsActive.with(t.opts.listener, t.kind).inc();
  }

  delete(t: Tunnel, reason: TunnelEndReason): void {
    if (!this.#open.delete(t)) return;
    this.metrics?.tunnelsActive.with(t.opts.listener, t.kind).dec();
    this.metrics?.tunnelCloses.with(t.opts.listener, t.kind, reason).inc();
  }

  /** Ends every open tunnel (close 1001 for WebSockets); resolves when all ended (≤ CLOSE_GRACE_MS + ε). */
  async closeAll(reason: TunnelEndReason): Promise<void> {
    await Promise.all([...this.#open].map((t) => t.shutdown(reason)));
  }

  /** Ends the tunnels to backends a reload removed. */
  closeBackends(keys: ReadonlySet<string>): void {
    if (keys.size === 0) return;
    for (const t of this.#open) {
      if (t.backendKey !== undefined && keys.has(t.backendKey)) void t.shutdown("backend_removed");
    }
  }
}
