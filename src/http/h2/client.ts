/**
 * Upstream HTTP/2: multiplexed connections per backend (h2 = TLS with ALPN "h2", h2c = prior
 * knowledge) and the request forwarder. A pool keeps as few connections as the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS allows, opening another only when every open one is full (up
 * to max_connections_per_backend); requests beyond that wait up to connect_timeout.
 *
 * Retry semantics match the HTTP/1.1 pool (UpstreamError.beforeRequest): true only when the
 * backend certainly did not process the request — connect failure, REFUSED_STREAM (§8.7), or a
 * stream above the lastStreamId of the backend's GOAWAY (§6.8).
 */

import { type ConnectTarget, openConnection } from "../../net/connect.ts";
import { sweeper } from "../../net/deadlines.ts";
import type { HeaderList, ProxyRequest } from "../exchange.ts";
import { type ForwardTimeouts, type PoolLimits, type UpstreamAnswer, UpstreamError } from "../h1/client.ts";
import { Closed, H2Session } from "./connection.ts";
import {
  CONNECTION_PREFACE,
  ErrorCode,
  type GoawayFrame,
  H2ConnectionError,
  H2StreamError,
  MAX_STREAM_ID,
  SettingsId,
} from "./frames.ts";
import { type H2ResponseHead, parseResponseFields, parseTrailerFields, requestFields } from "./headers.ts";
import type { HeaderField } from "./hpack.ts";
import { type H2Limits, h2Limits } from "./limits.ts";
import { EMPTY_BYTES, H2ConnectionLost, H2Stream, H2StreamReset, H2StreamTimeout } from "./stream.ts";

/** Streams a connection still being set up is assumed to take (until its SETTINGS say). */
const ASSUMED_STREAMS = 100;

class ClientStream extends H2Stream {
  method = "GET";
  gotHead = false;
  head: H2ResponseHead | undefined;
  headWait!: Promise<H2ResponseHead>;
  resolveHead!: (h: H2ResponseHead) => void;

  init(method: string): void {
    this.method = method;
    this.headWait = new Promise<H2ResponseHead>((resolve, reject) => {
      this.resolveHead = resolve;
      this.onFail = reject;
    });
    this.headWait.catch(() => {}); // observed by h2Forward; never unhandled
  }
}

export class H2ClientConn extends H2Session {
  /** Slots promised by acquire() and not yet turned into streams. */
  reserved = 0;
  #readyResolve!: () => void;
  #readyReject!: (e: unknown) => void;
  readonly ready: Promise<void> = new Promise((resolve, reject) => {
    this.#readyResolve = resolve;
    this.#readyReject = reject;
  });

  constructor(conn: Deno.Conn, readonly pool: H2Pool) {
    super(conn, false, pool.h2);
    this.ready.catch(() => {});
  }

  event(kind: string): void {
    const events = this.pool.events;
    events.set(kind, (events.get(kind) ?? 0) + 1);
  }

  /** Sends the preface and starts reading; `ready` resolves on the server's SETTINGS. */
  start(): void {
    this.writer.raw(CONNECTION_PREFACE);
    this.sendPrefaceSettings([[SettingsId.ENABLE_PUSH, 0]]);
    this.readLoop(undefined, false).catch(() => {});
  }

  get load(): number {
    return this.streams.size + this.reserved;
  }

  /** May carry new streams: no GOAWAY either way, not failing, stream ids left. */
  get usable(): boolean {
    return !this.closing && !this.failed && this.goawayReceived < 0 && this.goawaySent < 0 &&
      this.nextLocalStreamId < MAX_STREAM_ID;
  }

  tryReserve(): boolean {
    if (!this.usable || !this.peerSettingsSeen) return false;
    const cap = Math.min(this.peerMaxConcurrentStreams, this.limits.maxConcurrentStreams);
    if (this.load >= cap) return false;
    this.reserved++;
    this.deadline = Infinity;
    return true;
  }

  unreserve(): void {
    this.reserved--;
    this.#afterRelease();
  }

  /** Opens a stream with a reserved slot and sends its HEADERS. */
  open(fields: HeaderField[], endStream: boolean, method: string): ClientStream {
    if (!this.usable) throw new H2ConnectionLost("connection no longer usable", true);
    this.reserved--;
    const id = this.nextLocalStreamId;
    this.nextLocalStreamId += 2;
    const s = new ClientStream(id, this, this.limits.streamWindow, this.peerInitialWindow);
    s.init(method);
    this.streams.set(id, s);
    this.sendHeaders(s, fields, endStream);
    return s;
  }

  protected override onPeerSettings(): void {
    this.#readyResolve();
    this.pool.dispatch();
  }

