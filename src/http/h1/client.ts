/**
 * Upstream HTTP/1.1: a keep-alive connection pool per backend and the request forwarder.
 * The request body streams to the backend while the response head is awaited (a backend may
 * answer early, e.g. 413); the connection returns to the pool only when both directions
 * ended exactly on a message boundary.
 */

import { setImmediate } from "node:timers";
import { turnNow } from "../../net/clock.ts";
import { RESOLVED } from "../../net/resolved.ts";
import { type Deadline, sweeper } from "../../net/deadlines.ts";
import { type ConnectTarget, openConnection } from "../../net/connect.ts";
import type { Body, HeaderList, ProxyRequest, ProxyResponse } from "../exchange.ts";
import { connectionTokens } from "../headers.ts";
import { ChunkedBody, CloseBody, LengthBody } from "./body.ts";
import {
  findHeadEnd,
  H1ParseError,
  newScanState,
  parseResponseHead,
  resetScanState,
  responseFraming,
} from "./parse.ts";
import { ConnReader } from "./reader.ts";
import { ConnWriter, writeBody } from "./write.ts";

/**
 * How long a connection released while the idle list is full (max_idle_per_backend) stays
 * parked for reuse before it is closed (the deadline sweep adds up to 250 ms).
 */
export const SURPLUS_LINGER_MS = 1000;

export interface PoolLimits {
  maxIdle: number;
  maxTotal: number;
  idleTimeoutMs: number;
  connectTimeoutMs: number;
}

/** Why an upstream exchange failed, and whether another attempt may safely be made. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    /** 502 or 504 */
    readonly status: 502 | 504,
    /** Nothing of this request reached the backend's application (connect failure, stale keep-alive). */
    readonly beforeRequest: boolean,
    /**
     * A pooled keep-alive connection turned out to be closed by the backend before it answered:
     * the backend is fine, its idle connections are not. Worth one retry on a fresh connection.
     */
    readonly staleConnection = false,
  ) {
    super(message);
    this.name = "UpstreamError";
  }
}

export class H1Upstream implements Deadline {
  readonly reader: ConnReader;
  readonly writer: ConnWriter;
  /** The response-head search state, reused for every response. */
  readonly scan = newScanState();
  reused = false;
  closed = false;
  /** Still counted in its pool's open total (cleared exactly once). */
  counted = true;
  deadline = Infinity;
  reason = "idle";
  timedOut = false;
  /** Parked in its pool's idle list. */
  idle = false;
  /** The current request's response_timeout, armed around each response read. */
  responseTimeoutMs = 0;
  // Read hooks, made once per connection rather than per request.
  // The turn's clock (src/net/clock.ts): the sweeper checks deadlines every 250 ms anyway.
  readonly armResponse = () => {
    this.reason = "response";
    this.deadline = turnNow() + this.responseTimeoutMs;
  };
  readonly disarm = () => {
    this.deadline = Infinity;
  };

  constructor(readonly conn: Deno.Conn, readonly pool: H1Pool) {
    this.reader = new ConnReader(conn);
    this.writer = new ConnWriter(conn);
    // Registered for its whole life (close() and detach() take it off), with `deadline` set to
    // Infinity whenever nothing is armed: no Set insert and delete per request.
    sweeper.add(this);
  }

