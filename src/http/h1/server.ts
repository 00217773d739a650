/**
 * The HTTP/1.1 server codec: one loop per client connection that parses requests strictly,
 * hands each to the proxy as a ProxyRequest, and writes the ProxyResponse back, streaming.
 * Requests on a connection are handled one after another, so pipelined requests are answered
 * in order. Timeouts (slowloris, slow body, keep-alive idle) are deadlines on the sweeper.
 */

import type { ListenerConfig } from "../../config/types.ts";
import { turnNow } from "../../net/clock.ts";
import { type Deadline, sweeper } from "../../net/deadlines.ts";
import { SendWatch } from "../../net/send_watch.ts";
import type { Body, ClientInfo, HeaderList, ProxyRequest, ProxyResponse } from "../exchange.ts";
import { gatewayResponse, getHeader } from "../exchange.ts";
import { connectionTokens, sanitizeTrailers } from "../headers.ts";
import { BodyTooLargeError, ChunkedBody, LengthBody, TruncatedBodyError } from "./body.ts";
import {
  findHeadEnd,
  H1ParseError,
  newScanState,
  parseRequestHead,
  requestFraming,
  type RequestHead,
  requestTarget,
  resetScanState,
} from "./parse.ts";
import { ConnReader } from "./reader.ts";
import { ConnWriter, reasonPhrase, statusLine, writeBody } from "./write.ts";
import { ConnStream } from "../../websocket/streams.ts";

/** Per-request record the proxy fills in and the codec completes, for logs and metrics. */
export interface RequestRecord {
  start: number;
  /** When the response was written (or failed); the consumer's clock reading if unset. */
  end?: number;
  method: string;
  authority: string;
  path: string;
  version: string;
  status: number;
  bytesIn: number;
  bytesOut: number;
  route?: string;
  pool?: string;
  backend?: string;
  upstreamMs?: number;
  /** Why the gateway answered itself, when it did (e.g. "no_route", "body_timeout"). */
  error?: string;
}

export interface H1Handler {
  handle(req: ProxyRequest, rec: RequestRecord): Promise<ProxyResponse>;
  /** Called once per request after the response was written (or failed). */
  complete(rec: RequestRecord): void;
  /** A guard or protocol event for metrics: "header_timeout", "body_timeout", "idle_timeout", "parse_error", … */
  event(kind: string): void;
}

export interface ServerConnection {
  /** Close at once if idle, otherwise after the current response. */
  drain(): void;
  /** Close now. */
  abort(): void;
  readonly active: boolean;
}

const CONTINUE_100 = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");

/**
 * Lingering close (RFC 9112 §9.6, nginx's lingering_close): after an error answer while the
 * client may still be sending (an unread body, a refused request), close our side first and
 * discard what still arrives, bounded in time and bytes. Closing at once with unread data
 * makes the kernel send a reset, and the client may lose our answer (curl then reports
 * "Send failure: Broken pipe" instead of the 413).
 */
const LINGER_MS = 2000;
const LINGER_BYTES = 16 * 1024 * 1024;

