/**
 * The HTTP/2 server codec (h2 over TLS via ALPN, h2c by prior knowledge): every client stream
 * becomes a ProxyRequest handed to the same handler as the HTTP/1.1 codec, concurrently, and its
 * ProxyResponse is written back as HEADERS / DATA / trailers with flow control.
 *
 * Request semantics (RFC 9113 §8): malformed requests are reset with PROTOCOL_ERROR before the
 * handler sees them; content-length is checked against the DATA received; a response completed
 * before the request body ended drops the rest of the body (up to limits.discardLimit, then
 * RST_STREAM(NO_ERROR), §8.1). Timeouts: the preface (and first SETTINGS) within header_timeout,
 * each wait for request-body data within body_timeout, no open stream for idle_timeout.
 */

import type { ListenerConfig } from "../../config/types.ts";
import { sweeper } from "../../net/deadlines.ts";
import { turnNow } from "../../net/clock.ts";
import type { Body, ClientInfo, ProxyRequest, ProxyResponse } from "../exchange.ts";
import { gatewayResponse, hasHeader } from "../exchange.ts";
import type { H1Handler, RequestRecord, ServerConnection } from "../h1/server.ts";
import { reasonPhrase } from "../h1/write.ts";
import { Closed, H2Session } from "./connection.ts";
import { ErrorCode, H2ConnectionError, H2StreamError, SettingsId } from "./frames.ts";
import { type H2RequestHead, parseRequestFields, parseTrailerFields, responseFieldList } from "./headers.ts";
import type { HeaderField } from "./hpack.ts";
import { type H2Limits, h2Limits } from "./limits.ts";
import { EMPTY_BYTES, H2Stream } from "./stream.ts";
import { trimWhenIdle } from "./writer.ts";
import { H2TunnelStream } from "../../websocket/streams.ts";

/** Why the request body failed, as the answer the client should get if none was sent yet. */
interface BodyError {
  status: number;
  reason: string;
}

class ServerStream extends H2Stream {
  expectContinue = false;
  headersSent = false;
  bodyError: BodyError | undefined;
  /** Body bytes still accepted (and dropped) after the response completed. */
  discardBudget = 0;
  /** The response opened a tunnel (CONNECT → 2xx): DATA both ways is tunnel bytes, not bodies. */
  upgraded = false;
  /** The response body being sent: cancelled if the stream closes first (onStreamClosed). */
  responseBody: Body | undefined;
}

export class BodyTooLarge extends Error {
  constructor(limit: number) {
    super(`request body larger than ${limit} bytes`);
    this.name = "BodyTooLarge";
  }
}

export class H2ServerConn extends H2Session implements ServerConnection {
  /** Waiting for the idle trim of its write buffers (writer.ts trimWhenIdle). */
  trimQueued = false;
  #draining = false;
  /** Exchanges whose handler or response is still running (reset streams included). */
  #serving = 0;

  constructor(
    conn: Deno.Conn,
    readonly cfg: ListenerConfig,
    readonly client: ClientInfo,
    readonly handler: H1Handler,
    /** Bytes already read from the socket (h2c preface detection). */
    private readonly initial?: Uint8Array,
    limits: Partial<H2Limits> = {},
  ) {
    super(
      conn,
      true,
      h2Limits({ maxHeaderListSize: cfg.max_header_size, ...listenerLimits(cfg), ...limits }),
    );
  }

  get active(): boolean {
    return this.streams.size > 0;
  }

  event(kind: string): void {
    this.handler.event(kind);
  }

  async run(): Promise<void> {
    const extra: Array<[number, number]> = [[
      SettingsId.MAX_CONCURRENT_STREAMS,
      this.limits.maxConcurrentStreams,
    ]];
    if (this.limits.enableConnectProtocol) extra.push([SettingsId.ENABLE_CONNECT_PROTOCOL, 1]);
    this.sendPrefaceSettings(extra);
    this.reason = "preface";
    this.deadline = performance.now() + this.cfg.header_timeout;
    sweeper.add(this);
    await this.readLoop(this.initial, true);
  }

  drain(): void {
    if (this.closing) return;
    this.#draining = true;
    this.goaway("draining");
    if (this.streams.size === 0) this.shutdown();
  }

  override onExpire(reason: string): void {
    if (reason === "preface") {
      this.handler.event("header_timeout");
      this.abort();
    } else if (reason === "idle") {
      this.handler.event("idle_timeout");
      this.goaway("idle");
      this.shutdown();
    } else super.onExpire(reason);
  }