  onExpire(reason: string): void {
    if (reason === "surplus") this.pool.surplusExpired(this);
    else if (reason === "idle") this.pool.dropIdle(this);
    else {
      this.timedOut = true;
      this.close();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    sweeper.delete(this);
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  /** Waiting in the watch queue (watchSoon), so it is queued at most once. */
  watchQueued = false;

  /**
   * While idle, keep a read pending (like nginx's keepalive close handler on epoll): if the
   * backend closes the connection (its keep-alive timeout is shorter than ours) or sends
   * anything unasked, the connection leaves the pool at once instead of failing the next
   * request, which for a POST could not be retried. The read is the one the next response
   * needs anyway (ConnReader.pending), so this costs no extra syscall. Started by watchSoon(),
   * once the connection has stayed idle a moment.
   */
  watchWhileIdle(): void {
    if (this.reader.pending || this.closed) return;
    this.reader.readAhead().then(this.#settledWhileIdle, this.#settledWhileIdle);
  }

  // One closure per connection, not per request.
  readonly #settledWhileIdle = () => {
    if (this.idle) this.pool.dropIdle(this);
  };
}

/**
 * Idle connections get their watching read (watchWhileIdle) after WATCH_DELAY_MS, not at every
 * release: under load a released connection is taken again within about a millisecond, and a
 * read started at each release cost about 1.3 µs of CPU per request (h1-small, measured with
 * scripts/bench_floor.sh's load; h2c-small 16.1 → 14.3 µs). One timer for the whole queue; a
 * connection taken again before it fires is skipped.
 *
 * The trade-off, for the first WATCH_DELAY_MS of each idle period (the old code had it only when
 * a connection was taken again in the same turn): a backend's close in that window (a graceful
 * shutdown closing idle keep-alives) is found by the next request, which is retried on a fresh
 * connection only if nothing of it was sent yet (a GET, or a POST whose body was not read: a
 * streamed POST gets 502); and bytes a broken backend sends after its framed response, in a
 * later segment, are read as the next response's head (usually a 502 for that request).
 */
const WATCH_DELAY_MS = 25;
let toWatch: H1Upstream[] = [];
let watchTimer: ReturnType<typeof setTimeout> | undefined;

function watchSoon(u: H1Upstream): void {
  if (u.watchQueued) return;
  u.watchQueued = true;
  toWatch.push(u);
  if (watchTimer === undefined) {
    const t = watchTimer = setTimeout(watchQueued, WATCH_DELAY_MS);
    Deno.unrefTimer(t);
  }
}

function watchQueued(): void {
  watchTimer = undefined;
  const queued = toWatch;
  toWatch = [];
  for (const u of queued) {
    u.watchQueued = false;
    if (u.idle) u.watchWhileIdle();
  }
}

interface Waiter {
  /** Hands `u` over; false when the request had given up waiting already (`u` is not taken). */
  resolve(u: H1Upstream): boolean;
  reject(e: unknown): void;
}

export class H1Pool {
  #idle: H1Upstream[] = [];
  #open = 0;
  #waiters: Waiter[] = [];
  /** Requests waiting out the current turn for a released connection (#releasedSoon). */
  #soon: Array<(u: H1Upstream | undefined) => void> = [];
  #soonScheduled = false;
  #closed = false;
  /** Connections opened since the pool was made (expressgateway_upstream_connects_total). */
  connects = 0;

  constructor(readonly key: string, public target: ConnectTarget, public limits: PoolLimits) {}

  get open(): number {
    return this.#open;
  }
  get idle(): number {
    return this.#idle.length;
  }

  /** An idle connection if there is one, without a promise (the common case under load). */
  tryAcquire(): H1Upstream | undefined {
    while (this.#idle.length > 0) {
      const u = this.#idle.pop()!;
      u.idle = false;
      u.deadline = Infinity; // no idle timeout while in use
      if (!u.closed && !u.reader.eof) {
        u.reused = true;
        return u;
      }
      u.close();
      this.#forget(u);
    }
    return undefined;
  }

  async acquire(): Promise<H1Upstream> {
    const idle = this.tryAcquire();
    if (idle) return idle;
    if (this.#open < this.limits.maxTotal) {
      const released = await this.#releasedSoon();
      if (released) return released;
      if (this.#open < this.limits.maxTotal) return await this.#connect();
    }
    return await new Promise<H1Upstream>((resolve, reject) => {
      // Settled once: by the timer, or by a connection (released, or connected for it by
      // #wakeWaiter, which may finish after the timer fired: that connection is then not taken).
      let settled = false;
      const waiter: Waiter = {
        resolve: (u) => {
          if (settled) return false;
          settled = true;
          clearTimeout(timer);
          resolve(u);
          return true;
        },
        reject: (e) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#waiters.push(waiter);
      const timer = setTimeout(() => {
        settled = true;
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(
          new UpstreamError(
            `no connection to ${this.key} within ${this.limits.connectTimeoutMs}ms (pool full)`,
            504,
            true,
          ),
        );
      }, this.limits.connectTimeoutMs);
    });
  }

  /**
   * Before opening a connection, waits one event-loop turn for one to be released: exchanges
   * whose responses arrived in the same turn hand theirs over (release() serves these first).
   * Concurrency that swings above max_idle_per_backend and back (100 HTTP/2 streams over 64
   * pooled connections) otherwise closes surplus connections on release and reopens as many a
   * moment later; measured here, this halves those connects, at the cost of at most one turn
   * (a few µs) for a request that then connects anyway. One setImmediate per turn, not per
   * request. Resolves undefined when nothing was released.
   */
  #releasedSoon(): Promise<H1Upstream | undefined> {
    return new Promise((resolve) => {
      this.#soon.push(resolve);
      if (!this.#soonScheduled) {
        this.#soonScheduled = true;
        setImmediate(this.#endSoon);
      }
    });
  }

  readonly #endSoon = () => {
    this.#soonScheduled = false;
    const soon = this.#soon;
    if (soon.length === 0) return;
    this.#soon = [];
    for (const r of soon) r(undefined);
  };

  async #connect(): Promise<H1Upstream> {
    this.#open++;
    try {
      const conn = await openConnection(this.target, this.limits.connectTimeoutMs);
      this.connects++;
      return new H1Upstream(conn, this);
    } catch (e) {
      this.#open--;
      this.#wakeWaiter();
      throw new UpstreamError(e instanceof Error ? e.message : String(e), 502, true);
    }
  }

  /** Returns a connection: kept idle when `reusable`, else closed. */
  release(u: H1Upstream, reusable: boolean): void {
    if (u.closed) {
      this.#forget(u);
      return;
    }
    // Bytes after a complete response are a protocol error: never reuse such a connection.
    if (!reusable || this.#closed || u.reader.available > 0) {
      u.close();
      this.#forget(u);
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter?.resolve(u)) {
      u.reused = true;
      return;
    }
    const soon = this.#soon.length > 0 ? this.#soon.shift() : undefined;
    if (soon) {
      u.reused = true;
      soon(u);
      return;
    }
    if (this.#idle.length >= this.limits.maxIdle) {
      if (this.limits.maxIdle === 0) {
        u.close();
        this.#forget(u);
        return;
      }
      // Over max_idle_per_backend: parked for SURPLUS_LINGER_MS, not closed at once.
      // Concurrency that swings above the cap and back within milliseconds (100 HTTP/2 streams
      // over 64 pooled connections) would otherwise close surplus connections on release and
      // reopen as many a moment later: h2-small measured 125 connects per 1000 requests and
      // ≈7 µs of CPU per request for them. Like HAProxy's pool-purge-delay, the surplus goes
      // only when it stays unused; then the idle list shrinks back to the cap.
      u.reason = "surplus";
      u.deadline = turnNow() + SURPLUS_LINGER_MS;
    } else this.#armIdle(u);
    u.reader.shrink();
    u.idle = true;
    this.#idle.push(u);
    watchSoon(u);
  }

  /** Closes every idle connection (after one proved stale, its older siblings likely are too). */
  flushIdle(): void {
    for (const u of this.#idle.splice(0)) {
      u.idle = false;
      sweeper.delete(u);
      u.close();
      this.#forget(u);
    }
  }

  /**
   * `u` leaves the pool for good (it carries a tunnel after 101): no longer counted against
   * max_connections_per_backend, never reused; its new owner closes it.
   */
  detach(u: H1Upstream): void {
    sweeper.delete(u);
    this.#forget(u);
  }

  /** A surplus connection's linger ran out: closed while the idle list is over the cap. */
  surplusExpired(u: H1Upstream): void {
    if (!u.idle) return;
    if (this.#idle.length > this.limits.maxIdle) {
      this.dropIdle(u);
      return;
    }
    this.#armIdle(u);
  }

  /**
   * The idle timeout from now, on the turn's clock (no op call: the turn that ends a response
   * has read it already). From the release, not from when the response read began: a response
   * slower than the idle timeout would come back already expired.
   */
  #armIdle(u: H1Upstream): void {
    u.reason = "idle";
    u.deadline = turnNow() + this.limits.idleTimeoutMs;
  }

  dropIdle(u: H1Upstream): void {
    u.idle = false;
    const i = this.#idle.indexOf(u);
    if (i >= 0) this.#idle.splice(i, 1);
    u.close();
    this.#forget(u);
  }

  #forget(u: H1Upstream): void {
    if (!u.counted) return;
    u.counted = false;
    this.#open--;
    this.#wakeWaiter();
  }

