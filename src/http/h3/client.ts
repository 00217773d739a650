/**
 * The HTTP/3 upstream client (backends with `protocol = "h3"`): pooled QUIC connections, each
 * carrying many request streams, certificate verification always on (Deno's QUIC client has no
 * way to turn it off: the chain and name are checked against the webpki roots plus the
 * backend's `tls.ca`). 0-RTT is not used.
 *
 * Per connection we open a control stream (SETTINGS: QPACK table capacity 0, so the backend
 * answers with static references and literals only and never blocks us) and read the backend's
 * control stream for GOAWAY, after which the connection takes no new request and closes when
 * its streams are done.
 *
 * Deno gap (docs/QUIC.md): a stream cannot be reset. A request body that fails mid-way is ended
 * with FIN when it announced a content-length (the backend sees fewer bytes: malformed, never
 * complete). Without one a FIN would hand the backend the cut body as complete, so the stream is
 * held open instead (UpstreamStream.holdOpen) until the backend stops it; closing the connection
 * would fail every other request on it.
 */

import type { BackendConfig } from "../../config/types.ts";
import { connectTarget } from "../../net/connect.ts";
import type { Body, ByteStream, HeaderList, ProxyRequest } from "../exchange.ts";
import { type ForwardTimeouts, type PoolLimits, type UpstreamAnswer, UpstreamError } from "../h1/client.ts";
import {
  type H2ResponseHead,
  parseResponseFields,
  parseTrailerFields,
  requestFields,
  trailerFields,
} from "../h2/headers.ts";
import {
  connectQuic,
  type QuicBidiStream,
  QuicClientEndpoint,
  type QuicConnection,
  type QuicRecvStream,
  type QuicSendStream,
} from "../../quic/engine.ts";
import {
  checkRequestStreamFrame,
  encodeFrame,
  encodeSettings,
  errorName,
  frameHeader,
  FrameReader,
  FrameType,
  H3,
  H3Error,
  isReservedH2FrameType,
  nextControlFrame,
  parseSettings,
  parseSingleVarint,
  readCriticalStream,
  Setting,
  StreamType,
} from "./frames.ts";
import { DecoderStreamParser, encodeFieldSection, type HeaderField, QpackDecoder } from "./qpack.ts";
import { H3TunnelStream } from "./tunnel.ts";

/** QUIC target of an h3 backend: SNI/verification name and extra roots from its tls table. */
export async function h3TargetOf(b: BackendConfig): Promise<H3Target> {
  const t = await connectTarget(b, true, ["h3"]);
  return { hostname: t.hostname, port: t.port, serverName: t.tls!.serverName, caCerts: t.tls!.caCerts };
}

export interface H3Target {
  hostname: string;
  port: number;
  /** SNI and certificate name. */
  serverName: string;
  /** Extra trusted roots (PEM), from the backend's tls.ca. */
  caCerts?: string[];
}

/** Request streams one connection carries at once before the pool opens another. */
const STREAMS_PER_CONNECTION = 100;
/** Largest response field section we accept (SETTINGS_MAX_FIELD_SECTION_SIZE). */
const MAX_RESPONSE_FIELDS = 64 * 1024;
const COALESCE_LIMIT = 16 * 1024;
/** How long after a critical stream ended its connection's close may still be reported. */
const CRITICAL_END_GRACE_MS = 50;
/** How often a held stream (UpstreamStream.holdOpen) checks whether the backend has stopped it. */
const HOLD_PROBE_MS = 1000;
/**
 * A reserved frame type with no payload (RFC 9114 §7.2.8: 0x1f * N + 0x21, which a receiver must
 * ignore): the probe a held stream writes, since Deno reports a peer's STOP_SENDING only to a
 * write that carries bytes.
 */
const GREASE_FRAME = Uint8Array.of(0x21, 0x00);

