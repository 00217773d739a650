/**
 * The HTTP/3 server codec (RFC 9114): one instance per accepted QUIC connection. Every client
 * request stream becomes a ProxyRequest handed to the same handler as the HTTP/1.1 and HTTP/2
 * codecs, concurrently, and its ProxyResponse is written back as HEADERS / DATA / trailers.
 *
 * Streams: we open a control stream (SETTINGS first) and, when our QPACK dynamic table is
 * enabled, a QPACK decoder stream; we read the peer's control, QPACK encoder and decoder
 * streams (critical: closing one is H3_CLOSED_CRITICAL_STREAM) and cancel unknown ones.
 *
 * Errors: Deno cannot reset a stream with a code (src/quic/engine.ts), so stream errors that
 * RFC 9114 lets us escalate (malformed message, frame unexpected, request incomplete) close the
 * connection with the H3 code (§8: "an endpoint MAY ... treat a stream error as a connection
 * error"). A response whose upstream body fails mid-way keeps its content-length when it had
 * one, so the client detects the truncation; without one, the connection is closed.
 *
 * 0-RTT: connections are accepted before their handshake completes; a request stream that
 * arrived before it did was sent as early data and gets `early-data: 1`, which the proxy turns
 * into RFC 8470 behaviour (forward safe methods on routes with early_data = true, else 425).
 *
 * Tunnels: with `enableConnectProtocol` we advertise SETTINGS_ENABLE_CONNECT_PROTOCOL and accept
 * RFC 9220 extended CONNECT (`:protocol`, e.g. a WebSocket); a plain CONNECT goes to the proxy only
 * when the listener has connect_tunnels (else 405), as over HTTP/2. A 2xx with `res.upgrade` turns
 * the stream into a byte relay (./tunnel.ts).
 */

