/**
 * QUIC Mode B, terminate and re-originate (`[listeners.raw_proxy]` on a quic listener): one
 * relay per client QUIC connection, to one fresh QUIC connection to the backend. The gateway
 * speaks no application protocol: every stream (bidirectional and unidirectional, whoever
 * opened it) and every datagram is copied as raw bytes, both ways (docs/QUIC.md, "Mode B").
 *
 * - The client's handshake must complete before the backend is dialled: its ALPN is what the
 *   backend is offered, and a replayed 0-RTT flight (which never completes a handshake, the
 *   replayer lacking the client's keys) thus never reaches the backend.
 * - Each accepted stream gets its peer-side stream opened at once, serially, in accept order.
 *   QUIC numbers streams per type and initiator in opening order and quinn hands accepted
 *   streams over in id order, so stream N on one leg is stream N on the other: HTTP/3's QPACK
 *   and GOAWAY refer to stream ids, and raw HTTP/3 keeps working through the relay.
 * - One buffer per stream direction (4 KiB, doubled up to 64 KiB while reads fill it), read →
 *   await write: quinn's flow control on each leg is the backpressure.
 * - CONNECTION_CLOSE of one leg closes the other with the same application code and reason
 *   (after the bytes already read from the closed leg were written to the other).
 * - Deno cannot send RESET_STREAM or a STOP_SENDING code (engine.ts header): a STOP_SENDING
 *   becomes STOP_SENDING(0) towards the other peer; a RESET_STREAM closes both connections
 *   (`stream_reset = "close"`: a FIN would make a cut stream look complete) or ends the stream
 *   with FIN (`stream_reset = "fin"`).
 */

import type { ListenerConfig, RawProxyConfig } from "../config/types.ts";
import { parseHostPort } from "../config/units.ts";
import { MemberList, memberSlot } from "../net/member_list.ts";
import type { ServerConnection } from "../http/h1/server.ts";
import type { Logger } from "../observability/log.ts";
import type { Counter, Gauge, Registry } from "../observability/metrics.ts";
import {
  type AppErrorCode,
  CLOSE_FLUSH_MS,
  connectQuic,
  QuicClientEndpoint,
  QuicConnection,
  type QuicRecvStream,
  type QuicSendStream,
} from "./engine.ts";

const P = "expressgateway_quic_raw_proxy_";

export const UP = "client_to_backend";
export const DOWN = "backend_to_client";
type Direction = typeof UP | typeof DOWN;
type Leg = "client" | "backend";

/** First read buffer of a stream direction; doubled while reads fill it, up to MAX_BUFFER. */
const MIN_BUFFER = 4096;
const MAX_BUFFER = 65536;
/**
 * Deno's close() drops stream data the peer has not acknowledged yet and nothing reports an
 * ACK, so the leg that is still open is closed at most this long after the last bytes written
 * to it (or as soon as its peer closes it), like the HTTP/3 server's close linger.
 */
const CLOSE_LINGER_MS = 1500;
/** CONNECTION_CLOSE reason phrases are cut to this many characters (they travel in one packet). */
const MAX_REASON = 120;
/** At most one "backend connect failed" warning per listener per this many ms (the counter has them all). */
const WARN_INTERVAL_MS = 5000;

/**
 * Application close codes the relay itself chooses. The application protocol is the peers'; for
 * h3 these are H3_NO_ERROR and H3_INTERNAL_ERROR, and for other ALPNs 0 and the same 0x102,
 * with a reason phrase that says what happened.
 */
export const CLOSE_FAILED: AppErrorCode = 0x102;
export function closeNoError(alpn: string): AppErrorCode {
  return alpn === "h3" ? 0x100 : 0;
}

export interface RawProxyMetrics {
  connections: Counter;
  active: Gauge;
  streams: Counter;
  bytes: Counter;
  datagrams: Counter;
  datagramDrops: Counter;
  connectFailures: Counter;
  streamAborts: Counter;
  closes: Counter;
}