  #wakeWaiter(): void {
    if (this.#waiters.length === 0 || this.#open >= this.limits.maxTotal) return;
    const w = this.#waiters.shift()!;
    // A connection the waiter no longer wants (it timed out meanwhile) goes to the pool: left
    // unowned it would stay counted in `open` for good, one slot of max_total lost each time.
    this.#connect().then((u) => w.resolve(u) || this.release(u, true), w.reject);
  }

  /** Backend removed or gateway stopping: close idle connections, refuse to keep more. */
  close(): void {
    this.#closed = true;
    for (const u of this.#idle.splice(0)) {
      u.idle = false;
      u.close();
      this.#forget(u);
    }
    for (const w of this.#waiters.splice(0)) {
      w.reject(new UpstreamError(`backend ${this.key} removed`, 502, true));
    }
  }
}

export interface ForwardTimeouts {
  responseTimeoutMs: number;
  maxResponseHead: number;
  /**
   * The pool's response_timeout whatever the request's deadline: how long an HTTP/3 stream whose
   * request body was cut may be held open for the backend to stop it (h3 client, holdOpen).
   */
  holdMs?: number;
}

export interface UpstreamAnswer {
  response: ProxyResponse;
  /** "1.1" or "1.0", for Via */
  version: string;
  /**
   * The backend answered 101 to an upgrade request: the connection, detached from its pool, now
   * carries the new protocol (bytes past the head are in its reader). Only when `upgrade` was asked.
   */
  upgraded?: H1Upstream;
}