  #armIdle(): void {
    if (this.closing) return;
    if (this.streams.size === 0) {
      trimWhenIdle(this);
      this.reason = "idle";
      this.deadline = turnNow() + this.cfg.idle_timeout;
    } else this.deadline = Infinity;
  }

  protected override onPeerSettings(): void {
    this.#armIdle();
  }

  protected override onGoaway(): void {
    // The client opens nothing more; close once its streams are done.
    if (this.streams.size === 0) this.shutdown();
  }

  protected override onStreamClosed(s: H2Stream): void {
    // The client reset the stream (or the connection went) while its response was being sent:
    // the upstream body is given up now, not at its next chunk (an event stream between events,
    // a long poll: up to response_timeout later), so its connection and in-flight count go too.
    const body = (s as ServerStream).responseBody;
    if (body !== undefined && !s.sendEnded) {
      (s as ServerStream).responseBody = undefined;
      body.cancel();
    }
    if (this.streams.size > 0 || this.closing) return;
    if (this.#draining || this.goawayReceived >= 0) this.shutdown();
    else this.#armIdle();
  }

  // --- streams --------------------------------------------------------------------------------

  protected onHeaderBlock(
    id: number,
    fields: HeaderField[] | null,
    endStream: boolean,
    prio: H2StreamError | undefined,
    blockSize: number,
  ): void {
    const existing = this.streams.get(id) as ServerStream | undefined;
    if (existing) {
      existing.headerBytes += blockSize;
      this.#onTrailers(existing, fields, endStream, prio);
      return;
    }
    if ((id & 1) === 0) {
      throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `client opened even stream ${id}`);
    }
    if (id <= this.lastPeerStreamId) {
      const how = this.closedHow(id);
      if (how === undefined) {
        throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `stream ${id} is below the last opened stream`);
      }
      this.frameOnClosedStream(id, "HEADERS");
      return;
    }
    this.lastPeerStreamId = id;
    if (this.goawaySent >= 0) {
      // After our GOAWAY, new streams are ignored (§6.8; their field block was decoded above),
      // and so are the frames that follow on them (their DATA still counts against the connection
      // window): a POST that crossed the GOAWAY must not turn the drain into a connection error.
      this.remember(id, Closed.ResetLocal);
      return;
    }
    if (prio) throw prio;
    // An answer without a body (HEAD, 204, 304, Trailers-Only) is one HEADERS frame that no flow
    // control holds back and that ends its stream at once: a client sending such requests without
    // reading would grow our output without bound.
    this.checkOutput();
    // Reset streams leave the table while their exchange still runs (Rapid Reset, CVE-2023-44487):
    // exchanges in progress count against the same limit.
    if (Math.max(this.streams.size, this.#serving) >= this.limits.maxConcurrentStreams) {
      this.event("h2_refused_stream");
      this.resetStream(id, ErrorCode.REFUSED_STREAM);
      this.provokedReset();
      return;
    }
    const s = new ServerStream(id, this, this.limits.streamWindow, this.peerInitialWindow);
    s.waitTimeoutMs = this.cfg.body_timeout;
    s.headerBytes = blockSize;
    if (fields === null) {
      this.streams.set(id, s);
      this.deadline = Infinity;
      if (endStream) s.pushData(EMPTY_BYTES, true);
      this.#serveLocal(s, 431, "request header fields too large", "").catch(() => {});
      return;
    }
    const head = parseRequestFields(fields, this.limits.enableConnectProtocol);
    if (typeof head === "string") {
      this.event("h2_malformed");
      throw new H2StreamError(id, ErrorCode.PROTOCOL_ERROR, head);
    }
    if (endStream && head.contentLength > 0) {
      this.event("h2_malformed");
      throw new H2StreamError(id, ErrorCode.PROTOCOL_ERROR, "content-length without DATA");
    }
    s.expectedLength = head.contentLength;
    s.expectContinue = head.expectContinue;
    this.streams.set(id, s);
    if (!this.closing) this.deadline = Infinity;
    if (endStream) s.pushData(EMPTY_BYTES, true);
    this.#serve(s, head).catch(() => {});
  }

  #onTrailers(s: ServerStream, fields: HeaderField[] | null, endStream: boolean, prio?: H2StreamError): void {
    if (prio) throw prio;
    if (s.recvEnded) throw new H2StreamError(s.id, ErrorCode.STREAM_CLOSED, "HEADERS after END_STREAM");
    if (!endStream) {
      this.event("h2_malformed");
      throw new H2StreamError(s.id, ErrorCode.PROTOCOL_ERROR, "trailers without END_STREAM");
    }
    const trailers = fields === null ? "trailers too large" : parseTrailerFields(fields);
    if (typeof trailers === "string") {
      this.event("h2_malformed");
      throw new H2StreamError(s.id, ErrorCode.PROTOCOL_ERROR, trailers);
    }
    if (s.expectedLength >= 0 && s.arrived !== s.expectedLength) {
      this.event("h2_malformed");
      throw new H2StreamError(s.id, ErrorCode.PROTOCOL_ERROR, "DATA length differs from content-length");
    }
    s.endWithTrailers(trailers.length > 0 ? trailers : undefined);
    this.onRemoteEnd(s);
  }

  protected override onData(st: H2Stream, data: Uint8Array, endStream: boolean): void {
    const s = st as ServerStream;
    // A tunnel is no body: no max_body_size; after our END_STREAM the client may still send (half-close).
    if (s.upgraded) {
      super.onData(s, data, endStream);
      return;
    }
    if (s.sendEnded) {
      // Response done: the rest of the body is dropped, within a budget.
      s.discardBudget -= data.length;
      if (s.discardBudget < 0) {
        this.consumed(s, data.length);
        this.resetStream(s, ErrorCode.NO_ERROR);
        return;
      }
    } else if (!s.discarding && s.arrived > this.cfg.max_body_size) {
      this.event("body_too_large");
      s.bodyError = { status: 413, reason: "body_too_large" };
      s.abandonRecv(new BodyTooLarge(this.cfg.max_body_size));
    }
    super.onData(s, data, endStream);
  }

  override readWait(st: H2Stream): void {
    const s = st as ServerStream;
    if (s.expectContinue && !s.headersSent && s.arrived === 0) {
      s.expectContinue = false;
      try {
        this.sendHeaders(s, [[":status", "100"]], false);
      } catch { /* stream gone */ }
    }
  }

  override streamTimeout(st: H2Stream): void {
    const s = st as ServerStream;
    if (s.sendEnded) {
      this.resetStream(s, ErrorCode.NO_ERROR); // the client never finished a body we no longer need
      return;
    }
    this.handler.event("body_timeout");
    s.bodyError = { status: 408, reason: "body_timeout" };
    s.abandonRecv(new Error("request body timeout"));
  }

  override cancelRecv(st: H2Stream): void {
    // The proxy no longer wants the body; the stream lives on for the response.
    st.abandonRecv();
    if (st.sendEnded && !st.closed) this.resetStream(st, ErrorCode.NO_ERROR);
  }

  protected override onLocalEnd(st: H2Stream): void {
    const s = st as ServerStream;
    if (s.recvEnded) {
      // A tunnel's last client bytes may still be queued for the backend: delivered, not dropped
      // (the client half-closed after them). A request's body is not needed once answered.
      if (!s.upgraded) s.abandonRecv();
      this.closeStream(s, Closed.Ended);
      return;
    }
    if (s.upgraded) return; // half-closed: the client's side of the tunnel still flows
    // §8.1: the response is complete while the request is not; drop what still comes.
    s.abandonRecv();
    if (s.bodyError) {
      this.resetStream(s, ErrorCode.NO_ERROR);
      return;
    }
    s.discardBudget = this.limits.discardLimit;
    s.arm();
  }

  // --- exchange -------------------------------------------------------------------------------

  async #serve(s: ServerStream, head: H2RequestHead): Promise<void> {
    this.#serving++;
    const rec: RequestRecord = {
      start: turnNow(),
      method: head.method,
      authority: head.authority,
      path: head.path,
      version: "2",
      status: 0,
      bytesIn: 0,
      bytesOut: 0,
    };
    try {
      let res: ProxyResponse;
      if (head.contentLength > this.cfg.max_body_size) {
        rec.error = "body_too_large";
        this.handler.event("body_too_large");
        s.abandonRecv();
        res = gatewayError(413, "body_too_large");
      } else if (head.method === "CONNECT" && head.protocol === undefined && !this.cfg.connect_tunnels) {
        rec.error = "connect_not_enabled";
        res = gatewayError(405, "connect_not_enabled");
      } else {
        const req: ProxyRequest = {
          method: head.method,
          scheme: head.scheme === "https" ? "https" : "http",
          authority: head.authority,
          path: head.path,
          headers: head.headers,
          body: s.recvEnded && s.queued === 0 ? null : s,
          protocol: head.protocol,
          version: "2",
          acceptsTrailers: true,
          client: this.client,
        };
        try {
          res = await this.handler.handle(req, rec);
        } catch (e) {
          rec.error = "handler_failed";
          res = gatewayError(502, e instanceof Error ? e.message : "internal error");
        }
      }
      if (s.closed && !s.sendEnded) {
        res.body?.cancel();
        res.upgrade?.cancel();
        rec.error ??= "client_reset";
        return;
      }
      if (s.bodyError) {
        res.body?.cancel();
        res.upgrade?.cancel();
        rec.error = s.bodyError.reason;
        res = gatewayError(s.bodyError.status, s.bodyError.reason);
      }
      const sending = this.#respond(s, res, rec, head.method === "HEAD");
      if (sending) await sending;
    } finally {
      this.#serving--;
      rec.bytesIn += s.headerBytes + s.arrived;
      rec.bytesOut = s.bytesSent;
      this.handler.complete(rec);
    }
  }

  /** A gateway answer without the handler (e.g. 431), still logged. */
  async #serveLocal(s: ServerStream, status: number, reason: string, path: string): Promise<void> {
    const rec: RequestRecord = {
      start: turnNow(),
      method: "",
      authority: "",
      path,
      version: "2",
      status: 0,
      bytesIn: 0,
      bytesOut: 0,
      error: reason,
    };
    this.handler.event(reason.replaceAll(" ", "_"));
    try {
      const sending = this.#respond(s, gatewayError(status, reason), rec, false);
      if (sending) await sending;
    } finally {
      rec.bytesIn = s.headerBytes + s.arrived;
      rec.bytesOut = s.bytesSent;
      this.handler.complete(rec);
    }
  }

  /**
   * Writes the response; undefined when it went out without waiting (a small body at hand), else
   * the promise of the rest. Never throws or rejects: failures are recorded in `rec`.
   */
  #respond(
    s: ServerStream,
    res: ProxyResponse,
    rec: RequestRecord,
    isHead: boolean,
  ): Promise<void> | undefined {
    if (res.upgrade) return this.#tunnel(s, res, rec);
    const status = res.status;
    const body = res.body;
    const noBody = isHead || status === 204 || status === 304 || status < 200;
    rec.status = status;
    s.headersSent = true;
    try {
      if (noBody || !body) {
        body?.cancel();
        // A gRPC Trailers-Only response carries no content-length (it is all trailers).
        const length = noBody || hasHeader(res.headers, "grpc-status") ? undefined : 0;
        this.sendHeaderList(s, responseFieldList(status, res.headers, length, noBody), true);
        return;
      }
      this.sendHeaderList(s, responseFieldList(status, res.headers, body.length, false), false);
    } catch {
      body?.cancel();
      rec.error ??= "client_reset";
      return;
    }
    let sending: Promise<void> | undefined;
    s.responseBody = body;
    try {
      sending = this.sendBodyNow(s, body);
    } catch {
      this.#bodyFailed(s, body, rec);
      return;
    }
    return sending?.catch(() => this.#bodyFailed(s, body, rec));
  }

  #bodyFailed(s: ServerStream, body: Body, rec: RequestRecord): void {
    body.cancel();
    // Decided by the client's stream, not by the error's class: an h2 backend's body fails with
    // the same H2StreamReset / H2ConnectionLost classes, and then the client's stream is still
    // open and must be reset, or the client waits for an END_STREAM that never comes.
    if (s.closed || s.sendEnded || this.failed || this.closed) {
      rec.error ??= "client_reset";
      return;
    }
    // The upstream body failed mid-way: the client must not take a truncated body as complete.
    rec.error ??= "upstream_truncated";
    this.resetStream(s, ErrorCode.INTERNAL_ERROR);
  }

  /**
   * A CONNECT answered 2xx with a tunnel (RFC 8441 WebSocket, or a plain CONNECT): HEADERS without
   * END_STREAM, then the stream's DATA both ways is the tunnel, with HTTP/2 flow control as its
   * backpressure. Bytes are counted by the stream (arrived / bytesSent) as for any exchange.
   */
  async #tunnel(s: ServerStream, res: ProxyResponse, rec: RequestRecord): Promise<void> {
    const upgrade = res.upgrade!;
    rec.status = res.status;
    s.headersSent = true;
    try {
      this.sendHeaderList(s, responseFieldList(res.status, res.headers, undefined, false), false);
    } catch {
      upgrade.cancel();
      rec.error ??= "client_reset";
      return;
    }
    s.upgraded = true;
    await upgrade.run(new H2TunnelStream(this, s));
  }
}

/** `[listeners.http2]` as codec limits. */
export function listenerLimits(cfg: ListenerConfig): Partial<H2Limits> {
  const h = cfg.http2;
  if (!h) return {};
  return {
    maxConcurrentStreams: h.max_concurrent_streams,
    streamWindow: h.initial_window_size,
    connectionWindow: h.connection_window_size,
    maxHeaderBlockSize: h.max_header_block_size,
    maxContinuationFrames: h.max_continuation_frames,
    floodWindowMs: h.flood_window,
    rapidResetMax: h.rapid_reset_max,
    madeYouResetMax: h.made_you_reset_max,
    settingsMax: h.settings_flood_max,
    pingMax: h.ping_flood_max,
    emptyDataMax: h.empty_data_max,
    windowUpdateMax: h.window_update_flood_max,
    noopFrameMax: h.noop_frame_max,
    stallTimeoutMs: h.stall_timeout,
  };
}

function gatewayError(status: number, reason: string): ProxyResponse {
  return gatewayResponse(status, `${reasonPhrase(status) || "Error"}: ${reason}\n`);
}