/** Registered only when a quic listener has raw_proxy (docs/METRICS.md, feature families). */
export function rawProxyMetrics(r: Registry): RawProxyMetrics {
  return {
    connections: r.counter(`${P}connections_total`, "Client QUIC connections handed to the relay.", [
      "listener",
    ]),
    active: r.gauge(`${P}connections_active`, "Relayed QUIC connections open now.", ["listener"]),
    streams: r.counter(
      `${P}streams_total`,
      "Streams relayed, by direction of opening and kind (bidi, uni).",
      [
        "listener",
        "direction",
        "kind",
      ],
    ),
    bytes: r.counter(`${P}bytes_total`, "Stream bytes relayed, by direction.", ["listener", "direction"]),
    datagrams: r.counter(`${P}datagrams_total`, "QUIC DATAGRAM frames relayed, by direction.", [
      "listener",
      "direction",
    ]),
    datagramDrops: r.counter(
      `${P}datagram_drops_total`,
      "Datagrams not relayed: larger than the other leg takes, or the other peer takes none.",
      ["listener", "direction"],
    ),
    connectFailures: r.counter(
      `${P}backend_connect_failures_total`,
      "Backend connections that failed: timeout, tls (verification or ALPN), ca (unreadable file), error.",
      ["listener", "reason"],
    ),
    streamAborts: r.counter(
      `${P}stream_aborts_total`,
      "Streams a peer aborted (reset_stream, stop_sending), by direction of the data cut.",
      ["listener", "direction", "signal"],
    ),
    closes: r.counter(
      `${P}closes_total`,
      "Relayed connections ended, by who ended them: client, backend, gateway.",
      ["listener", "by"],
    ),
  };
}

/** One quic listener's raw proxy: shared metrics, the backend CA cache, and the relays' factory. */
export class RawQuicProxy {
  readonly metrics: RawProxyMetrics;
  readonly #ca = new Map<string, Promise<string>>();
  #lastWarn = -Infinity;

  constructor(readonly listener: string, registry: Registry, readonly log: Logger) {
    this.metrics = rawProxyMetrics(registry);
  }

  /** A relay for one accepted client connection, with the listener's config as of now. */
  relay(client: QuicConnection, cfg: ListenerConfig): RawQuicRelay {
    return new RawQuicRelay(client, cfg.raw_proxy!, cfg.quic_max_streams, this);
  }