import type { ListenerConfig } from "../../config/types.ts";
import { type Deadline, sweeper } from "../../net/deadlines.ts";
import { SendWatch } from "../../net/send_watch.ts";
import {
  type QuicBidiStream,
  type QuicConnection,
  type QuicRecvStream,
  type QuicSendStream,
  ReadStopped,
} from "../../quic/engine.ts";
import type { Body, ClientInfo, HeaderList, ProxyRequest, ProxyResponse } from "../exchange.ts";
import { gatewayResponse, getHeader } from "../exchange.ts";
import type { H1Handler, RequestRecord, ServerConnection } from "../h1/server.ts";
import { reasonPhrase } from "../h1/write.ts";
import {
  type H2RequestHead,
  parseRequestFields,
  parseTrailerFields,
  responseFields,
  trailerFields,
} from "../h2/headers.ts";
import {
  checkRequestStreamFrame,
  encodeFrame,
  encodeGoaway,
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
import { MemberList, memberSlot } from "../../net/member_list.ts";

export interface H3Options {
  /** SETTINGS_QPACK_MAX_TABLE_CAPACITY we advertise (0: the peer may use static + literals only). */
  qpackMaxTableCapacity: number;
  /** SETTINGS_QPACK_BLOCKED_STREAMS we advertise. */
  qpackBlockedStreams: number;
  /**
   * Advertise SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 9220) and accept extended CONNECT (`:protocol`).
   * The data plane sets it when one of the listener's routes leads to a pool allowing WebSockets.
   */
  enableConnectProtocol?: boolean;
}

export const DEFAULT_H3_OPTIONS: H3Options = { qpackMaxTableCapacity: 4096, qpackBlockedStreams: 16 };

/** Largest control-stream frame we buffer (SETTINGS); bigger is H3_EXCESSIVE_LOAD. */
const MAX_CONTROL_FRAME = 16 * 1024;

/**
 * The one-varint payload of a GOAWAY, MAX_PUSH_ID or CANCEL_PUSH. A frame announcing more than
 * we would ever buffer is refused on its length alone, before any of it arrives (RFC 9114
 * §10.5: a peer generating excessive load, H3_EXCESSIVE_LOAD §8.1; h3spec "MUST NOT buffer a
 * frame longer than …", which takes only that code). A shorter one that is still longer than
 * its one varint is H3_FRAME_ERROR (§7.1, §10.8).
 */
async function singleVarintFrame(
  r: FrameReader,
  type: number,
  length: number,
  name: string,
): Promise<number> {
  if (length > MAX_CONTROL_FRAME) {
    throw new H3Error(H3.EXCESSIVE_LOAD, `control frame 0x${type.toString(16)} of ${length} octets`);
  }
  if (length > 8) throw new H3Error(H3.FRAME_ERROR, `${name} frame too long`);
  return parseSingleVarint(await r.payload(length), name);
}
/**
 * After the last stream of a draining connection finished, wait this long (or until the client
 * closes) before CONNECTION_CLOSE: closing discards stream data not yet acknowledged, and Deno
 * does not tell when the peer acknowledged a FIN.
 */
const CLOSE_LINGER_MS = 1500;
/** An unread request body is checked (RequestBody.checkIfArrived) only when this much is here… */
const UNREAD_CHECK_LIMIT = 64 * 1024;
/** …with its FIN, within this many milliseconds. */
const UNREAD_CHECK_MS = 5;
/** Payloads up to this size are copied behind their DATA frame header (one write, not two). */
const COALESCE_LIMIT = 16 * 1024;

/** A request body that ended (FIN) short of its content-length: refused on its stream (RequestBody.read). */
class CutBody extends H3Error {
  constructor() {
    super(H3.MESSAGE_ERROR, "request body shorter than content-length");
  }
}

/** An answer that carries no body whatever it was given (RFC 9110 §6.4.1). */
function bodiless(isHead: boolean, status: number): boolean {
  return isHead || status === 204 || status === 304 || status < 200;
}

/** A response's writes made no progress for send_timeout (RequestStream.#respond). */
class SendStalled extends Error {}

class H3StreamAbort extends Error {
  constructor(message: string) {
    super(message);
    this.name = "H3StreamAbort";
  }
}

/** Why the request body failed, as the answer the client should get if none was sent yet. */
interface BodyFailure {
  status: number;
  reason: string;
}

/** One per connection, all sharing the slot (a stream belongs to one connection). */
const H3_STREAMS = memberSlot("h3 request streams");

export class H3ServerConn implements ServerConnection, Deadline {
  deadline = Infinity;
  reason = "idle";
  readonly #streams = new MemberList<RequestStream>(H3_STREAMS); // not a Set: see member_list.ts
  readonly #decoder: QpackDecoder;
  readonly #decoderStreamParser = new DecoderStreamParser();
  #control: QuicSendStream | undefined;
  #decoderOut: QuicSendStream | undefined;
  #decoderOutQueue: Promise<void> = Promise.resolve();
  #peerStreams = { control: false, encoder: false, decoder: false };
  #peerGoaway = -1;
  /** Stream id in our GOAWAY (-1: none sent); streams at or above it are refused. */
  #goawayId = -1;
  #lastStreamId = -1;
  #closing = false;
  #draining = false;

  constructor(
    readonly qc: QuicConnection,
    readonly cfg: ListenerConfig,
    readonly client: ClientInfo,
    readonly handler: H1Handler,
    readonly opts: H3Options = DEFAULT_H3_OPTIONS,
  ) {
    this.#decoder = new QpackDecoder({
      maxTableCapacity: opts.qpackMaxTableCapacity,
      maxBlockedStreams: opts.qpackBlockedStreams,
      maxFieldSectionSize: cfg.max_header_size,
    });
  }

  get active(): boolean {
    return this.#streams.size > 0;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Runs until the connection is closed. Never rejects. */
  async run(): Promise<void> {
    sweeper.add(this);
    this.#armIdle();
    try {
      this.#openOurStreams().catch((e) => this.#fail(e));
      this.#acceptUni().catch((e) => this.#fail(e));
      this.#acceptBidi().catch((e) => this.#fail(e));
      await this.qc.closed;
    } finally {
      this.#closing = true;
      sweeper.delete(this);
      this.#decoder.fail(new H3StreamAbort("connection closed"));
    }
  }

  drain(): void {
    if (this.#closing || this.#draining) return;
    this.#draining = true;
    this.#sendGoaway();
    if (this.#streams.size === 0) this.close(H3.NO_ERROR, "draining");
  }

  abort(): void {
    this.close(H3.NO_ERROR, "shutting down");
  }

  close(code: number, reason: string): void {
    if (this.#closing) return;
    this.#closing = true;
    sweeper.delete(this);
    this.qc.close(code, reason);
  }

  onExpire(reason: string): void {
    if (reason === "idle") {
      this.handler.event("idle_timeout");
      this.#sendGoaway();
      this.close(H3.NO_ERROR, "idle");
    } else if (reason === "linger") {
      this.close(H3.NO_ERROR, "done");
    }
  }

  #armIdle(): void {
    if (this.#closing) return;
    if (this.#streams.size === 0) {
      this.reason = "idle";
      this.deadline = performance.now() + this.cfg.idle_timeout;
    } else this.deadline = Infinity;
  }

  /** A connection error: count it, close with its code. */
  #fail(e: unknown): void {
    if (this.#closing) return;
    if (e instanceof H3Error) {
      this.handler.event(`h3_${errorName(e.code).replace(/^H3_/, "").toLowerCase()}`);
      this.close(e.code, e.message.slice(0, 200));
      return;
    }
    if (e instanceof H3StreamAbort) return;
    // Lost connection or an internal fault: close without blaming the peer.
    this.close(H3.INTERNAL_ERROR, "internal error");
  }

  #sendGoaway(): void {
    if (this.#goawayId >= 0 || !this.#control) {
      if (this.#goawayId < 0) this.#goawayId = this.#lastStreamId + 4;
      return;
    }
    this.#goawayId = this.#lastStreamId + 4;
    this.#control.write(encodeGoaway(this.#goawayId)).catch(() => {});
  }

  // --- our unidirectional streams -------------------------------------------------------------

  async #openOurStreams(): Promise<void> {
    const control = await this.qc.openUni();
    const settings: Array<[number, number]> = [
      [Setting.MAX_FIELD_SECTION_SIZE, this.cfg.max_header_size],
    ];
    if (this.opts.enableConnectProtocol) settings.push([Setting.ENABLE_CONNECT_PROTOCOL, 1]);
    if (this.opts.qpackMaxTableCapacity > 0) {
      settings.push(
        [Setting.QPACK_MAX_TABLE_CAPACITY, this.opts.qpackMaxTableCapacity],
        [Setting.QPACK_BLOCKED_STREAMS, this.opts.qpackBlockedStreams],
      );
    }
    const st = encodeSettings(settings);
    const first = new Uint8Array(1 + st.length);
    first[0] = StreamType.CONTROL;
    first.set(st, 1);
    await control.write(first);
    this.#control = control;
    if (this.#goawayId >= 0) control.write(encodeGoaway(this.#goawayId)).catch(() => {});
    if (this.opts.qpackMaxTableCapacity > 0) {
      const dec = await this.qc.openUni();
      await dec.write(Uint8Array.of(StreamType.QPACK_DECODER));
      this.#decoderOut = dec;
    }
  }

  /** Queues bytes for our QPACK decoder stream (acks, increments, cancellations), in order. */
  #sendDecoderInstruction(bytes: Uint8Array | null): void {
    if (!bytes) return;
    this.#decoderOutQueue = this.#decoderOutQueue.then(async () => {
      for (let i = 0; i < 100 && !this.#decoderOut && !this.#closing; i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      await this.#decoderOut?.write(bytes);
    }).catch(() => {});
  }

  // --- the peer's unidirectional streams ------------------------------------------------------

  async #acceptUni(): Promise<void> {
    for (;;) {
      const s = await this.qc.acceptUni();
      if (!s) return;
      this.#serveUni(s).catch((e) => this.#fail(e));
    }
  }

  async #serveUni(s: QuicRecvStream): Promise<void> {
    const r = new FrameReader(s, 4096);
    let type: number | null;
    try {
      type = await r.varint();
    } catch {
      return; // reset before its type: nothing to do (§6.2)
    }
    if (type === null) return;
    switch (type) {
      case StreamType.CONTROL:
        if (this.#peerStreams.control) throw new H3Error(H3.STREAM_CREATION_ERROR, "second control stream");
        this.#peerStreams.control = true;
        return await this.#readControl(r);
      case StreamType.QPACK_ENCODER:
        if (this.#peerStreams.encoder) {
          throw new H3Error(H3.STREAM_CREATION_ERROR, "second QPACK encoder stream");
        }
        this.#peerStreams.encoder = true;
        return await readCriticalStream(r, "QPACK encoder", (chunk) => {
          this.#sendDecoderInstruction(this.#decoder.onEncoderStream(chunk));
        }, () => this.#closing);
      case StreamType.QPACK_DECODER:
        if (this.#peerStreams.decoder) {
          throw new H3Error(H3.STREAM_CREATION_ERROR, "second QPACK decoder stream");
        }
        this.#peerStreams.decoder = true;
        return await readCriticalStream(
          r,
          "QPACK decoder",
          (chunk) => this.#decoderStreamParser.feed(chunk),
          () => this.#closing,
        );
      case StreamType.PUSH:
        throw new H3Error(H3.STREAM_CREATION_ERROR, "client opened a push stream");
      default:
        // Unknown and reserved (GREASE) stream types: not read (§6.2: abort reading, no error).
        s.stopSending(H3.STREAM_CREATION_ERROR);
    }
  }

  async #readControl(r: FrameReader): Promise<void> {
    let first = true;
    for (;;) {
      const h = await nextControlFrame(r, () => this.#closing);
      if (h === null) return;
      const { type, length } = h;
      if (first && type !== FrameType.SETTINGS) {
        throw new H3Error(H3.MISSING_SETTINGS, "first frame on the control stream is not SETTINGS");
      }
      switch (type) {
        case FrameType.SETTINGS: {
          if (!first) throw new H3Error(H3.FRAME_UNEXPECTED, "second SETTINGS frame");
          first = false;
          if (length > MAX_CONTROL_FRAME) throw new H3Error(H3.EXCESSIVE_LOAD, "SETTINGS frame too large");
          parseSettings(await r.payload(length));
          break;
        }
        case FrameType.GOAWAY: {
          const id = await singleVarintFrame(r, type, length, "GOAWAY");
          // A client's GOAWAY carries a push ID; it may only shrink (§5.2).
          if (this.#peerGoaway >= 0 && id > this.#peerGoaway) {
            throw new H3Error(H3.ID_ERROR, "GOAWAY push ID increased");
          }
          this.#peerGoaway = id;
          if (this.#streams.size === 0) this.drain();
          break;
        }
        case FrameType.MAX_PUSH_ID: {
          await singleVarintFrame(r, type, length, "MAX_PUSH_ID"); // we never push
          break;
        }
        case FrameType.CANCEL_PUSH: {
          await singleVarintFrame(r, type, length, "CANCEL_PUSH");
          // We never sent a PUSH_PROMISE, so no push ID can be valid (§7.2.3).
          throw new H3Error(H3.ID_ERROR, "CANCEL_PUSH for a push that was never promised");
        }
        case FrameType.DATA:
        case FrameType.HEADERS:
        case FrameType.PUSH_PROMISE:
          throw new H3Error(H3.FRAME_UNEXPECTED, `frame type 0x${type.toString(16)} on the control stream`);
        default:
          if (isReservedH2FrameType(type)) {
            throw new H3Error(H3.FRAME_UNEXPECTED, `HTTP/2 frame type 0x${type.toString(16)}`);
          }
          await r.discard(length); // unknown / GREASE (§9)
      }
    }
  }

  // --- request streams ------------------------------------------------------------------------

  async #acceptBidi(): Promise<void> {
    for (;;) {
      const s = await this.qc.acceptBidi();
      if (!s) return;
      const id = Number(s.recv.id);
      if ((this.#goawayId >= 0 && id >= this.#goawayId) || this.#closing) {
        // After our GOAWAY (§5.2): not processed. Deno cannot send H3_REQUEST_REJECTED.
        s.recv.stopSending(H3.REQUEST_REJECTED);
        s.send.resetStream(H3.REQUEST_REJECTED);
        continue;
      }
      if (id > this.#lastStreamId) this.#lastStreamId = id;
      const rs = new RequestStream(this, s, id, !this.qc.handshakeDone);
      this.#streams.add(rs);
      this.#armIdle();
      rs.run().catch((e) => this.#fail(e)).finally(() => {
        this.#streams.delete(rs);
        if (this.#streams.size === 0 && (this.#draining || this.#peerGoaway >= 0)) {
          this.reason = "linger";
          this.deadline = performance.now() + CLOSE_LINGER_MS;
        } else this.#armIdle();
      });
    }
  }

  // Used by RequestStream.
  get decoder(): QpackDecoder {
    return this.#decoder;
  }
  sendDecoderInstruction(bytes: Uint8Array | null): void {
    this.#sendDecoderInstruction(bytes);
  }
  fail(e: unknown): void {
    this.#fail(e);
  }
}

/** One request stream: read HEADERS, serve, write the response. */
class RequestStream implements Deadline {
  deadline = Infinity;
  reason = "header";
  readonly reader: FrameReader;
  readonly send: QuicSendStream;
  bytesOut = 0;
  headerBytes = 0;
  responseStarted = false;
  body: RequestBody | null = null;
  /** Aborted when the stream gives up waiting (timeouts): frees a QPACK blocked-stream slot. */
  readonly abort = new AbortController();
  #timedOut: string | undefined;
  /** Writes issued and not yet settled, and those settled: what the send timeout watches. */
  #writing = 0;
  progress = 0;
  /** While a response is written: rejected when its writes stop making progress (send_timeout). */
  #stall: PromiseWithResolvers<never> | undefined;
  readonly #wrote = (): void => {
    this.#writing--;
    this.progress++;
  };

  constructor(
    readonly conn: H3ServerConn,
    s: QuicBidiStream,
    readonly id: number,
    /** Arrived before the handshake completed: 0-RTT data. */
    readonly early: boolean,
  ) {
    this.reader = new FrameReader(s.recv);
    this.send = s.send;
  }

  get cfg(): ListenerConfig {
    return this.conn.cfg;
  }

  arm(reason: string, ms: number): void {
    this.reason = reason;
    this.deadline = performance.now() + ms;
  }

  disarm(): void {
    this.deadline = Infinity;
  }

  get timedOut(): string | undefined {
    return this.#timedOut;
  }

  onExpire(reason: string): void {
    this.#timedOut = reason;
    this.conn.handler.event(`${reason}_timeout`);
    // Unblock whatever is pending (a read, or a QPACK-blocked section); run() writes the 408.
    this.abort.abort(new Error(`${reason} timeout`));
    this.reader.stream.stopSending(H3.REQUEST_CANCELLED);
  }

  async run(): Promise<void> {
    sweeper.add(this);
    try {
      if (this.early) this.conn.handler.event("h3_early_data");
      this.arm("header", this.cfg.header_timeout);
      let fields: HeaderField[] | null;
      try {
        fields = await this.#readHeaders();
      } catch (e) {
        if (this.#timedOut === "header") {
          await this.#serveLocal(408, "request header timeout");
          return;
        }
        throw e;
      }
      this.disarm();
      if (fields === null) {
        // Larger than SETTINGS_MAX_FIELD_SECTION_SIZE: refuse this request only (§4.2.2).
        this.reader.stream.stopSending(H3.REQUEST_REJECTED);
        await this.#serveLocal(431, "request header fields too large");
        return;
      }
      // RFC 9220 §3 / RFC 8441 §4: `:protocol` only if we advertised it, only on CONNECT, and then
      // with :scheme, :path and :authority; anything else is malformed (RFC 9114 §4.1.2).
      const head = parseRequestFields(fields, this.conn.opts.enableConnectProtocol === true);
      if (typeof head === "string") throw new H3Error(H3.MESSAGE_ERROR, head);
      await this.#serve(head);
    } catch (e) {
      if (e instanceof H3Error) throw e;
      // The stream or the connection died under us (client reset, connection closed).
      this.reader.stream.stopSending(H3.REQUEST_CANCELLED);
      this.send.resetStream(H3.REQUEST_CANCELLED);
    } finally {
      sweeper.delete(this);
    }
  }

  /** Frames up to and including the request HEADERS; returns its fields (null: too large). */
  async #readHeaders(): Promise<HeaderField[] | null> {
    const r = this.reader;
    const maxEncoded = this.cfg.max_header_size * 4 + 256;
    for (;;) {
      const h = await r.frameHeader();
      if (h === null) throw new H3Error(H3.REQUEST_INCOMPLETE, "request stream ended before HEADERS");
      this.headerBytes += h.length;
      switch (h.type) {
        case FrameType.HEADERS: {
          if (h.length > maxEncoded) {
            this.conn.sendDecoderInstruction(this.conn.decoder.streamCancellation(this.id));
            return null;
          }
          return await decodeSection(this.conn, await r.payload(h.length), this.id, this.abort.signal);
        }
        case FrameType.DATA:
          throw new H3Error(H3.FRAME_UNEXPECTED, "DATA before HEADERS");
        default:
          checkRequestStreamFrame(h.type);
          await r.discard(h.length);
      }
    }
  }

  async #serve(head: H2RequestHead): Promise<void> {
    const conn = this.conn;
    const rec: RequestRecord = {
      start: performance.now(),
      method: head.method,
      authority: head.authority,
      path: head.path,
      version: "3",
      status: 0,
      bytesIn: this.headerBytes,
      bytesOut: 0,
    };
    try {
      let res: ProxyResponse;
      if (head.contentLength > this.cfg.max_body_size) {
        rec.error = "body_too_large";
        conn.handler.event("body_too_large");
        res = gatewayError(413, "body_too_large");
      } else if (head.method === "CONNECT" && head.protocol === undefined && !this.cfg.connect_tunnels) {
        rec.error = "connect_not_enabled";
        res = gatewayError(405, "connect_not_enabled");
      } else {
        // A CONNECT's DATA is tunnel bytes once it is answered 2xx, never a request body.
        const hasBody = head.method !== "CONNECT" && await this.#hasBody(head);
        const body = hasBody ? new RequestBody(this, head) : null;
        this.body = body;
        // RFC 8470: a request that arrived as 0-RTT data is replayable; the proxy forwards it only
        // where the route allows early data (safe methods), with Early-Data: 1, else answers 425.
        if (this.early && getHeader(head.headers, "early-data") === undefined) {
          head.headers.push("early-data", "1");
        }
        const req: ProxyRequest = {
          method: head.method,
          scheme: head.scheme === "http" ? "http" : "https",
          authority: head.authority,
          path: head.path,
          headers: head.headers,
          body,
          protocol: head.protocol,
          version: "3",
          acceptsTrailers: true,
          client: conn.client,
        };
        try {
          res = await conn.handler.handle(req, rec);
        } catch (e) {
          rec.error = "handler_failed";
          res = gatewayError(502, e instanceof Error ? e.message : "internal error");
        }
        // RFC 9114 §4.1.2 / §4.2: a body that does not add up to its content-length, or malformed
        // trailers, make the request malformed (H3_MESSAGE_ERROR). A response the gateway made
        // without reading the body (a `respond` route, no pool involved) would leave that
        // unchecked; when the rest of the request is already here, check it before answering.
        if (body && rec.pool === undefined) await body.checkIfArrived();
        const failure = body?.failure;
        if (failure) {
          res.body?.cancel();
          res.upgrade?.cancel();
          rec.error = failure.reason;
          res = gatewayError(failure.status, failure.reason);
        }
      }
      await this.#respond(res, rec, head.method === "HEAD");
    } finally {
      rec.bytesIn += this.body?.received ?? 0;
      rec.bytesOut = this.bytesOut;
      conn.handler.complete(rec);
    }
  }

  /**
   * Whether the request has a body. HTTP/3 has no END_STREAM flag on HEADERS: a request without
   * a body is HEADERS then FIN, usually in the same packet. Content-Length settles it; otherwise
   * peek once (the FIN is normally already here) and assume a body if the peek is still pending,
   * so a streaming upload is never held back waiting for its first byte.
   */
  async #hasBody(head: H2RequestHead): Promise<boolean> {
    const r = this.reader;
    if (head.contentLength === 0) return false; // any DATA is then a content-length mismatch, caught by the body
    if (head.contentLength > 0 || r.available > 0) return true;
    if (r.eof) return false;
    const peek = r.more().catch(() => true);
    const first = await Promise.race([peek, new Promise<"wait">((res) => setTimeout(res, 1, "wait"))]);
    if (first === "wait") return true;
    return r.available > 0 || !r.eof;
  }

  async #serveLocal(status: number, reason: string): Promise<void> {
    const rec: RequestRecord = {
      start: performance.now(),
      method: "",
      authority: "",
      path: "",
      version: "3",
      status: 0,
      bytesIn: this.headerBytes,
      bytesOut: 0,
      error: reason.replaceAll(" ", "_"),
    };
    this.conn.handler.event(rec.error!);
    try {
      await this.#respond(gatewayError(status, reason), rec, false);
    } finally {
      rec.bytesOut = this.bytesOut;
      this.conn.handler.complete(rec);
    }
  }

  get busy(): boolean {
    return this.#writing > 0;
  }

  write(bytes: Uint8Array): Promise<void> {
    this.bytesOut += bytes.length;
    this.#writing++;
    const w = this.send.write(bytes);
    w.then(this.#wrote, this.#wrote);
    return this.#stall === undefined ? w : Promise.race([w, this.#stall.promise]);
  }

  writeHeaders(fields: HeaderField[]): Promise<void> {
    return this.write(encodeFrame(FrameType.HEADERS, encodeFieldSection(fields)));
  }

  /**
   * The response, with a send timeout: a client that stops reading it (no stream or connection
   * credit) for send_timeout gets no more of it, and its backend request is cancelled. Deno
   * cannot reset the stream: its send side is aborted, which Deno turns into a FIN once the
   * stuck write completes, i.e. if the client ever reads again (until then the stream is left as
   * it is; the connection closes at idle_timeout once it carries no other request). With a
   * content-length, or no body at all, that FIN is harmless (fewer bytes than announced is
   * malformed, §4.1.2); a body without one would look whole, so then the connection is closed
   * (H3_REQUEST_CANCELLED).
   */
  async #respond(res: ProxyResponse, rec: RequestRecord, isHead: boolean): Promise<void> {
    if (res.upgrade) return await this.#tunnel(res, rec);
    const stall = this.#stall = Promise.withResolvers<never>();
    stall.promise.catch(() => {}); // raced by each write; nobody may be waiting when it fires
    const watch = new SendWatch(this, this.cfg.send_timeout, () => stall.reject(new SendStalled()));
    watch.start();
    try {
      await this.#respondWatched(res, rec, isHead);
    } catch (e) {
      if (!(e instanceof SendStalled)) throw e;
      rec.error = "send_timeout";
      this.conn.handler.event("send_timeout");
      res.body?.cancel();
      this.reader.stream.stopSending(H3.REQUEST_CANCELLED);
      // A body without a content-length: only its FIN ends it, and that FIN would lie.
      const unframed = res.body && res.body.length === undefined && !bodiless(isHead, res.status);
      if (unframed) this.conn.close(H3.REQUEST_CANCELLED, "response not read (send timeout)");
      else this.send.resetStream(H3.REQUEST_CANCELLED);
    } finally {
      watch.stop();
      this.#stall = undefined;
    }
  }

  /** #respond's work; a write that stalls past send_timeout rejects with SendStalled. */
  async #respondWatched(res: ProxyResponse, rec: RequestRecord, isHead: boolean): Promise<void> {
    const status = res.status;
    const body = res.body;
    const noBody = bodiless(isHead, status);
    rec.status = status;
    this.responseStarted = true;
    const length = noBody ? undefined : body ? body.length : 0;
    try {
      await this.writeHeaders(responseFields(status, res.headers, length, noBody));
    } catch (e) {
      if (e instanceof SendStalled) throw e;
      body?.cancel();
      rec.error ??= "client_reset";
      return;
    }
    if (noBody || !body) {
      body?.cancel();
      await this.#finish();
      return;
    }
    for (;;) {
      let chunk: Uint8Array | null;
      try {
        chunk = await body.read();
      } catch {
        // The upstream body failed: never let the client take a truncated body as complete.
        body.cancel();
        rec.error ??= "upstream_truncated";
        if (body.length !== undefined) {
          await this.#finish(); // content-length ≠ DATA received: the client detects it (§4.1.2)
        } else {
          this.conn.handler.event("h3_truncated_close");
          this.conn.close(H3.INTERNAL_ERROR, "upstream body truncated");
        }
        return;
      }
      if (chunk === null) break;
      if (chunk.length === 0) continue;
      try {
        if (chunk.length <= COALESCE_LIMIT) {
          await this.write(encodeFrame(FrameType.DATA, chunk));
        } else {
          this.write(frameHeader(FrameType.DATA, chunk.length)).catch(() => {});
          await this.write(chunk);
        }
      } catch (e) {
        if (e instanceof SendStalled) throw e;
        body.cancel();
        rec.error ??= "client_reset";
        this.reader.stream.stopSending(H3.REQUEST_CANCELLED);
        return;
      }
    }
    const trailers = body.trailers();
    try {
      if (trailers && trailers.length > 0) await this.writeHeaders(trailerFields(trailers));
    } catch (e) {
      if (e instanceof SendStalled) throw e;
      rec.error ??= "client_reset";
      return;
    }
    await this.#finish();
  }

  /**
   * A CONNECT answered 2xx with a tunnel (RFC 9220 WebSocket, or a plain CONNECT): HEADERS without
   * FIN, then the stream's DATA both ways is the tunnel, relayed until both sides ended. Its own idle
   * timeout and lifetime govern (src/websocket/tunnel.ts); header/body timeouts no longer apply.
   */
  async #tunnel(res: ProxyResponse, rec: RequestRecord): Promise<void> {
    const upgrade = res.upgrade!;
    rec.status = res.status;
    this.responseStarted = true;
    this.disarm();
    try {
      await this.writeHeaders(responseFields(res.status, res.headers, undefined, false));
    } catch {
      upgrade.cancel();
      rec.error ??= "client_reset";
      return;
    }
    const tunnel = new H3TunnelStream(this);
    try {
      await upgrade.run(tunnel);
    } finally {
      rec.bytesIn += tunnel.received;
    }
  }

  fail(e: unknown): void {
    this.conn.fail(e);
  }

  async #finish(): Promise<void> {
    await this.send.finish();
    // §4.1.1: the response is complete; the rest of the request body is not needed.
    const b = this.body;
    if (!this.reader.eof && (!b || !b.done)) {
      this.reader.stream.stopSending(H3.NO_ERROR);
    }
  }
}