/**
 * Sends `req` (with `headers`, already cleaned, `host` first) on a pooled connection and
 * returns the response head with a streaming body. Throws UpstreamError.
 */
export async function h1Forward(
  pool: H1Pool,
  req: ProxyRequest,
  headers: HeaderList,
  t: ForwardTimeouts,
  /** The request asks to switch protocols (a WebSocket handshake): a 101 hands the connection over. */
  upgrade = false,
): Promise<UpstreamAnswer> {
  const up = pool.tryAcquire() ?? await pool.acquire();
  const { reader, writer } = up;
  const body = req.body;
  // The head goes into the write buffer piece by piece (ConnWriter.pushStr: no string built).
  writer.pushStr(req.method);
  writer.pushStr(" ");
  writer.pushStr(req.path);
  writer.pushStr(" HTTP/1.1\r\n");
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i];
    if (n === "content-length") continue;
    writer.pushField(n, headers[i + 1]);
  }
  let mode: "length" | "chunked" | "none" = "none";
  if (body) {
    if (body.length !== undefined) {
      mode = "length";
      writer.pushField("content-length", String(body.length));
    } else {
      mode = "chunked";
      writer.pushStr("transfer-encoding: chunked\r\n");
    }
  } else if (req.method === "POST" || req.method === "PUT" || req.method === "PATCH") {
    writer.pushStr("content-length: 0\r\n");
  }
  writer.pushStr("\r\n");

  // Response reads are bounded by response_timeout (time to first byte and between reads).
  up.responseTimeoutMs = t.responseTimeoutMs;
  reader.beforeRead = up.armResponse;
  reader.afterRead = up.disarm;

  let requestSent = !body;
  let requestFailed: unknown;
  try {
    if (body && mode !== "none") {
      // Not awaited: the body streams while the response head is awaited (see finish()).
      writeBody(writer, body, mode, true).then(
        () => {
          requestSent = true;
        },
        (e) => {
          if (writer.socketFailed) {
            // The backend reset or closed while the body streamed: its fault, not the client's.
            // The socket is broken anyway; the head read below still takes an answer the backend
            // sent first (an early 413), else it fails and this is what the client hears of.
            requestFailed = new UpstreamError(`write to ${pool.key} failed: ${errText(e)}`, 502, false);
            return;
          }
          requestFailed = e;
          up.close(); // the upstream must not take a partial request as complete
        },
      );
    } else {
      // Written after the current batch of work rather than in the middle of it: the requests
      // of one HTTP/2 read (up to the client's concurrency) go out back to back, so the backend
      // wakes once for several instead of preempting the gateway after each write when both
      // share a CPU (h2-small: involuntary context switches per request 0.62 → 0.47).
      await RESOLVED;
      // Not waited for (ConnWriter.send): if it fails, so does the read of the answer below.
      if (!writer.send()) await writer.flush();
    }
  } catch (e) {
    pool.release(up, false);
    throw new UpstreamError(
      `write to ${pool.key} failed: ${errText(e)}`,
      502,
      up.reused, // no body here: nothing was taken from the client that a retry would lack
      up.reused,
    );
  }

  let headEnd: number;
  let parsed;
  let sawHead = false;
  const limits = t.maxResponseHead === RESPONSE_LIMITS.maxHead
    ? RESPONSE_LIMITS
    : { maxLine: RESPONSE_LIMITS.maxLine, maxHead: t.maxResponseHead };
  try {
    for (;;) {
      const st = resetScanState(up.scan);
      let len: number;
      for (;;) {
        len = findHeadEnd(reader.buf, reader.start, reader.end, st, limits, false);
        if (len >= 0) break;
        if (!(await reader.fill())) {
          if (requestFailed) throw requestFailed;
          const stale = up.reused && !sawHead && reader.end === reader.start;
          throw new UpstreamError(
            stale
              ? `keep-alive connection to ${pool.key} was closed by the backend`
              : `${pool.key} closed the connection before a complete response head`,
            502,
            stale && replayable(body, requestSent),
            stale,
          );
        }
      }
      headEnd = reader.start + len;
      parsed = parseResponseHead(reader.buf, reader.start + st.skip, headEnd);
      reader.start = headEnd;
      sawHead = true; // an interim answer proves the backend has the request
      // Interim responses: 100 Continue and 103 are consumed here (the gateway answers
      // Expect itself); 101 ends HTTP/1.1 on this connection and is handled by the tunnel code.
      if (parsed.status >= 100 && parsed.status < 200 && parsed.status !== 101) continue;
      break;
    }
  } catch (e) {
    sweeper.delete(up);
    pool.release(up, false);
    body?.cancel();
    // The client's body failed (bad chunked framing, too large, timeout): that is the cause,
    // whatever the cut connection made the read report. Never blame the backend for it.
    if (requestFailed) throw requestFailed;
    // Our own timer closed the connection: that may read as EOF, but it is a timeout.
    if (up.timedOut) {
      throw new UpstreamError(`${pool.key} did not answer within ${t.responseTimeoutMs}ms`, 504, false);
    }
    if (e instanceof UpstreamError) throw e;
    if (e instanceof H1ParseError) {
      throw new UpstreamError(`${pool.key} sent an invalid response: ${e.message}`, 502, false);
    }
    const stale = up.reused && !sawHead && reader.end === 0;
    throw new UpstreamError(
      `read from ${pool.key} failed: ${errText(e)}`,
      502,
      stale && replayable(body, requestSent),
      stale,
    );
  }

  if (parsed.status === 101) {
    sweeper.delete(up);
    reader.beforeRead = reader.afterRead = undefined;
    if (!upgrade) {
      pool.release(up, false);
      body?.cancel();
      throw new UpstreamError(`${pool.key} switched protocols (101) without being asked`, 502, false);
    }
    pool.detach(up);
    return {
      response: { status: 101, headers: parsed.headers, body: null },
      version: "1.1",
      upgraded: up,
    };
  }

  let framing;
  try {
    framing = responseFraming(parsed.headers, parsed.status, req.method);
  } catch (e) {
    // Ambiguous framing from the backend (e.g. differing Content-Lengths): never relayed.
    sweeper.delete(up);
    pool.release(up, false);
    body?.cancel();
    throw new UpstreamError(`${pool.key} sent an invalid response: ${errText(e)}`, 502, false);
  }
  const keepAlive = parsed.minor === 1 && !connectionTokens(parsed.headers).includes("close") &&
    framing.kind !== "close";
  let released = false;
  const finish = (clean: boolean) => {
    if (released) return;
    released = true;
    up.deadline = Infinity;
    const reuse = clean && keepAlive && requestSent && !requestFailed;
    // An early response (e.g. 413 while the body was still streaming) ends the request
    // body too, and the connection cannot be reused.
    if (!reuse && !requestSent) body?.cancel();
    pool.release(up, reuse);
  };
  let resBody: Body | null = null;
  const limit = Number.MAX_SAFE_INTEGER;
  switch (framing.kind) {
    case "none":
      finish(true);
      break;
    case "length":
      resBody = new LengthBody(reader, framing.length, limit, finish, 502);
      break;
    case "chunked":
      resBody = new ChunkedBody(reader, limit, finish, 502);
      break;
    case "close":
      resBody = new CloseBody(reader, limit, finish, 502);
      break;
  }
  return {
    response: { status: parsed.status, headers: parsed.headers, body: resBody },
    version: parsed.minor === 1 ? "1.1" : "1.0",
  };
}

/** Response head limits as the proxy asks for them, one object rather than one per request. */
const RESPONSE_LIMITS = { maxLine: 8192, maxHead: 64 * 1024 };

/** A request body nobody has read yet can still be sent again (a retry is safe to attempt). */
/**
 * Whether a request that never reached the backend may be sent again elsewhere: one without a
 * body, or whose empty body was sent whole. A body still streaming (a 100-continue one waiting
 * for the client, say) is cancelled when this attempt fails, and a second writer could not have
 * it anyway: the first one may still take its next chunk.
 */
function replayable(body: Body | null, sent: boolean): boolean {
  return !body || (sent && body.received === 0);
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