export class H1ServerConn implements Deadline, ServerConnection {
  readonly #reader: ConnReader;
  readonly #writer: ConnWriter;
  deadline = Infinity;
  reason = "header";
  #closed = false;
  #draining = false;
  #inRequest = false;
  #responseStarted = false;
  #timedOut: string | undefined;
  /** The client may still be sending: close with a linger (see LINGER_MS). */
  #linger = false;
  /** Bytes a tunnel sent to the client (the connection's last exchange), for the access log. */
  #tunnelOut = 0;
  /** A request body or a tunnel got views of the read buffer: it is never recycled (ConnReader.release). */
  #lent = false;
  readonly #limits: { maxLine: number; maxHead: number };
  /** Cuts the connection when its writes stop making progress (send_timeout). */
  readonly #sendWatch: SendWatch;
  /** Why a write to the client failed, for the access log. */
  get #writeFailure(): string {
    return this.#timedOut === "send" ? "send_timeout" : "client_write_failed";
  }
  readonly #sendStalled = (): void => {
    this.#timedOut = "send";
    this.handler.event("send_timeout");
    this.abort();
  };

  constructor(
    readonly conn: Deno.Conn,
    readonly cfg: ListenerConfig,
    readonly client: ClientInfo,
    readonly handler: H1Handler,
    /** Bytes already read from `conn` (while telling HTTP/1.1 from h2c), to parse first. */
    initial?: Uint8Array,
  ) {
    this.#reader = initial === undefined ? new ConnReader(conn) : ConnReader.holding(conn, initial);
    this.#writer = new ConnWriter(conn);
    this.#sendWatch = new SendWatch(this.#writer, cfg.send_timeout, this.#sendStalled);
    this.#limits = { maxLine: cfg.max_request_line, maxHead: cfg.max_header_size };
  }

  get active(): boolean {
    return this.#inRequest;
  }

  drain(): void {
    this.#draining = true;
    // Between requests, a response may still be on its way out (ConnWriter.send).
    if (!this.#inRequest) this.#writer.idle().then(() => this.abort());
  }

  abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    sweeper.delete(this);
    this.#sendWatch.stop();
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  onExpire(reason: string): void {
    if (reason === "linger") {
      this.abort();
      return;
    }
    this.#timedOut = reason;
    this.handler.event(`${reason}_timeout`);
    if (reason === "header" && this.#reader.available > 0 && !this.#responseStarted) {
      // Tell a slow client why before closing (the pending read is independent of this write).
      this.#writeError(408, "request header timeout").finally(() => this.abort());
      return;
    }
    if (reason === "body" && !this.#responseStarted) {
      this.#writeError(408, "request body timeout").finally(() => this.abort());
      return;
    }
    this.abort();
  }

  /**
   * Clock readings are shared where two happen at the same point (an exchange's end arms the
   * idle timeout; a head's first bytes start the request and arm the header timeout), and come
   * from the turn's clock (src/net/clock.ts): each performance.now() is an op call, and the
   * deadlines are swept every 250 ms, the request durations histogrammed in seconds.
   */
  #arm(reason: string, ms: number, now = turnNow()): void {
    this.reason = reason;
    this.deadline = now + ms;
  }
  /** When the current head's first bytes arrived after an idle wait (else -1). */
  #headAt = -1;
  /** When the last exchange ended. */
  #lastEnd = 0;

  async run(): Promise<void> {
    sweeper.add(this);
    this.#sendWatch.start();
    let first = true;
    try {
      while (!this.#closed) {
        this.#responseStarted = false; // the previous response is complete: a 408 may be sent again
        if (first) this.#arm("header", this.cfg.header_timeout);
        else this.#arm("idle", this.cfg.idle_timeout, this.#lastEnd);
        first = false;
        // The head is read here rather than in an async method: one async layer less per request.
        resetScanState(this.#scan);
        let head = this.#scanHead();
        while (head === undefined) {
          if (!this.#filled(await this.#fillHead())) break; // a clean EOF between requests
          head = this.#scanHead();
        }
        if (head === undefined) break;
        const keepGoing = await this.#exchange(head, this.#headBytes);
        if (!keepGoing || this.#draining) break;
        this.#reader.shrink();
      }
    } catch (e) {
      if (e instanceof H1ParseError && !this.#closed) {
        this.handler.event("parse_error");
        await this.#writeError(e.status === 502 ? 400 : e.status, e.message);
        this.#linger = true;
      }
      // Socket errors (reset, closed by a timeout) end this connection only.
    } finally {
      if (this.#linger && !this.#closed && this.#timedOut === undefined) await this.#lingerClose();
      // The last response may still be on its way out (ConnWriter.send): closing would cut it.
      if (!this.#closed) await this.#writer.idle();
      this.abort();
      // Every read of ours has settled (each was awaited): the head buffer can serve the next
      // connection, unless a body or a tunnel was handed views of it.
      if (!this.#lent) this.#reader.release();
    }
  }

  async #lingerClose(): Promise<void> {
    this.#arm("linger", LINGER_MS);
    try {
      await (this.conn as Deno.TcpConn).closeWrite();
      // A scratch buffer of its own: an upload pump's read into the reader's buffer may still be
      // pending (lingering is rare: error answers and cut uploads).
      const scratch = new Uint8Array(16 * 1024);
      for (let budget = LINGER_BYTES; budget > 0;) {
        const n = await this.conn.read(scratch); // discarded
        if (n === null) break;
        budget -= n;
      }
    } catch { /* reset by the client, or closed by the linger deadline */ }
  }

  /** The size of the head #scanHead() returned last (kept here: no result object per request). */
  #headBytes = 0;
  readonly #scan = newScanState();

  /** The request head if the buffered bytes hold all of it (else undefined: read more). */
  #scanHead(): RequestHead | undefined {
    const r = this.#reader;
    const st = this.#scan;
    const len = findHeadEnd(r.buf, r.start, r.end, st, this.#limits, true);
    if (len < 0) return undefined;
    const head = parseRequestHead(r.buf, r.start + st.skip, r.start + len, this.cfg.max_request_line);
    r.start += len;
    this.#headBytes = len - st.skip;
    return head;
  }

  /** Reads more of a head (the header timeout runs from its first byte); false at EOF. */
  #fillHead(): Promise<boolean> {
    const r = this.#reader;
    const pending = r.end - r.start - this.#scan.skip;
    if (this.reason === "idle" && pending > 0) this.#arm("header", this.cfg.header_timeout);
    return r.fill(Math.min(this.#limits.maxHead + 4, Math.max(4096, pending * 2)));
  }

  /** After #fillHead: false on a clean EOF between requests; an EOF inside a head is an error. */
  #filled(ok: boolean): boolean {
    const r = this.#reader;
    if (!ok) {
      if (r.end - r.start - this.#scan.skip > 0) {
        throw new H1ParseError(400, "connection closed inside a request head");
      }
      return false;
    }
    if (this.reason === "idle") {
      this.#headAt = turnNow();
      this.#arm("header", this.cfg.header_timeout, this.#headAt);
    }
    return true;
  }

  /** Handles one request; returns whether the connection may carry another. */
  async #exchange(head: RequestHead, headBytes: number): Promise<boolean> {
    this.#inRequest = true;
    this.#responseStarted = false;
    this.deadline = Infinity;
    const start = this.#headAt >= 0 ? this.#headAt : turnNow();
    this.#headAt = -1;
    const rec: RequestRecord = {
      start,
      method: head.method,
      authority: "",
      path: head.target,
      version: head.minor === 1 ? "1.1" : "1.0",
      status: 0,
      bytesIn: headBytes,
      bytesOut: 0,
    };
    const w = this.#writer;
    const startOut = w.written;
    let keepAlive = false;
    let reqBody: RequestBody | null = null;
    try {
      const req = this.#buildRequest(head, rec);
      keepAlive = wantsKeepAlive(head);
      if (req.error) {
        rec.error = req.error.reason;
        this.handler.event(req.error.reason);
        this.#linger = true;
        await this.#respond(gatewayError(req.error.status, req.error.reason), head, false, rec);
        return false;
      }
      reqBody = req.body;
      if (reqBody !== null) this.#lent = true;
      const proxyReq = req.request!;
      let res: ProxyResponse;
      try {
        res = await this.handler.handle(proxyReq, rec);
      } catch (e) {
        rec.error = "handler_failed";
        res = gatewayError(502, e instanceof Error ? e.message : "internal error");
      }
      // A failed request body decides the answer, whatever the upstream said.
      const bodyFailure = reqBody?.failure();
      if (bodyFailure) {
        res.body?.cancel();
        rec.error = bodyFailure.reason;
        if (this.#timedOut === "body") {
          rec.status = 408; // answered and counted by onExpire
          return false;
        }
        this.handler.event(bodyFailure.reason);
        res = gatewayError(bodyFailure.status, bodyFailure.reason);
        keepAlive = false;
      }
      if (res.upgrade) {
        if (reqBody || this.#closed) {
          res.upgrade.cancel(); // never: upgrades carry no body; or the client is gone
          return false;
        }
        return await this.#tunnel(res, rec);
      }
      if (reqBody && !reqBody.done) {
        keepAlive = false; // unread body: can't find the next request
        this.#linger = true;
      }
      if (this.#draining) keepAlive = false;
      const written = this.#respond(res, head, keepAlive, rec);
      return (typeof written === "boolean" ? written : await written) && keepAlive;
    } catch (e) {
      if (e instanceof H1ParseError) {
        rec.status = e.status === 502 ? 400 : e.status;
        rec.error = "parse_error";
        this.handler.event("parse_error");
        await this.#writeError(rec.status, e.message);
        this.#linger = true;
        return false;
      }
      rec.error ??= this.#writeFailure;
      return false;
    } finally {
      // The exchange is over: a body still unread belongs to nobody. An upload pump still waiting
      // on it (an HTTP/2 or HTTP/3 backend answered early) fails and resets its stream, instead of
      // reading alongside the lingering close and re-arming the body deadline over it.
      if (reqBody !== null && !reqBody.done) reqBody.cancel();
      rec.end = this.#lastEnd = turnNow();
      rec.bytesIn += reqBody?.received ?? 0;
      rec.bytesOut = w.written - startOut + this.#tunnelOut;
      this.#inRequest = false;
      this.handler.complete(rec);
    }
  }

  #buildRequest(
    head: RequestHead,
    rec: RequestRecord,
  ): { request?: ProxyRequest; body: RequestBody | null; error?: { status: number; reason: string } } {
    const h = head.headers;
    if (!requestTarget(head, rec)) {
      // Authority-form: CONNECT. A tunnel only where the listener allows them (the proxy checks where to).
      if (!this.cfg.connect_tunnels || requestFraming(h, head.minor).kind !== "none") {
        return { body: null, error: { status: 405, reason: "connect_not_enabled" } };
      }
      rec.authority = rec.path = head.target;
    }
    const authority = rec.authority, path = rec.path;
    const framing = requestFraming(h, head.minor);
    const expect = getHeader(h, "expect");
    if (expect !== undefined && expect.toLowerCase() !== "100-continue") {
      return { body: null, error: { status: 417, reason: "expectation_failed" } };
    }
    if (framing.kind === "length" && framing.length > this.cfg.max_body_size) {
      return { body: null, error: { status: 413, reason: "body_too_large" } };
    }
    let body: RequestBody | null = null;
    if (framing.kind === "length" || framing.kind === "chunked") {
      body = new RequestBody(
        this,
        framing.kind === "length" ? framing.length : undefined,
        expect !== undefined && head.minor === 1, // HTTP/1.0 clients don't know 100 (RFC 9110 §10.1.1)
      );
    }
    const teTokens = getHeader(h, "te");
    const request: ProxyRequest = {
      method: head.method,
      scheme: this.client.tls ? "https" : "http",
      authority,
      path,
      headers: stripFraming(h),
      body,
      version: head.minor === 1 ? "1.1" : "1.0",
      acceptsTrailers: teTokens !== undefined && /(^|,)\s*trailers\s*(;|,|$)/i.test(teTokens),
      client: this.client,
    };
    return { request, body };
  }

  // Used by RequestBody.
  get reader(): ConnReader {
    return this.#reader;
  }
  get maxBody(): number {
    return this.cfg.max_body_size;
  }
  // Body read hooks (ConnReader.beforeRead/afterRead), made once per connection.
  readonly armBody = (): void => {
    this.#arm("body", this.cfg.body_timeout);
  };
  /**
   * Clears the body deadline only: a body read can still complete after its exchange ended (an
   * HTTP/2 or HTTP/3 backend answered early and the upload pump was still waiting on the client),
   * and must not clear the linger deadline armed meanwhile, or the lingering read would wait for
   * the client forever.
   */
  readonly disarm = (): void => {
    if (this.reason === "body") this.deadline = Infinity;
  };
  async sendContinue(): Promise<void> {
    if (this.#responseStarted) return;
    await this.#writer.pushBytes(CONTINUE_100);
    await this.#writer.flush();
  }
  get timedOut(): string | undefined {
    return this.#timedOut;
  }

  /**
   * Writes the response. Not async: a response whose body is already here (a gateway answer, a
   * small upstream body whole in the read buffer) is pushed and sent without waiting for the
   * write (ConnWriter.send: the next step is reading the next request, which fails too if the
   * write did), and the answer is a plain boolean; streaming bodies go through #streamBody.
   */
  #respond(
    res: ProxyResponse,
    head: RequestHead,
    keepAlive: boolean,
    rec: RequestRecord,
  ): boolean | Promise<boolean> {
    const w = this.#writer;
    const headAt = w.written;
    const isHead = head.method === "HEAD";
    const status = res.status;
    const noBody = isHead || status < 200 || status === 204 || status === 304;
    const body = res.body;
    let mode: "length" | "chunked" | "close" | "none" = "none";
    let lengthHeader: string | undefined;
    if (!noBody && body) {
      if (body.length !== undefined) {
        mode = "length";
        lengthHeader = String(body.length);
      } else if (head.minor === 1) mode = "chunked";
      else {
        mode = "close";
        keepAlive = false;
      }
    } else if (!noBody) {
      lengthHeader = "0";
    }
    rec.status = status;
    // The head goes into the write buffer piece by piece (ConnWriter.pushStr: no string built).
    w.pushStr(statusLine(status));
    const hs = res.headers;
    for (let i = 0; i < hs.length; i += 2) {
      const n = hs[i];
      if (n === "content-length") {
        if (noBody && lengthHeader === undefined) w.pushField("content-length", hs[i + 1]); // HEAD/304 metadata
        continue;
      }
      if (n === "transfer-encoding" || n === "connection") continue;
      w.pushField(n, hs[i + 1]);
    }
    if (lengthHeader !== undefined) w.pushField("content-length", lengthHeader);
    if (mode === "chunked") w.pushStr("transfer-encoding: chunked\r\n");
    if (!keepAlive) w.pushStr("connection: close\r\n");
    else if (head.minor === 0) w.pushStr("connection: keep-alive\r\n");
    this.#responseStarted = true;
    w.pushStr("\r\n");
    if (!body || mode === "none") {
      body?.cancel();
      return this.#send(keepAlive);
    }
    let chunk: Uint8Array | null | undefined;
    try {
      // A small response is usually whole in the upstream read buffer: copied next to the head
      // and sent in one write here, without writeBody's async layer (it takes over otherwise).
      chunk = mode === "length" && body.tryRead !== undefined ? body.tryRead() : undefined;
      while (chunk != null && w.tryPush(chunk)) chunk = body.tryRead!();
    } catch (e) {
      return this.#bodyFailed(body, e, rec, headAt);
    }
    if (chunk === null) return this.#send(keepAlive);
    return this.#streamBody(body, chunk, mode, keepAlive, rec, headAt);
  }

  /**
   * The pushed response goes out. When the connection stays open, it is not waited for (see
   * ConnWriter.send); when it closes next, it is: closing cuts an unfinished write.
   */
  #send(keepAlive: boolean): boolean | Promise<boolean> {
    if (keepAlive && !this.#draining && this.#writer.send()) return true;
    return this.#writer.flush().then(() => keepAlive, () => false);
  }

  async #streamBody(
    body: Body,
    first: Uint8Array | undefined,
    mode: "length" | "chunked" | "close",
    keepAlive: boolean,
    rec: RequestRecord,
    /** ConnWriter.written when the head was pushed. */
    headAt: number,
  ): Promise<boolean> {
    try {
      if (first !== undefined) await this.#writer.pushBytes(first);
      await writeBody(this.#writer, body, mode, true);
    } catch (e) {
      return await this.#bodyFailed(body, e, rec, headAt);
    }
    return keepAlive;
  }

  /**
   * The response body failed (the upstream cut it short or framed it badly, or the client went
   * away). If none of the response has reached the socket yet (head and first bytes still in the
   * write buffer, as when a small broken answer arrives whole), the client gets a 502 rather
   * than an empty reply, as HAProxy does; else the connection is cut, the only honest signal
   * left in HTTP/1.1.
   */
  #bodyFailed(body: Body, e: unknown, rec: RequestRecord, headAt: number): false | Promise<false> {
    body.cancel();
    const w = this.#writer;
    // Nothing of this response was handed to the socket: no client write can have failed.
    const unsent = !this.#closed && w.written === headAt && w.discardPending();
    rec.error ??= e instanceof TruncatedBodyError
      ? "upstream_truncated"
      : unsent || e instanceof H1ParseError
      ? "upstream_failed"
      : this.#writeFailure;
    if (!unsent) return false;
    rec.status = 502;
    this.#responseStarted = false;
    return this.#writeError(502, "the upstream response failed before any of it was sent").then(() => false);
  }

  /**
   * The answer switches this connection to a tunnel (101 for a WebSocket, 200 for CONNECT): the
   * head goes out as given (Upgrade / Connection included, no framing fields), then the socket —
   * with any bytes the client sent past its request head — is one side of the relay, until it ends.
   * The connection never carries HTTP again.
   */
  async #tunnel(res: ProxyResponse, rec: RequestRecord): Promise<boolean> {
    this.#lent = true;
    const upgrade = res.upgrade!;
    rec.status = res.status;
    let text = statusLine(res.status);
    const hs = res.headers;
    for (let i = 0; i < hs.length; i += 2) {
      const n = hs[i];
      if (n === "content-length" || n === "transfer-encoding") continue;
      text += `${n}: ${hs[i + 1]}\r\n`;
    }
    this.#responseStarted = true;
    const w = this.#writer;
    try {
      w.pushText(text + "\r\n");
      await w.flush();
    } catch {
      upgrade.cancel();
      rec.error ??= this.#writeFailure;
      return false;
    }
    const r = this.#reader;
    const pre = r.buf.subarray(r.start, r.end);
    r.start = r.end;
    const totals = await upgrade.run(new ConnStream(this.conn, pre, () => this.abort()));
    rec.bytesIn += totals.fromClient;
    this.#tunnelOut = totals.toClient;
    return false;
  }

  async #writeError(status: number, reason: string): Promise<void> {
    if (this.#closed || this.#responseStarted) return;
    this.#responseStarted = true;
    const body = `${reasonPhrase(status) || "Error"}: ${reason}\n`;
    const w = this.#writer;
    w.pushText(
      `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
        `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
    );
    try {
      await w.flush();
    } catch { /* the client is gone */ }
  }
}

/**
 * The request body as the proxy sees it: decodes framing, enforces max_body_size and the
 * body timeout, and sends `100 Continue` the first time it is read (as nginx does: the
 * gateway answers Expect itself; the upstream never sees it).
 */
class RequestBody implements Body {
  readonly #decoder: LengthBody | ChunkedBody;
  #expectContinue: boolean;
  #error: unknown;
  #cancelled = false;

  constructor(
    private readonly owner: H1ServerConn,
    readonly length: number | undefined,
    expectContinue: boolean,
  ) {
    const r = owner.reader;
    const onEnd = () => {
      r.beforeRead = r.afterRead = undefined;
      owner.disarm();
    };
    this.#decoder = length !== undefined
      ? new LengthBody(r, length, owner.maxBody, onEnd, 400)
      : new ChunkedBody(r, owner.maxBody, onEnd, 400);
    this.#expectContinue = expectContinue;
  }

  get received(): number {
    return this.#decoder.received;
  }
  get done(): boolean {
    // complete, not done: a body cancelled unread (the backend answered early) leaves no known
    // boundary, so the connection must not read a next request after it (keep-alive off).
    return this.#decoder.complete && !this.#error;
  }

  tryRead(): Uint8Array | null | undefined {
    if (this.#expectContinue) return undefined; // read() sends 100 Continue first
    try {
      return this.#decoder.tryRead();
    } catch (e) {
      this.#failed(e);
      throw e;
    }
  }

  async read(): Promise<Uint8Array | null> {
    if (this.#expectContinue) {
      this.#expectContinue = false;
      await this.owner.sendContinue();
    }
    const r = this.owner.reader;
    r.beforeRead = this.owner.armBody;
    r.afterRead = this.owner.disarm;
    try {
      return await this.#decoder.read();
    } catch (e) {
      this.#failed(e);
      throw e;
    }
  }

  trailers(): HeaderList | undefined {
    // Framing, routing and auth fields are not allowed in trailers (RFC 9110 §6.5.1).
    return sanitizeTrailers(this.#decoder.trailers());
  }

  cancel(): void {
    this.#cancelled = true;
    this.#decoder.cancel();
  }

  /**
   * Records why a read failed, unless the body was cancelled first: reads that fail because the
   * gateway gave the body up (the upstream failed, answered early, or the exchange ended) are not
   * the client's fault, and must not turn the answer into a 400.
   */
  #failed(e: unknown): void {
    if (!this.#cancelled) this.#error ??= e;
  }

  /** What went wrong reading the body, as the status the client should get. */
  failure(): { status: number; reason: string } | undefined {
    const e = this.#error;
    if (!e) return undefined;
    if (this.owner.timedOut === "body") return { status: 408, reason: "body_timeout" };
    if (e instanceof BodyTooLargeError) return { status: 413, reason: "body_too_large" };
    if (e instanceof H1ParseError) return { status: 400, reason: "bad_chunked_body" };
    return { status: 400, reason: "body_read_failed" };
  }
}

function wantsKeepAlive(head: RequestHead): boolean {
  const tokens = connectionTokens(head.headers);
  if (head.minor === 1) return !tokens.includes("close");
  return tokens.includes("keep-alive");
}

/** Framing fields are re-derived by whichever codec writes the message next. */
function stripFraming(h: string[]): string[] {
  for (let i = 0; i < h.length; i += 2) {
    if (h[i] === "content-length" || h[i] === "transfer-encoding" || h[i] === "expect") {
      const out: string[] = [];
      for (let j = 0; j < h.length; j += 2) {
        const n = h[j];
        if (n !== "content-length" && n !== "transfer-encoding" && n !== "expect") out.push(n, h[j + 1]);
      }
      return out;
    }
  }
  return h;
}

function gatewayError(status: number, reason: string): ProxyResponse {
  return gatewayResponse(status, `${reasonPhrase(status) || "Error"}: ${reason}\n`);
}