/** Decodes a field section, waiting (bounded by the caller's deadline) while it is blocked. */
async function decodeSection(
  conn: H3ServerConn,
  payload: Uint8Array,
  id: number,
  signal: AbortSignal,
): Promise<HeaderField[] | null> {
  const dec = conn.decoder;
  for (let attempt = 0;; attempt++) {
    const r = dec.decode(payload, id);
    if ("blocked" in r) {
      if (attempt > 0) throw new H3Error(H3.QPACK_DECOMPRESSION_FAILED, "still blocked after wake-up");
      conn.handler.event("h3_qpack_blocked");
      await dec.waitFor(r.blocked, signal);
      continue;
    }
    conn.sendDecoderInstruction(r.ack);
    return r.fields;
  }
}

/**
 * The request body as the proxy sees it: DATA frame payloads, read from the QUIC stream only
 * when read() is called (QUIC flow control holds the client back meanwhile), then trailers.
 * Checks content-length against what arrived (a mismatch is malformed, §4.1.2).
 */
class RequestBody implements Body {
  readonly length: number | undefined;
  received = 0;
  #remaining = 0;
  #trailers: HeaderList | undefined;
  #done = false;
  /** read() or cancel() was called. */
  #touched = false;
  #expectContinue: boolean;
  failure: BodyFailure | undefined;
  #error: unknown;