class H3ClientConn {
  active = 0;
  /** Takes new requests (false after GOAWAY, idle close or failure). */
  usable = true;
  readonly decoder = new QpackDecoder({
    maxTableCapacity: 0,
    maxBlockedStreams: 0,
    maxFieldSectionSize: MAX_RESPONSE_FIELDS,
  });
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** Pending decision on a critical stream that ended (#streamFailed). */
  #criticalEnd: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #gotSettings!: (s: ReadonlyMap<number, number>) => void;
  /** The backend's SETTINGS once its control stream delivered them (empty if it closed first). */
  readonly peerSettings: Promise<ReadonlyMap<number, number>> = new Promise((r) => this.#gotSettings = r);

  constructor(readonly pool: H3Pool, readonly qc: QuicConnection) {
    qc.closed.then(() => {
      this.#closed = true;
      this.usable = false;
      clearTimeout(this.#idleTimer);
      clearTimeout(this.#criticalEnd);
      this.#kept.length = 0;
      this.#gotSettings(new Map());
      pool.forget(this);
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Our control stream, held for the connection's life: Deno finishes a send stream whose object
   * is garbage-collected, and a backend takes its end for H3_CLOSED_CRITICAL_STREAM.
   */
  #control: QuicSendStream | undefined;

  async start(): Promise<void> {
    const control = await this.qc.openUni();
    const settings = encodeSettings([[Setting.MAX_FIELD_SECTION_SIZE, MAX_RESPONSE_FIELDS]]);
    const first = new Uint8Array(1 + settings.length);
    first[0] = StreamType.CONTROL;
    first.set(settings, 1);
    await control.write(first);
    this.#control = control;
    this.#readPeerStreams().catch((e) => this.#streamFailed(e));
  }

  /** A peer stream's reader stopped: a protocol error of the backend's, or the connection ended. */
  #streamFailed(e: unknown): void {
    if (e instanceof H3Error && e.code === H3.CLOSED_CRITICAL_STREAM) {
      // Either way the connection is done: no new requests on it from now. But a critical stream
      // also ends with its connection, and Deno may report the connection's close just after the
      // stream's end: whether the backend closed it (counted, our close) is decided once it could.
      this.usable = false;
      this.pool.retire(this);
      clearTimeout(this.#criticalEnd);
      this.#criticalEnd = setTimeout(() => this.refuse(e), CRITICAL_END_GRACE_MS);
      Deno.unrefTimer(this.#criticalEnd);
    } else if (e instanceof H3Error) this.refuse(e);
    else this.fail(e);
  }

  async #readPeerStreams(): Promise<void> {
    for (;;) {
      const s = await this.qc.acceptUni();
      if (!s) return;
      this.#readUni(s).catch((e) => this.#streamFailed(e));
    }
  }

  /** The last GOAWAY's stream id: a later one may not raise it (RFC 9114 §5.2). */
  #goawayId = Infinity;

  async #readControl(r: FrameReader): Promise<void> {
    let first = true;
    for (;;) {
      // Its end may also be its connection's, reported just after: #streamFailed tells them apart.
      const h = await nextControlFrame(r, this.#ending);
      if (h === null) return;
      if (first && h.type !== FrameType.SETTINGS) {
        throw new H3Error(H3.MISSING_SETTINGS, "no SETTINGS first");
      }
      if (h.type === FrameType.SETTINGS) {
        if (!first) throw new H3Error(H3.FRAME_UNEXPECTED, "second SETTINGS");
        first = false;
        if (h.length > 16 * 1024) throw new H3Error(H3.EXCESSIVE_LOAD, "SETTINGS too large");
        this.#gotSettings(parseSettings(await r.payload(h.length)));
      } else if (h.type === FrameType.GOAWAY) {
        if (h.length > 8) throw new H3Error(H3.FRAME_ERROR, "GOAWAY too long");
        const id = parseSingleVarint(await r.payload(h.length), "GOAWAY");
        // From a server it names a client-initiated bidirectional stream, and never grows (§5.2).
        if (id % 4 !== 0) throw new H3Error(H3.ID_ERROR, `GOAWAY names stream ${id}, not a request stream`);
        if (id > this.#goawayId) {
          throw new H3Error(H3.ID_ERROR, `GOAWAY raised from ${this.#goawayId} to ${id}`);
        }
        this.#goawayId = id;
        this.retire();
      } else if (
        h.type === FrameType.DATA || h.type === FrameType.HEADERS || h.type === FrameType.PUSH_PROMISE ||
        h.type === FrameType.MAX_PUSH_ID || isReservedH2FrameType(h.type)
      ) {
        // MAX_PUSH_ID is a client's frame (§7.2.7); the rest never go on a control stream.
        throw new H3Error(H3.FRAME_UNEXPECTED, `frame 0x${h.type.toString(16)} on the control stream`);
      } else if (h.type === FrameType.CANCEL_PUSH) {
        // We allow no pushes (no MAX_PUSH_ID sent), so every push ID is out of range (§7.2.3).
        throw new H3Error(H3.ID_ERROR, "CANCEL_PUSH without MAX_PUSH_ID");
      } else await r.discard(h.length);
    }
  }

  /** The backend's critical streams seen so far: one of each type is allowed (RFC 9114 §6.2.1, RFC 9204 §4.2). */
  readonly #peerStreams = { control: false, encoder: false, decoder: false };
  /** The connection is closing (by either side): its critical streams may end. */
  readonly #ending = () => this.#closed || this.qc.isClosed;

  async #readUni(s: QuicRecvStream): Promise<void> {
    const r = new FrameReader(s, 1024);
    const type = await r.varint().catch(() => null);
    if (type === StreamType.CONTROL) {
      if (this.#peerStreams.control) throw new H3Error(H3.STREAM_CREATION_ERROR, "second control stream");
      this.#peerStreams.control = true;
      // A reset inside a frame (the header read maps its own: nextControlFrame) ends it as well.
      return await this.#readControl(r).catch((e) => {
        throw e instanceof H3Error
          ? e
          : new H3Error(H3.CLOSED_CRITICAL_STREAM, "backend's control stream failed");
      });
    }
    if (type === StreamType.QPACK_ENCODER) {
      if (this.#peerStreams.encoder) {
        throw new H3Error(H3.STREAM_CREATION_ERROR, "second QPACK encoder stream");
      }
      this.#peerStreams.encoder = true;
      // Our table capacity is 0: any instruction but "capacity 0" fails in the decoder.
      return await readCriticalStream(
        r,
        "QPACK encoder",
        (b) => this.decoder.onEncoderStream(b),
        this.#ending,
      );
    }
    if (type === StreamType.QPACK_DECODER) {
      if (this.#peerStreams.decoder) {
        throw new H3Error(H3.STREAM_CREATION_ERROR, "second QPACK decoder stream");
      }
      this.#peerStreams.decoder = true;
      // We never insert, so only Stream Cancellations are valid on it.
      const parser = new DecoderStreamParser();
      return await readCriticalStream(r, "QPACK decoder", (b) => parser.feed(b), this.#ending);
    }
    if (type === StreamType.PUSH) throw new H3Error(H3.ID_ERROR, "push stream without MAX_PUSH_ID");
    s.stopSending(H3.STREAM_CREATION_ERROR); // unknown / GREASE stream types: not read
  }

  /**
   * A connection error the backend caused (RFC 9114 §8): counted by its code
   * (upstream_protocol_events_total), then the connection closes with that code.
   */
  refuse(e: H3Error): void {
    if (this.#ending()) return;
    this.pool.event(errorName(e.code).toLowerCase());
    this.fail(e);
  }

  /** A connection error: close with its code; in-flight requests fail. */
  fail(e: unknown): void {
    if (this.#closed) return;
    this.usable = false;
    const code = e instanceof H3Error ? e.code : H3.INTERNAL_ERROR;
    this.qc.close(code, e instanceof Error ? e.message.slice(0, 200) : "");
  }

  /** Send streams that must live as long as this connection (a held stream past its bound). */
  #kept: QuicSendStream[] = [];

  keepUntilClosed(s: QuicSendStream): void {
    this.#kept.push(s);
  }

  /** No new requests; close once the last one is done. */
  retire(): void {
    this.usable = false;
    this.pool.retire(this);
    if (this.active === 0) this.qc.close(H3.NO_ERROR, "");
  }

  /** A slot taken again without asking (a held stream whose slot was given back: holdOpen). */
  retake(): void {
    this.active++;
    clearTimeout(this.#idleTimer);
  }

  reserve(): boolean {
    if (!this.usable || this.#closed || this.active >= STREAMS_PER_CONNECTION) return false;
    this.active++;
    clearTimeout(this.#idleTimer);
    return true;
  }

  release(): void {
    this.active--;
    if (this.active > 0) return;
    if (!this.usable) {
      this.qc.close(H3.NO_ERROR, "");
      return;
    }
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => this.retire(), this.pool.limits.idleTimeoutMs);
    Deno.unrefTimer(this.#idleTimer);
  }
}

interface Waiter {
  resolve(c: H3ClientConn): void;
  reject(e: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

export class H3Pool {
  #conns: H3ClientConn[] = [];
  #connecting = 0;
  #waiters: Waiter[] = [];
  #closed = false;
  #endpoint: QuicClientEndpoint | undefined;
  /** An endpoint passed in belongs to the caller and outlives the pool (never closed here). */
  readonly #sharedEndpoint: boolean;

  constructor(
    readonly key: string,
    public target: H3Target,
    public limits: PoolLimits,
    endpoint?: QuicClientEndpoint,
  ) {
    this.#endpoint = endpoint;
    this.#sharedEndpoint = endpoint !== undefined;
  }

  /** Connections opened (QUIC handshake done, h3 negotiated) since the pool was made. */
  connects = 0;

  /**
   * What this pool's backends sent that the gateway refused, by event (`h3_malformed`,
   * `h3_head_too_large`, or the lower-cased name of the connection error it closed with, e.g.
   * `h3_frame_unexpected`), since the pool was made: read into a metric at scrape time.
   */
  readonly events = new Map<string, number>();

  event(kind: string): void {
    this.events.set(kind, (this.events.get(kind) ?? 0) + 1);
  }

  get open(): number {
    return this.#conns.length + this.#connecting;
  }

  get idle(): number {
    return this.#conns.filter((c) => c.active === 0).length;
  }

  /** A connection with a reserved stream slot; throws UpstreamError. */
  acquire(): Promise<H3ClientConn> {
    if (this.#closed) return Promise.reject(new UpstreamError(`backend ${this.key} removed`, 502, true));
    for (const c of this.#conns) if (c.reserve()) return Promise.resolve(c);
    return new Promise<H3ClientConn>((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.#waiters.indexOf(w);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(
            new UpstreamError(
              `no HTTP/3 connection to ${this.key} within ${this.limits.connectTimeoutMs}ms`,
              504,
              true,
            ),
          );
        }, this.limits.connectTimeoutMs),
      };
      this.#waiters.push(w);
      this.#grow();
    });
  }

  #dispatch(): void {
    while (this.#waiters.length > 0) {
      const c = this.#conns.find((x) => x.reserve());
      if (!c) break;
      const w = this.#waiters.shift()!;
      clearTimeout(w.timer);
      w.resolve(c);
    }
    this.#grow();
  }

  #grow(): void {
    while (
      !this.#closed && this.#waiters.length > this.#connecting * STREAMS_PER_CONNECTION &&
      this.open < this.limits.maxTotal
    ) {
      this.#connect();
    }
  }

  async #connect(): Promise<void> {
    this.#connecting++;
    let qc: QuicConnection | undefined;
    let connecting: ReturnType<typeof connectQuic> | undefined;
    try {
      this.#endpoint ??= new QuicClientEndpoint(this.target.hostname.includes(":") ? "::" : "0.0.0.0");
      let timer: ReturnType<typeof setTimeout> | undefined;
      connecting = connectQuic({
        hostname: this.target.hostname,
        port: this.target.port,
        serverName: this.target.serverName,
        caCerts: this.target.caCerts,
        alpn: ["h3"],
        endpoint: this.#endpoint,
        maxIdleTimeoutMs: Math.max(this.limits.idleTimeoutMs + 5000, 10_000),
        keepAliveMs: 5000,
        maxBidiStreams: 0,
        maxUniStreams: 16,
      });
      const res = await Promise.race([
        connecting,
        new Promise<never>((_, rej) => {
          timer = setTimeout(
            () =>
              rej(new Error(`QUIC connect to ${this.key} timed out after ${this.limits.connectTimeoutMs}ms`)),
            this.limits.connectTimeoutMs,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      qc = res.conn;
      if (qc.protocol !== "h3") {
        throw new Error(`${this.key} did not negotiate h3 (ALPN ${qc.protocol ?? "none"})`);
      }
      const c = new H3ClientConn(this, qc);
      await c.start();
      this.#connecting--;
      this.connects++;
      if (this.#closed) {
        qc.close(H3.NO_ERROR, "");
        return;
      }
      this.#conns.push(c);
      this.#dispatch();
    } catch (e) {
      this.#connecting--;
      qc?.close(H3.INTERNAL_ERROR, "");
      // Timed out (or failed after it): a handshake that still completes later is closed at once,
      // not left up by its keep-alives (a health probe's endpoint is shared and stays open).
      if (qc === undefined) connecting?.then((r) => r.conn.close(H3.NO_ERROR, ""), () => {});
      // A pool closed meanwhile (a backend removed) frees its own socket now.
      if (this.#closed && this.#conns.length === 0 && this.#connecting === 0) this.#closeEndpoint();
      if (this.#connecting === 0 && !this.#conns.some((x) => x.usable)) {
        const err = new UpstreamError(e instanceof Error ? e.message : String(e), 502, true);
        for (const w of this.#waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(err);
        }
      } else this.#grow();
    }
  }

  retire(c: H3ClientConn): void {
    const i = this.#conns.indexOf(c);
    if (i >= 0) this.#conns.splice(i, 1);
    this.#grow();
  }

  forget(c: H3ClientConn): void {
    this.retire(c);
    if (this.#closed && this.#conns.length === 0 && this.#connecting === 0) this.#closeEndpoint();
  }

  /** A stream slot was freed: hand it to a waiter. */
  released(): void {
    this.#dispatch();
  }

  #closeEndpoint(): void {
    if (this.#sharedEndpoint) return;
    this.#endpoint?.close();
    this.#endpoint = undefined;
  }

  /** Backend removed or gateway stopping: idle connections close, busy ones after their streams. */
  close(): void {
    this.#closed = true;
    for (const c of this.#conns.splice(0)) c.retire();
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new UpstreamError(`backend ${this.key} removed`, 502, true));
    }
    if (this.#connecting === 0 && this.#conns.length === 0) {
      // Let the CONNECTION_CLOSE frames go out before the socket does.
      setTimeout(() => this.#closeEndpoint(), 100);
    }
  }

  /** Closes everything now. */
  abort(): void {
    this.#closed = true;
    for (const c of this.#conns.splice(0)) c.qc.close(H3.NO_ERROR, "");
    this.close();
  }
}

/**
 * Sends `req` on a pooled HTTP/3 connection and returns the response head with a streaming
 * body. Throws UpstreamError; a failure of the client's own request body is rethrown as is.
 */
export async function h3Forward(
  pool: H3Pool,
  req: ProxyRequest,
  headers: HeaderList,
  t: ForwardTimeouts,
): Promise<UpstreamAnswer> {
  const conn = await pool.acquire();
  const stream = await openStream(pool, conn, t);
  const s = stream.s;
  const body = req.body;
  const m = req.method;
  const length = body ? body.length : m === "POST" || m === "PUT" || m === "PATCH" ? 0 : undefined;
  const fields = requestFields(m, "https", req.path, headers, length);
  let requestFailure: unknown;
  const sending = (async () => {
    await s.send.write(encodeFrame(FrameType.HEADERS, encodeFieldSection(fields)));
    if (body) {
      for (;;) {
        let chunk: Uint8Array | null;
        try {
          chunk = await body.read();
        } catch (e) {
          // The response is complete: the backend wants no more of the body. (A response given
          // up on, the client gone or a timeout, is not: its cut body still must not look whole.)
          if (stream.answered) return;
          requestFailure = e;
          // The backend must not take a partial body as complete (see the module comment).
          if (body.length === undefined) stream.holdOpen(t.holdMs ?? t.responseTimeoutMs);
          else {
            s.send.resetStream(H3.REQUEST_CANCELLED);
            stream.abandon(e);
          }
          return;
        }
        if (chunk === null) break;
        if (chunk.length === 0) continue;
        // A failed write (the backend stopped reading, or the connection died) ends the pump
        // through the outer catch; the response read reports what happened.
        if (chunk.length <= COALESCE_LIMIT) await s.send.write(encodeFrame(FrameType.DATA, chunk));
        else {
          s.send.write(frameHeader(FrameType.DATA, chunk.length)).catch(() => {});
          await s.send.write(chunk);
        }
      }
      const trailers = body.trailers();
      if (trailers && trailers.length > 0) {
        await s.send.write(encodeFrame(FrameType.HEADERS, encodeFieldSection(trailerFields(trailers))));
      }
    }
    await s.send.finish();
  })();
  sending.catch(() => {
    // The backend stopped reading or the stream died: stop consuming the client's body.
    if (body && requestFailure === undefined) body.cancel();
  });
  let head: H2ResponseHead;
  try {
    head = await stream.readHead(t.responseTimeoutMs);
  } catch (e) {
    stream.abandon(e);
    if (requestFailure !== undefined) throw requestFailure;
    if (e instanceof UpstreamError) throw e;
    throw new UpstreamError(`${pool.key}: ${errText(e)}`, 502, false);
  }
  const resBody = stream.bodyAfter(head, req.method, t.responseTimeoutMs);
  return { response: { status: head.status, headers: head.headers, body: resBody }, version: "3" };
}

/** An extended CONNECT's answer: a 2xx opens `tunnel`; anything else is a response with `body`. */
export interface H3ConnectAnswer {
  head: H2ResponseHead;
  tunnel?: ByteStream;
  body: Body | null;
}

/**
 * An extended CONNECT (RFC 9220) with `:protocol` = `protocol` on a pooled HTTP/3 connection,
 * sent only once the backend's SETTINGS advertised ENABLE_CONNECT_PROTOCOL (§3, as RFC 8441 §3
 * requires for HTTP/2). A 2xx leaves the stream open both ways as the tunnel, holding its slot in
 * the connection until the tunnel is torn down; any other answer is relayed as a response.
 * Throws UpstreamError.
 */
export async function h3Connect(
  pool: H3Pool,
  path: string,
  headers: HeaderList,
  protocol: string,
  t: ForwardTimeouts,
): Promise<H3ConnectAnswer> {
  const conn = await pool.acquire();
  const giveBack = () => giveSlotBack(pool, conn);
  let settings: ReadonlyMap<number, number>;
  try {
    settings = await withTimeout(conn.peerSettings, t.responseTimeoutMs, "SETTINGS");
  } catch (e) {
    giveBack();
    throw e instanceof UpstreamError ? e : new UpstreamError(`${pool.key}: ${errText(e)}`, 502, true);
  }
  if (conn.closed && settings.size === 0) {
    giveBack();
    throw new UpstreamError(`connection to ${pool.key} closed before its SETTINGS arrived`, 502, true);
  }
  if (settings.get(Setting.ENABLE_CONNECT_PROTOCOL) !== 1) {
    giveBack();
    throw new UpstreamError(
      `${pool.key} does not support extended CONNECT over HTTP/3 (no SETTINGS_ENABLE_CONNECT_PROTOCOL)`,
      502,
      false,
    );
  }
  const stream = await openStream(pool, conn, t);
  const s = stream.s;
  let head: H2ResponseHead;
  try {
    const fields = requestFields("CONNECT", "https", path, headers, undefined, protocol);
    await s.send.write(encodeFrame(FrameType.HEADERS, encodeFieldSection(fields)));
    head = await stream.readHead(t.responseTimeoutMs);
  } catch (e) {
    stream.abandon(e);
    s.send.resetStream(H3.REQUEST_CANCELLED);
    if (e instanceof UpstreamError) throw e;
    throw new UpstreamError(`${pool.key}: ${errText(e)}`, 502, false);
  }
  if (head.status >= 200 && head.status < 300) {
    return { head, tunnel: new UpstreamTunnel(stream, conn), body: null };
  }
  // Refused: our side of the stream ends; the answer (and its body, if any) is relayed.
  s.send.finish().catch(() => {});
  return { head, body: stream.bodyAfter(head, "CONNECT", t.responseTimeoutMs) };
}

/**
 * The tunnel over an upstream request stream: DATA frames both ways (src/http/h3/tunnel.ts, the
 * same adapter the quic front uses), a protocol error closes the backend connection with its code,
 * and the stream's slot is given back when the relay tears the tunnel down (it always ends with
 * abort(), src/websocket/tunnel.ts).
 */
class UpstreamTunnel extends H3TunnelStream {
  #upstream: UpstreamStream;

  constructor(stream: UpstreamStream, conn: H3ClientConn) {
    super({
      reader: stream.reader,
      send: stream.s.send,
      write: (b) => stream.s.send.write(b),
      fail: (e) => e instanceof H3Error ? conn.refuse(e) : conn.fail(e),
      peer: "server",
    });
    this.#upstream = stream;
  }

  override abort(): void {
    super.abort();
    this.#upstream.finishQuietly();
  }
}

/** Frees a reserved stream slot that never got (or no longer has) a stream. */
function giveSlotBack(pool: H3Pool, conn: H3ClientConn): void {
  conn.release();
  pool.released();
}

/** A request stream in `conn`'s reserved slot; on failure the slot is given back. */
async function openStream(pool: H3Pool, conn: H3ClientConn, t: ForwardTimeouts): Promise<UpstreamStream> {
  try {
    return new UpstreamStream(
      pool,
      conn,
      await withTimeout(conn.qc.openBidi(), t.responseTimeoutMs, "stream credit"),
    );
  } catch (e) {
    giveSlotBack(pool, conn);
    throw new UpstreamError(`cannot open a stream to ${pool.key}: ${errText(e)}`, 502, true);
  }
}

/** One request stream, and the response body as the proxy reads it. */
class UpstreamStream implements Body {
  readonly reader: FrameReader;
  received = 0;
  #expectedLength = -1;
  #responseTimeoutMs = 0;
  done = false;
  /** The response was read to its end (or has no body): nothing more is owed to the backend. */
  answered = false;
  #remaining = 0;
  #trailers: HeaderList | undefined;
  #released = false;

  constructor(readonly pool: H3Pool, readonly conn: H3ClientConn, readonly s: QuicBidiStream) {
    this.reader = new FrameReader(s.recv);
  }

  get length(): number | undefined {
    return this.#expectedLength >= 0 ? this.#expectedLength : undefined;
  }

  #release(): void {
    if (this.#released || this.#holding) return;
    this.#released = true;
    giveSlotBack(this.pool, this.conn);
  }
  /** Held open (holdOpen): the slot stays taken, the stream still uses the backend's stream credit. */
  #holding = false;

  /**
   * The response body once `head` is in: this stream, reading DATA up to the head's
   * content-length; null when the method or status allow none (the stream is finished now).
   */
  bodyAfter(head: H2ResponseHead, method: string, timeoutMs: number): Body | null {
    const hasBody = !(method === "HEAD" || head.status === 204 || head.status === 304);
    this.#expectedLength = hasBody && head.contentLength >= 0 ? head.contentLength : -1;
    this.#responseTimeoutMs = timeoutMs;
    if (hasBody) return this;
    this.answered = true;
    this.finishQuietly();
    return null;
  }

  /** Stops reading and frees the slot (errors, cancel). */
  abandon(_reason?: unknown): void {
    this.done = true;
    this.s.recv.stopSending(H3.REQUEST_CANCELLED);
    this.#release();
  }

  /**
   * The client's request body, of unknown length, failed mid-way. A FIN would hand the backend
   * the cut body as complete and Deno cannot reset the stream, so its send side stays open, held
   * here (Deno FINs a send stream it garbage-collects) and keeping its slot, until the backend
   * stops it: its body timeout or a cancel of its own sends STOP_SENDING, which a probe write
   * (a reserved frame, ignored by the backend) sees as a rejection. If the backend is still
   * waiting after `boundMs`, the connection takes no new request and closes once its other
   * requests are done, which ends this stream too, without a FIN and without failing them.
   */
  holdOpen(boundMs: number): void {
    this.done = true;
    if (this.#released) {
      // Given back already (the response was given up on first): taken again, since the stream
      // goes on using the backend's stream credit while it is held.
      this.#released = false;
      this.conn.retake();
    }
    this.#holding = true;
    this.pool.event("h3_body_held");
    this.s.recv.stopSending(H3.REQUEST_CANCELLED);
    const until = performance.now() + boundMs;
    const send = this.s.send;
    (async () => {
      try {
        for (let left = boundMs; left > 0 && !this.conn.closed; left = until - performance.now()) {
          await sleepUnref(Math.min(HOLD_PROBE_MS, left));
          // Rejects once the backend stopped the stream. A probe stuck behind flow control (a
          // backend that neither reads nor stops) must not outlast the bound.
          if (!(await settlesWithin(send.write(GREASE_FRAME), until - performance.now()))) break;
        }
        if (!this.conn.closed) {
          // Still waiting: no new request on this connection, which closes once the others are
          // done. Until then the stream must stay referenced, or Deno would FIN it when collected.
          this.conn.keepUntilClosed(send);
          this.conn.retire();
          this.pool.event("h3_hold_retired");
        }
      } catch { /* stopped by the backend, or the connection is gone: the stream is over */ }
      this.#holding = false;
      this.#release();
    })();
  }

  finishQuietly(): void {
    this.done = true;
    if (!this.reader.eof) this.s.recv.stopSending(H3.NO_ERROR);
    this.#release();
  }

  /** Frames up to the final response HEADERS. Throws UpstreamError. */
  async readHead(timeoutMs: number): Promise<H2ResponseHead> {
    try {
      for (;;) {
        const fields = await withTimeout(this.#nextHeaders(), timeoutMs, "response");
        const head = parseResponseFields(fields);
        if (typeof head === "string") throw this.#malformed(head);
        if (head.status >= 100 && head.status < 200) {
          if (head.status === 101) throw this.#malformed("101 over HTTP/3"); // §4.5: not in HTTP/3
          continue; // interim: the gateway answers Expect itself
        }
        return head;
      }
    } catch (e) {
      throw this.#upstreamError(e);
    }
  }

  /**
   * A malformed response (RFC 9114 §4.1.2): a stream error, this request fails with 502 and the
   * connection carries on.
   */
  #malformed(what: string): UpstreamError {
    this.pool.event("h3_malformed");
    return new UpstreamError(`${this.pool.key} sent a malformed response: ${what}`, 502, false);
  }

  /**
   * What failed a read, as an UpstreamError. The backend's protocol errors (an H3Error: frames out
   * of order or cut short, a frame type a response stream may not carry, a field section QPACK
   * cannot decode) are connection errors (RFC 9114 §7.2, §8; RFC 9204 §2.2): the connection
   * closes with that code and its other requests fail too. A read our own stopSending cut short
   * (a cancel, a timeout, a gRPC deadline) rejects with ReadStopped (src/quic/engine.ts): never
   * an H3Error, so never blamed on the backend.
   */
  #upstreamError(e: unknown): UpstreamError {
    if (e instanceof UpstreamError) return e;
    if (e instanceof H3Error) {
      this.conn.refuse(e);
      return new UpstreamError(`${this.pool.key}: ${e.message} (connection closed)`, 502, false);
    }
    return new UpstreamError(`${this.pool.key}: ${errText(e)}`, 502, false);
  }

  async #nextHeaders(): Promise<HeaderField[]> {
    const r = this.reader;
    for (;;) {
      const h = await r.frameHeader();
      if (h === null) {
        throw new UpstreamError(`${this.pool.key} ended the stream before a response`, 502, false);
      }
      if (h.type === FrameType.HEADERS) {
        if (h.length > MAX_RESPONSE_FIELDS * 4) throw this.#tooLarge("response head");
        // Our table capacity is 0: a section that references the dynamic table fails to decode
        // (QPACK_DECOMPRESSION_FAILED) rather than blocking.
        const d = this.conn.decoder.decode(await r.payload(h.length), Number(this.s.recv.id));
        if ("blocked" in d || d.fields === null) throw this.#tooLarge("response head");
        return d.fields;
      }
      if (h.type === FrameType.DATA) throw new H3Error(H3.FRAME_UNEXPECTED, "DATA before HEADERS");
      checkRequestStreamFrame(h.type, "server");
      await r.discard(h.length);
    }
  }

  /** More than MAX_RESPONSE_FIELDS (what our SETTINGS allow): this request fails, 502. */
  #tooLarge(what: string): UpstreamError {
    this.pool.event("h3_head_too_large");
    return new UpstreamError(`${this.pool.key}: ${what} too large`, 502, false);
  }

  async read(): Promise<Uint8Array | null> {
    if (this.done) {
      // Given up on (a cancel, a timeout, a cut request body): not the response's end.
      if (!this.answered) throw new UpstreamError(`${this.pool.key}: response abandoned`, 502, false);
      return null;
    }
    try {
      return await withTimeout(this.#next(), this.#responseTimeoutMs, "response body");
    } catch (e) {
      this.abandon(e);
      throw this.#upstreamError(e);
    }
  }

  async #next(): Promise<Uint8Array | null> {
    const r = this.reader;
    for (;;) {
      if (this.#remaining > 0) {
        const chunk = await r.some(this.#remaining);
        this.#remaining -= chunk.length;
        this.received += chunk.length;
        return chunk;
      }
      const h = await r.frameHeader();
      if (h === null) {
        if (this.#expectedLength >= 0 && this.received !== this.#expectedLength) {
          throw this.#malformed(`body of ${this.received} bytes, content-length ${this.#expectedLength}`);
        }
        this.done = this.answered = true;
        this.#release();
        return null;
      }
      if (h.type === FrameType.DATA) {
        if (this.#trailers) throw new H3Error(H3.FRAME_UNEXPECTED, "DATA after trailers");
        if (this.#expectedLength >= 0 && this.received + h.length > this.#expectedLength) {
          throw this.#malformed("body longer than content-length");
        }
        this.#remaining = h.length;
      } else if (h.type === FrameType.HEADERS) {
        if (this.#trailers) throw new H3Error(H3.FRAME_UNEXPECTED, "second trailer section");
        if (h.length > MAX_RESPONSE_FIELDS * 4) throw this.#tooLarge("trailer section");
        const d = this.conn.decoder.decode(await r.payload(h.length), Number(this.s.recv.id));
        if ("blocked" in d || d.fields === null) throw this.#tooLarge("trailer section");
        const t = parseTrailerFields(d.fields);
        if (typeof t === "string") throw this.#malformed(t);
        this.#trailers = t;
      } else {
        checkRequestStreamFrame(h.type, "server");
        await r.discard(h.length);
      }
    }
  }

  trailers(): HeaderList | undefined {
    return this.#trailers && this.#trailers.length > 0 ? this.#trailers : undefined;
  }

  cancel(): void {
    if (this.done) return;
    this.abandon();
  }
}

function sleepUnref(ms: number): Promise<void> {
  return new Promise<void>((resolve) => Deno.unrefTimer(setTimeout(resolve, ms)));
}

/**
 * Whether `p` fulfils within `ms` (false past it, then `p` is left to itself, its rejection
 * handled); rejects as `p` does before then. The timer does not hold the process.
 */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  p.catch(() => {});
  if (!(ms > 0)) return false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, ms, false);
    Deno.unrefTimer(timer);
  });
  try {
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) return p;
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new UpstreamError(`no ${what} within ${ms}ms`, 504, false)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