  /** The backend CA file's text, read once per reload (a failed read is retried next time). */
  caPem(path: string): Promise<string> {
    let p = this.#ca.get(path);
    if (!p) {
      p = Deno.readTextFile(path);
      p.catch(() => this.#ca.delete(path));
      this.#ca.set(path, p);
    }
    return p;
  }

  /** A reload: CA files are read again by the next connections. */
  reload(): void {
    this.#ca.clear();
  }

  warnThrottled(msg: string, fields: Record<string, unknown>): void {
    const now = performance.now();
    if (now - this.#lastWarn < WARN_INTERVAL_MS) return;
    this.#lastWarn = now;
    this.log.warn(msg, { listener: this.listener, ...fields });
  }
}

/** Each relay's stream copies per leg (a copy belongs to one relay and one leg). */
const CLIENT_PUMPS = memberSlot("client-leg pumps");
const BACKEND_PUMPS = memberSlot("backend-leg pumps");

/** Relays one client QUIC connection to one fresh backend QUIC connection. */
export class RawQuicRelay implements ServerConnection {
  #backend: QuicConnection | undefined;
  #endpoint: QuicClientEndpoint | undefined;
  #alpn = "";
  #done = false;
  /** Set once the gateway closed both legs itself (abort, stream reset escalation, failure). */
  #gatewayClosed = false;
  /** Running copies, keyed by the leg they write to (a closing leg waits for those writing to the other). */
  /** Stream copies in flight per leg; MemberLists because a long connection churns through them. */
  readonly #pumps: Record<Leg, MemberList<Promise<void>>> = {
    client: new MemberList(CLIENT_PUMPS),
    backend: new MemberList(BACKEND_PUMPS),
  };
  readonly #lastWrite: Record<Leg, number> = { client: -Infinity, backend: -Infinity };
  #idMismatchLogged = false;

  constructor(
    readonly client: QuicConnection,
    readonly cfg: RawProxyConfig,
    /** Streams of each kind the backend may open towards us (the listener's quic_max_streams). */
    readonly maxStreams: number,
    readonly owner: RawQuicProxy,
  ) {}

  get active(): boolean {
    return !this.#done;
  }

  /** A drain lets relayed connections run to drain_timeout; abort() then ends them. */
  drain(): void {}

  /** Closes both legs now (drain cut-off, stop). */
  abort(): void {
    this.#closeBoth(closeNoError(this.#alpn), "gateway shutting down");
  }

  /** Runs the relay until both legs are closed. Never rejects. */
  async run(): Promise<void> {
    const m = this.owner.metrics, name = this.owner.listener;
    m.connections.with(name).inc();
    m.active.with(name).inc();
    try {
      // Only a client that completed its handshake is relayed (ALPN known, 0-RTT not replayable).
      if (!(await this.client.handshake) || this.#gatewayClosed) return;
      this.#alpn = this.client.protocol ?? this.cfg.alpn[0];
      const backend = await this.#connect();
      if (!backend) return;
      this.#backend = backend;
      this.#relayStreams(this.client, backend, UP);
      this.#relayStreams(backend, this.client, DOWN);
      this.#relayDatagrams(this.client, backend, UP).catch(() => {});
      this.#relayDatagrams(backend, this.client, DOWN).catch(() => {});
      await this.#propagateClose(backend);
    } catch (e) {
      // A bug here must end this connection only, never the listener.
      this.owner.log.error("quic relay failed", { listener: name, error: String(e) });
      this.#closeBoth(CLOSE_FAILED, "gateway internal error");
    } finally {
      this.#done = true;
      m.active.with(name).dec();
      // The backend leg's CONNECTION_CLOSE is queued; give it a moment before the socket goes.
      const ep = this.#endpoint;
      if (ep) setTimeout(() => ep.close(), CLOSE_FLUSH_MS);
    }
  }

  /** Dials the backend offering the client's ALPN; on failure closes the client and counts why. */
  async #connect(): Promise<QuicConnection | undefined> {
    const cfg = this.cfg, m = this.owner.metrics, name = this.owner.listener;
    const fail = (reason: string, detail: string) => {
      m.connectFailures.with(name, reason).inc();
      this.owner.warnThrottled("quic relay: backend connect failed", {
        backend: cfg.backend,
        reason,
        detail,
      });
      this.#gatewayClosed = true;
      m.closes.with(name, "gateway").inc();
      this.client.close(CLOSE_FAILED, cut(`backend ${cfg.backend} unreachable: ${detail}`));
      return undefined;
    };
    const target = parseHostPort(cfg.backend)!;
    let ca: string | undefined;
    if (cfg.ca) {
      try {
        ca = await this.owner.caPem(cfg.ca);
      } catch (e) {
        return fail("ca", `cannot read ${cfg.ca}: ${errorText(e)}`);
      }
    }
    try {
      // One UDP socket per relayed connection: a backend behind a 4-tuple balancer sees
      // distinct flows, and the socket is closed with the relay (never left to the GC).
      this.#endpoint = clientEndpointFor(target.host);
    } catch (e) {
      return fail("error", `no local UDP socket: ${errorText(e)}`);
    }
    const attempt = connectQuic({
      hostname: target.host,
      port: target.port,
      serverName: cfg.server_name,
      caCerts: ca ? [ca] : undefined,
      alpn: [this.#alpn],
      endpoint: this.#endpoint,
      maxIdleTimeoutMs: cfg.idle_timeout,
      // The client leg's idle timeout governs: the backend leg stays up while the client's does.
      keepAliveMs: Math.max(100, Math.min(10_000, Math.floor(cfg.idle_timeout / 3))),
      maxBidiStreams: this.maxStreams,
      maxUniStreams: this.maxStreams,
    }).then((r) => r.conn);
    attempt.catch(() => {}); // settled below, or after the race was lost (then closed there)
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((
      r,
    ) => (timer = setTimeout(() => r("timeout"), cfg.connect_timeout)));
    const gone = this.client.closed.then(() => "gone" as const);
    let outcome: QuicConnection | "timeout" | "gone" | Error;
    try {
      outcome = await Promise.race([attempt, timeout, gone]);
    } catch (e) {
      outcome = e instanceof Error ? e : new Error(String(e));
    } finally {
      clearTimeout(timer);
    }
    if (outcome instanceof QuicConnection) {
      if (!this.#gatewayClosed && !this.client.isClosed) return outcome;
      outcome.close(closeNoError(this.#alpn), "client gone");
      return undefined;
    }
    // A handshake that completes after we gave up is closed at once.
    attempt.then((c) => c.close(closeNoError(this.#alpn), "client gone"), () => {});
    if (outcome === "gone" || this.#gatewayClosed) return undefined;
    if (outcome === "timeout") return fail("timeout", `no QUIC handshake within ${cfg.connect_timeout}ms`);
    const text = outcome.message;
    return fail(/cryptographic handshake|certificate|tls|alert/i.test(text) ? "tls" : "error", text);
  }

  /** Accept loops for both stream kinds opened by `from`'s peer, mirrored on `to`. */
  #relayStreams(from: QuicConnection, to: QuicConnection, dir: Direction): void {
    this.#acceptBidi(from, to, dir).catch(() => {});
    this.#acceptUni(from, to, dir).catch(() => {});
  }

  async #acceptBidi(from: QuicConnection, to: QuicConnection, dir: Direction): Promise<void> {
    for (;;) {
      const s = await from.acceptBidi();
      if (!s) return;
      // Opened before the next accept: the peer-side id is the accepted id (see header).
      let peer;
      try {
        peer = await to.openBidi();
      } catch {
        s.recv.stopSending(0);
        s.send.resetStream(0);
        return; // `to` is closed: the close propagation ends the other leg
      }
      this.#checkIds(s.recv.id, peer.send.id, dir);
      this.owner.metrics.streams.with(this.owner.listener, dir, "bidi").inc();
      this.#pipe(s.recv, peer.send, dir);
      this.#pipe(peer.recv, s.send, dir === UP ? DOWN : UP);
    }
  }

  async #acceptUni(from: QuicConnection, to: QuicConnection, dir: Direction): Promise<void> {
    for (;;) {
      const recv = await from.acceptUni();
      if (!recv) return;
      let send;
      try {
        send = await to.openUni();
      } catch {
        recv.stopSending(0);
        return;
      }
      this.#checkIds(recv.id, send.id, dir);
      this.owner.metrics.streams.with(this.owner.listener, dir, "uni").inc();
      this.#pipe(recv, send, dir);
    }
  }

  /** Ids match unless a peer broke QUIC's ordering rules; said once per connection, for H3's sake. */
  #checkIds(accepted: bigint, opened: bigint, dir: Direction): void {
    if (accepted === opened || this.#idMismatchLogged) return;
    this.#idMismatchLogged = true;
    this.owner.log.warn("quic relay: stream ids differ between legs", {
      listener: this.owner.listener,
      direction: dir,
      accepted: String(accepted),
      opened: String(opened),
    });
  }

  #pipe(src: QuicRecvStream, dst: QuicSendStream, dir: Direction): void {
    const leg: Leg = dir === UP ? "backend" : "client";
    const p = this.#copy(src, dst, dir, leg).catch(() => {});
    this.#pumps[leg].add(p);
    p.finally(() => this.#pumps[leg].delete(p));
  }

  /** Copies one stream direction: read → await write, FIN → finish. */
  async #copy(src: QuicRecvStream, dst: QuicSendStream, dir: Direction, leg: Leg): Promise<void> {
    const m = this.owner.metrics, name = this.owner.listener;
    const bytes = m.bytes.with(name, dir);
    let view = new Uint8Array(MIN_BUFFER);
    for (;;) {
      let chunk: Uint8Array<ArrayBuffer> | null;
      try {
        chunk = await src.readInto(view);
      } catch (e) {
        if (isStreamReset(e)) this.#onReset(src, dst, dir, e);
        return; // otherwise the connection is gone: its close is propagated, not a FIN
      }
      if (chunk === null) {
        await dst.finish();
        this.#lastWrite[leg] = performance.now();
        return;
      }
      try {
        await dst.write(chunk);
      } catch (e) {
        if (isStopSending(e)) {
          // The receiver wants no more: tell the sender (with code 0, all Deno can send).
          m.streamAborts.with(name, dir, "stop_sending").inc();
          src.stopSending(stopCode(e));
        }
        return;
      }
      bytes.inc(chunk.length);
      this.#lastWrite[leg] = performance.now();
      const full = chunk.length === chunk.buffer.byteLength;
      view = full && chunk.buffer.byteLength < MAX_BUFFER
        ? new Uint8Array(chunk.buffer.byteLength * 2)
        : new Uint8Array(chunk.buffer);
    }
  }

  /** RESET_STREAM from the sender: Deno cannot pass it on (no reset, only FIN). */
  #onReset(src: QuicRecvStream, dst: QuicSendStream, dir: Direction, e: unknown): void {
    this.owner.metrics.streamAborts.with(this.owner.listener, dir, "reset_stream").inc();
    if (this.cfg.stream_reset === "fin") {
      dst.resetStream(resetCode(e)); // a FIN: the receiver sees the stream end, maybe short
      return;
    }
    const who = dir === UP ? "client" : "backend";
    this.#closeBoth(
      CLOSE_FAILED,
      cut(`stream ${src.id} reset by the ${who} (code ${resetCode(e)}); the gateway cannot relay a reset`),
    );
  }

  /** Datagrams `from` receives go out on `to`; a datagram `to` cannot take is dropped and counted. */
  async #relayDatagrams(from: QuicConnection, to: QuicConnection, dir: Direction): Promise<void> {
    const m = this.owner.metrics, name = this.owner.listener;
    const sent = m.datagrams.with(name, dir), dropped = m.datagramDrops.with(name, dir);
    for (;;) {
      let d: Uint8Array;
      try {
        d = await from.readDatagram();
      } catch {
        return; // the connection closed
      }
      if (d.length > to.maxDatagramSize) {
        dropped.inc(); // too big for the other path, or that peer takes no datagrams (0)
        continue;
      }
      try {
        await to.sendDatagram(d);
        sent.inc();
      } catch {
        dropped.inc();
        if (to.isClosed) return;
      }
    }
  }

  /**
   * Waits for the first leg to close and closes the other with its code and reason. A leg
   * that ended without an application CONNECTION_CLOSE (idle timeout, transport error) closes
   * the other with the protocol's no-error code (idle) or CLOSE_FAILED, and says why.
   */
  async #propagateClose(backend: QuicConnection): Promise<void> {
    const first = await Promise.race([
      this.client.closed.then((info) => ({ from: "client" as Leg, info })),
      backend.closed.then((info) => ({ from: "backend" as Leg, info })),
    ]);
    if (!first.info.local && !this.#gatewayClosed) {
      const toLeg: Leg = first.from === "client" ? "backend" : "client";
      const to = toLeg === "client" ? this.client : backend;
      this.owner.metrics.closes.with(this.owner.listener, first.from).inc();
      await this.#linger(toLeg, to);
      let code = first.info.code, reason = first.info.reason;
      if (first.info.transport) {
        const idle = /timed out|idle/i.test(reason);
        code = idle ? closeNoError(this.#alpn) : CLOSE_FAILED;
        reason = `${first.from} leg ${idle ? "idle timeout" : `lost: ${reason}`}`;
      }
      to.close(code, cut(reason));
    }
    await Promise.all([this.client.closed, backend.closed]);
  }

  /**
   * Before closing `leg`: the copies writing to it (their source is the leg that closed) finish
   * their last write, then the peer gets up to CLOSE_LINGER_MS after the last byte to ACK it.
   */
  async #linger(leg: Leg, conn: QuicConnection): Promise<void> {
    const deadline = performance.now() + CLOSE_LINGER_MS;
    const closed = conn.closed.then(() => {});
    const pumps = [...this.#pumps[leg]];
    if (pumps.length > 0) await raceTimeout([Promise.allSettled(pumps), closed], CLOSE_LINGER_MS);
    const until = Math.min(deadline, this.#lastWrite[leg] + CLOSE_LINGER_MS);
    if (until > performance.now() && !conn.isClosed) await raceTimeout([closed], until - performance.now());
  }

  #closeBoth(code: AppErrorCode, reason: string): void {
    if (this.#gatewayClosed) return;
    this.#gatewayClosed = true;
    this.owner.metrics.closes.with(this.owner.listener, "gateway").inc();
    this.client.close(code, reason);
    this.#backend?.close(code, reason);
  }
}

/**
 * A socket that can reach `host`: IPv4 for an IPv4 address, otherwise dual-stack "::" (a name may
 * resolve to either family; Deno picks the first address), IPv4 where IPv6 is disabled.
 */
function clientEndpointFor(host: string): QuicClientEndpoint {
  if (/^[\d.]+$/.test(host)) return new QuicClientEndpoint("0.0.0.0");
  try {
    return new QuicClientEndpoint("::");
  } catch (e) {
    if (host.includes(":")) throw e;
    return new QuicClientEndpoint("0.0.0.0");
  }
}

/** quinn's ReadError::Reset, as Deno words it: "stream reset by peer: error N". */
function isStreamReset(e: unknown): boolean {
  return /reset by peer/i.test(errorText(e));
}

/** quinn's WriteError::Stopped: "sending stopped by peer: error N". */
function isStopSending(e: unknown): boolean {
  return /stopped by peer/i.test(errorText(e));
}

function resetCode(e: unknown): number {
  return Number(/error (\d+)/.exec(errorText(e))?.[1] ?? 0);
}

const stopCode = resetCode;

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function cut(reason: string): string {
  return reason.length <= MAX_REASON ? reason : `${reason.slice(0, MAX_REASON - 1)}…`;
}

function raceTimeout(ps: Promise<unknown>[], ms: number): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([...ps, new Promise((r) => (timer = setTimeout(r, Math.max(0, ms))))])
    .finally(() => clearTimeout(timer));
}