  constructor(private readonly s: RequestStream, head: H2RequestHead) {
    this.length = head.contentLength >= 0 ? head.contentLength : undefined;
    this.#expectContinue = head.expectContinue;
  }

  get done(): boolean {
    return this.#done;
  }

  /**
   * Reads the body to its end if nobody read any of it and all of it has already arrived (FIN
   * seen within a few milliseconds, at most UNREAD_CHECK_LIMIT buffered), so that content-length
   * and trailers are checked (read() records a failure; an H3 error other than a body cut short
   * closes the connection). A body still arriving is left alone: the response then ends it with
   * STOP_SENDING (§4.1.1).
   */
  async checkIfArrived(): Promise<void> {
    // A client that asked for 100 (Continue) sends nothing until it gets one: waiting is useless.
    if (this.#touched || this.#expectContinue) return;
    const r = this.s.reader;
    if (!r.eof) {
      // One timer for the whole budget, cleared however the wait ends.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const budget = new Promise<false>((res) => timer = setTimeout(res, UNREAD_CHECK_MS, false));
      try {
        while (!r.eof) {
          if (r.available > UNREAD_CHECK_LIMIT) return;
          const read = await Promise.race([
            r.more().then(() => true, () => false), // true also at FIN: r.eof tells
            budget,
          ]);
          if (!read || this.#touched) return;
        }
      } finally {
        clearTimeout(timer);
      }
    }
    try {
      while ((await this.read()) !== null) { /* discard: nobody wants it */ }
    } catch { /* recorded in `failure` (and a connection error has closed the connection) */ }
  }

  async read(): Promise<Uint8Array | null> {
    this.#touched = true;
    if (this.#done) return null;
    if (this.#error) throw this.#error;
    const s = this.s;
    if (this.#expectContinue) {
      this.#expectContinue = false;
      if (!s.responseStarted) await s.writeHeaders([[":status", "100"]]).catch(() => {});
    }
    s.arm("body", s.cfg.body_timeout);
    try {
      return await this.#next();
    } catch (e) {
      this.#error = e;
      // We stopped reading it (cancel(): nobody wants the rest): no failure of the client's, but
      // not an end either, so an upstream that was still sending it does not take it as complete.
      if (e instanceof ReadStopped) throw e;
      if (s.timedOut === "body") this.failure = { status: 408, reason: "body_timeout" };
      else if (e instanceof BodyTooLarge) this.failure = { status: 413, reason: "body_too_large" };
      else if (e instanceof H3Error) {
        this.failure = { status: 400, reason: "bad_request_body" };
        // A body that ended (FIN) short of its content-length is refused on its stream alone (a
        // stream error, RFC 9114 §4.1.2; Deno cannot reset with a code): that is how a peer that
        // cannot reset either, such as another gateway on Deno whose client left mid-upload, ends
        // an abandoned upload, and closing the connection would fail everything multiplexed with
        // it. A frame out of place, too large, or another malformed body: connection error.
        if (e instanceof CutBody) s.conn.handler.event("h3_malformed");
        else s.conn.fail(e);
      } else this.failure = { status: 400, reason: "body_read_failed" };
      throw e;
    } finally {
      s.disarm();
    }
  }

  async #next(): Promise<Uint8Array | null> {
    const r = this.s.reader;
    for (;;) {
      if (this.#remaining > 0) {
        const chunk = await r.some(this.#remaining);
        this.#remaining -= chunk.length;
        this.received += chunk.length;
        return chunk;
      }
      const h = await r.frameHeader();
      if (h === null) {
        if (this.length !== undefined && this.received !== this.length) throw new CutBody();
        this.#done = true;
        return null;
      }
      switch (h.type) {
        case FrameType.DATA:
          if (this.#trailers) throw new H3Error(H3.FRAME_UNEXPECTED, "DATA after trailers");
          if (this.length !== undefined && this.received + h.length > this.length) {
            throw new H3Error(H3.MESSAGE_ERROR, "request body longer than content-length");
          }
          if (this.received + h.length > this.s.cfg.max_body_size) {
            this.s.conn.handler.event("body_too_large");
            throw new BodyTooLarge(this.s.cfg.max_body_size);
          }
          this.#remaining = h.length;
          if (h.length === 0) continue;
          break;
        case FrameType.HEADERS: {
          if (this.#trailers) throw new H3Error(H3.FRAME_UNEXPECTED, "second trailer section");
          if (h.length > this.s.cfg.max_header_size * 4 + 256) {
            throw new H3Error(H3.EXCESSIVE_LOAD, "trailer section too large");
          }
          const fields = await decodeSection(
            this.s.conn,
            await r.payload(h.length),
            this.s.id,
            this.s.abort.signal,
          );
          const t = fields === null ? "trailer section too large" : parseTrailerFields(fields);
          if (typeof t === "string") throw new H3Error(H3.MESSAGE_ERROR, t);
          this.#trailers = t;
          if (this.length !== undefined && this.received !== this.length) {
            throw new H3Error(H3.MESSAGE_ERROR, "request body shorter than content-length");
          }
          // Only the FIN (or unknown frames) may follow; checked by the next loop turn.
          continue;
        }
        default:
          checkRequestStreamFrame(h.type);
          await r.discard(h.length);
      }
    }
  }

  trailers(): HeaderList | undefined {
    return this.#trailers && this.#trailers.length > 0 ? this.#trailers : undefined;
  }

  cancel(): void {
    this.#touched = true;
    if (this.#done) return;
    this.#done = true;
    this.s.reader.stream.stopSending(H3.NO_ERROR);
  }
}

class BodyTooLarge extends Error {
  constructor(limit: number) {
    super(`request body larger than ${limit} bytes`);
    this.name = "BodyTooLarge";
  }
}

function gatewayError(status: number, reason: string): ProxyResponse {
  return gatewayResponse(status, `${reasonPhrase(status) || "Error"}: ${reason}\n`);
}