  protected onHeaderBlock(
    id: number,
    fields: HeaderField[] | null,
    endStream: boolean,
    prio: H2StreamError | undefined,
  ): void {
    const s = this.streams.get(id) as ClientStream | undefined;
    if (!s) {
      if ((id & 1) === 0 || id >= this.nextLocalStreamId) {
        throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on idle stream ${id}`);
      }
      this.frameOnClosedStream(id, "HEADERS");
      return;
    }
    if (prio) throw prio;
    if (s.recvEnded) throw new H2StreamError(id, ErrorCode.STREAM_CLOSED, "HEADERS after END_STREAM");
    if (!s.gotHead) {
      const head = fields === null ? "response header list too large" : parseResponseFields(fields);
      if (typeof head === "string" || head.status === 101 || (head.status < 200 && endStream)) {
        this.event("h2_malformed");
        s.fail(new UpstreamError(`invalid response from ${this.pool.key}: ${head}`, 502, false));
        throw new H2StreamError(id, ErrorCode.PROTOCOL_ERROR, String(head));
      }
      if (head.status < 200) return; // interim (100, 103): the gateway does not relay them
      s.gotHead = true;
      s.head = head;
      const noContent = s.method === "HEAD" || head.status === 204 || head.status === 304;
      s.expectedLength = noContent ? -1 : head.contentLength;
      s.disarm();
      s.onFail = null;
      s.resolveHead(head);
      if (endStream) {
        s.pushData(EMPTY_BYTES, true);
        this.onRemoteEnd(s);
      }
      return;
    }
    if (!endStream) {
      this.event("h2_malformed");
      throw new H2StreamError(id, ErrorCode.PROTOCOL_ERROR, "second HEADERS without END_STREAM");
    }
    const trailers = fields === null ? "trailers too large" : parseTrailerFields(fields);
    if (typeof trailers === "string" || (s.expectedLength >= 0 && s.arrived !== s.expectedLength)) {
      this.event("h2_malformed");
      throw new H2StreamError(id, ErrorCode.PROTOCOL_ERROR, String(trailers));
    }
    s.endWithTrailers(trailers.length > 0 ? trailers : undefined);
    this.onRemoteEnd(s);
  }

  protected override onData(st: H2Stream, data: Uint8Array, endStream: boolean): void {
    if (!(st as ClientStream).gotHead) {
      throw new H2StreamError(st.id, ErrorCode.PROTOCOL_ERROR, "DATA before the response HEADERS");
    }
    super.onData(st, data, endStream);
  }

  protected override onGoaway(f: GoawayFrame): void {
    this.pool.retire(this);
    // Streams above lastStreamId were never processed: fail them as retriable now (§6.8).
    for (const s of this.streams.values()) {
      if (s.id > f.lastStreamId) {
        s.fail(new H2ConnectionLost(`${this.pool.key} sent GOAWAY before processing the stream`, true));
        this.closeStream(s, Closed.ResetLocal);
      }
    }
    if (this.streams.size === 0) this.shutdown();
  }

  override streamTimeout(s: H2Stream): void {
    s.fail(new H2StreamTimeout(s.waitTimeoutMs));
    if (this.stuckMidFrame) {
      // A backend that stalls inside a frame stalls every stream of the connection: a new stream
      // put on it would time out too. No new streams (GOAWAY makes it unusable, so it closes when
      // its last stream does, this one included: #afterRelease).
      this.event("h2_upstream_stalled");
      this.pool.retire(this);
      this.goaway("stalled inside a frame");
    }
    this.resetStream(s, ErrorCode.CANCEL);
  }

  protected override onStreamClosed(): void {
    this.#afterRelease();
  }

  #afterRelease(): void {
    if (this.load > 0) {
      this.pool.dispatch();
      return;
    }
    if (!this.usable) {
      this.shutdown();
      return;
    }
    this.pool.dispatch();
    if (this.load === 0 && !this.closing) {
      this.writer.trim();
      this.reason = "idle";
      this.deadline = performance.now() + this.pool.limits.idleTimeoutMs;
      sweeper.add(this);
    }
  }

  override onExpire(reason: string): void {
    if (reason === "idle") {
      if (this.load > 0) return;
      this.pool.retire(this);
      this.goaway();
      this.shutdown();
      return;
    }
    super.onExpire(reason);
  }

  protected override onClosed(): void {
    this.#readyReject(new H2ConnectionLost(`connection to ${this.pool.key} closed during setup`));
    this.pool.forget(this);
  }
}

interface Waiter {
  resolve(c: H2ClientConn): void;
  reject(e: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

export class H2Pool {
  #conns: H2ClientConn[] = [];
  #connecting = 0;
  #waiters: Waiter[] = [];
  #closed = false;
  readonly h2: H2Limits;

  constructor(
    readonly key: string,
    public target: ConnectTarget,
    public limits: PoolLimits,
    h2: Partial<H2Limits> = {},
  ) {
    // A backend slow to read a request body is not an attack: no stall cut-off upstream
    // (response_timeout bounds the exchange).
    this.h2 = h2Limits({ stallTimeoutMs: 0, ...h2 });
  }

  /** Connections opened (preface and SETTINGS exchanged) since the pool was made. */
  connects = 0;

  /**
   * Protocol events on this pool's connections since it was made, by name (limits.ts, plus
   * `h2_upstream_stalled`): what the backend did wrong, read into a metric at scrape time.
   */
  readonly events = new Map<string, number>();

  /** Connections open or being opened. */
  get open(): number {
    return this.#conns.length + this.#connecting;
  }

  /** Open connections carrying no stream. */
  get idle(): number {
    let n = 0;
    for (const c of this.#conns) if (c.load === 0) n++;
    return n;
  }

  get scheme(): "http" | "https" {
    return this.target.tls ? "https" : "http";
  }

  /** A connection with a reserved stream slot; throws UpstreamError. */
  acquire(): Promise<H2ClientConn> {
    if (this.#closed) return Promise.reject(new UpstreamError(`backend ${this.key} removed`, 502, true));
    for (const c of this.#conns) if (c.tryReserve()) return Promise.resolve(c);
    return new Promise<H2ClientConn>((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.#waiters.indexOf(w);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(
            new UpstreamError(
              `no HTTP/2 stream to ${this.key} within ${this.limits.connectTimeoutMs}ms (pool full)`,
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

  /** Hands free slots to waiters; opens connections for the rest. */
  dispatch(): void {
    while (this.#waiters.length > 0) {
      let c: H2ClientConn | undefined;
      for (const x of this.#conns) {
        if (x.tryReserve()) {
          c = x;
          break;
        }
      }
      if (!c) break;
      const w = this.#waiters.shift()!;
      clearTimeout(w.timer);
      w.resolve(c);
    }
    this.#grow();
  }

  #grow(): void {
    while (
      !this.#closed && this.#waiters.length > this.#connecting * ASSUMED_STREAMS &&
      this.open < this.limits.maxTotal
    ) {
      this.#connect();
    }
  }

  async #connect(): Promise<void> {
    this.#connecting++;
    let c: H2ClientConn | undefined;
    try {
      const conn = await openConnection(this.target, this.limits.connectTimeoutMs);
      if (this.target.tls) {
        const alpn = (await (conn as Deno.TlsConn).handshake()).alpnProtocol;
        if (alpn !== "h2") {
          try {
            conn.close();
          } catch { /* closed */ }
          throw new Error(`${this.key} did not negotiate h2 (ALPN ${alpn ?? "none"})`);
        }
      }
      c = new H2ClientConn(conn, this);
      c.start();
      const timer = setTimeout(() => c!.abort(), this.limits.connectTimeoutMs);
      try {
        await c.ready;
      } finally {
        clearTimeout(timer);
      }
      this.#connecting--;
      this.connects++;
      if (this.#closed) {
        c.goaway();
        c.shutdown();
        return;
      }
      this.#conns.push(c);
      this.dispatch();
    } catch (e) {
      this.#connecting--;
      c?.abort();
      if (this.#connecting === 0 && !this.#conns.some((x) => x.usable)) {
        const err = new UpstreamError(e instanceof Error ? e.message : String(e), 502, true);
        for (const w of this.#waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(err);
        }
      } else this.#grow();
    }
  }

  /** No new streams on `c` (GOAWAY, idle); it closes when its streams end. */
  retire(c: H2ClientConn): void {
    const i = this.#conns.indexOf(c);
    if (i >= 0) this.#conns.splice(i, 1);
    this.#grow();
  }

  /** `c` is closed. */
  forget(c: H2ClientConn): void {
    this.retire(c);
  }

  /** Closes everything now, busy connections included (a health probe past its timeout). */
  abort(): void {
    const conns = this.#conns.splice(0);
    this.close();
    for (const c of conns) c.abort();
  }

  /** Backend removed or gateway stopping: idle connections close, busy ones after their streams. */
  close(): void {
    this.#closed = true;
    for (const c of this.#conns.splice(0)) {
      c.goaway();
      if (c.load === 0) c.shutdown();
    }
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new UpstreamError(`backend ${this.key} removed`, 502, true));
    }
  }
}

/**
 * Sends `req` (with `headers`, already cleaned, `host` first) on a pooled HTTP/2 connection and
 * returns the response head with a streaming body. Throws UpstreamError; a failure of the
 * client's own request body is rethrown as is (the server codec reports it). A stream the
 * backend's GOAWAY says it never processed is sent again once on a fresh connection of the same
 * backend (its body untouched), as a GOAWAY is about that connection, not the backend.
 */
export async function h2Forward(
  pool: H2Pool,
  req: ProxyRequest,
  headers: HeaderList,
  t: ForwardTimeouts,
): Promise<UpstreamAnswer> {
  for (let attempt = 0;; attempt++) {
    try {
      return await h2Exchange(pool, req, headers, t);
    } catch (e) {
      if (attempt === 0 && e instanceof Unprocessed && e.upstream.beforeRequest) continue;
      if (e instanceof Unprocessed) throw e.upstream;
      throw e;
    }
  }
}

/** The backend's GOAWAY says this stream was never processed (§6.8). */
class Unprocessed extends Error {
  constructor(readonly upstream: UpstreamError) {
    super(upstream.message);
  }
}

async function h2Exchange(
  pool: H2Pool,
  req: ProxyRequest,
  headers: HeaderList,
  t: ForwardTimeouts,
): Promise<UpstreamAnswer> {
  const conn = await pool.acquire();
  const body = req.body;
  // As the HTTP/1.1 client does: a bodiless POST/PUT/PATCH still says content-length: 0.
  const m = req.method;
  const length = body ? body.length : m === "POST" || m === "PUT" || m === "PATCH" ? 0 : undefined;
  const fields = requestFields(m, pool.scheme, req.path, headers, length, req.protocol);
  let s: ClientStream;
  try {
    s = conn.open(fields, !body, req.method);
  } catch (e) {
    conn.unreserve();
    throw new UpstreamError(`cannot open a stream to ${pool.key}: ${errText(e)}`, 502, true);
  }
  s.waitTimeoutMs = t.responseTimeoutMs;
  s.arm();
  let requestFailure: unknown;
  const pump = { reading: false };
  if (body) {
    conn.sendBody(s, body, pump).catch((e) => {
      // Decided by the upstream stream's state, not the error's class: a downstream HTTP/2
      // client's reset fails its body with the same classes, and then this stream is still open
      // and must be reset so the backend does not wait for (or keep) a partial request.
      if (s.closed || s.sendEnded || conn.failed || conn.closed) {
        // The stream ended under us. A body nobody read yet is kept for a retry; otherwise
        // stop reading it (reset, response complete).
        if (body.received > 0 || pump.reading || !retriable(e)) body.cancel();
        return;
      }
      // The client's body failed: the backend must not take a partial request as complete.
      requestFailure = e;
      s.fail(e instanceof Error ? e : new Error(String(e)));
      conn.resetStream(s, ErrorCode.CANCEL);
    });
  }
  let head: H2ResponseHead;
  try {
    head = await s.headWait;
  } catch (e) {
    s.disarm();
    if (!s.closed) conn.resetStream(s, ErrorCode.CANCEL);
    if (requestFailure !== undefined) throw requestFailure;
    // A body read still pending in this pump would race a second attempt: not retriable then.
    const err = upstreamError(pool, e, t, untouched(req) && !pump.reading);
    if (e instanceof H2ConnectionLost && e.unprocessed) throw new Unprocessed(err);
    throw err;
  }
  const ended = s.recvEnded && s.queued === 0;
  return {
    response: { status: head.status, headers: head.headers, body: ended && !s.trailers() ? null : s },
    version: "2",
  };
}

/** Failures after which the request may be sent again (the backend did not process it). */
function retriable(e: unknown): boolean {
  return (e instanceof H2ConnectionLost && e.unprocessed) ||
    (e instanceof H2StreamReset && e.remote && e.code === ErrorCode.REFUSED_STREAM);
}

function untouched(req: ProxyRequest): boolean {
  return !req.body || req.body.received === 0;
}

function upstreamError(pool: H2Pool, e: unknown, t: ForwardTimeouts, untouchedBody: boolean): UpstreamError {
  if (e instanceof UpstreamError) return e;
  if (e instanceof H2StreamTimeout) {
    return new UpstreamError(`${pool.key} did not answer within ${t.responseTimeoutMs}ms`, 504, false);
  }
  if (e instanceof H2StreamReset && e.remote) {
    const refused = e.code === ErrorCode.REFUSED_STREAM;
    return new UpstreamError(`${pool.key} reset the stream: ${e.message}`, 502, refused && untouchedBody);
  }
  if (e instanceof H2ConnectionLost) {
    return new UpstreamError(`${pool.key}: ${e.message}`, 502, e.unprocessed && untouchedBody);
  }
  return new UpstreamError(`${pool.key}: ${errText(e)}`, 502, false);
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
