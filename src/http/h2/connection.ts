/**
 * The HTTP/2 connection core shared by the server and the client (RFC 9113): the read loop and
 * frame dispatch, SETTINGS negotiation, PING, GOAWAY, both levels of flow control, field-block
 * assembly (HEADERS + CONTINUATION) and HPACK, the stream table and the closed-stream memory that
 * decides between "ignore", stream error and connection error for frames on non-open streams
 * (§5.1). What a field block *means* (a request, a response, trailers) is the subclass's call.
 *
 * Errors follow §5.4: an H2StreamError resets one stream (RST_STREAM); an H2ConnectionError sends
 * GOAWAY with the last peer stream id, stops processing frames, half-closes the socket and lingers
 * reading until the peer closes (so it sees the GOAWAY rather than a TCP reset).
 *
 * Flow control, receive side: windows are returned only as the consumer reads (H2Stream), in
 * batches of half a window. Send side: `sendData` waits for both windows and for the writer's
 * high water mark, so a peer that stops reading stalls its streams, not memory — and a stall
 * longer than limits.stallTimeoutMs is cut off (StallWatch below).
 *
 * Abuse (the DoS catalog of limits.ts): every frame type a peer can make us spend effort on
 * without asking for anything has a FloodMeter; crossing one is a connection error
 * ENHANCE_YOUR_CALM with its own named event.
 */

import type { Deadline } from "../../net/deadlines.ts";
import { sweeper } from "../../net/deadlines.ts";
import { turnNow } from "../../net/clock.ts";
import { RESOLVED } from "../../net/resolved.ts";
import type { Body } from "../exchange.ts";
import {
  DEFAULT_INITIAL_WINDOW_SIZE,
  DEFAULT_MAX_FRAME_SIZE,
  ErrorCode,
  errorCodeName,
  Flags,
  FrameReader,
  FrameType,
  type GoawayFrame,
  H2ConnectionError,
  H2StreamError,
  type HeadersFrame,
  MAX_WINDOW_SIZE,
  parseContinuation,
  parseData,
  parseGoaway,
  parseHeaders,
  parsePing,
  parsePriority,
  parseRstStream,
  parseSettings,
  parseWindowUpdate,
  SettingsId,
} from "./frames.ts";
import { type HeaderField, HeaderListTooLarge, HpackDecoder, HpackEncoder, HpackError } from "./hpack.ts";
import { trailerFields } from "./headers.ts";
import { FloodMeter, type H2Limits } from "./limits.ts";
import { H2ConnectionLost, H2Stream, H2StreamReset, type StreamHost } from "./stream.ts";
import { FrameWriter } from "./writer.ts";
import { StreamTable } from "./stream_table.ts";
import { rawSocketRid, readSocket } from "../../net/raw_socket.ts";

/** How a stream that is no longer in the table ended (closed-stream memory, §5.1). */
export const Closed = {
  /** Both END_STREAMs: later DATA/HEADERS are a connection error STREAM_CLOSED. */
  Ended: 1,
  /** We sent RST_STREAM: frames the peer had in flight are ignored. */
  ResetLocal: 2,
  /** The peer sent RST_STREAM: anything but PRIORITY is a stream error STREAM_CLOSED. */
  ResetRemote: 3,
} as const;
export type Closed = typeof Closed[keyof typeof Closed];

/** The first of the two entries of the closed-stream set of `id` (see H2Session's #recentIds). */
function closedSet(ids: Int32Array, id: number): number {
  return ((id >>> 1) & ((ids.length >>> 1) - 1)) << 1;
}

/** Read slabs start small (idle connections stay cheap) and grow while reads fill them. */
const SLAB_MIN = 16 * 1024;
const SLAB_MAX = 64 * 1024;
const MIN_READ = 4 * 1024;
const EMPTY = new Uint8Array(0);

/** Frame types that only exist on a stream (never on stream 0), and those only on stream 0. */
const STREAM_ONLY = new Set<number>([
  FrameType.DATA,
  FrameType.HEADERS,
  FrameType.PRIORITY,
  FrameType.RST_STREAM,
  FrameType.PUSH_PROMISE,
  FrameType.CONTINUATION,
]);
const CONNECTION_ONLY = new Set<number>([FrameType.SETTINGS, FrameType.PING, FrameType.GOAWAY]);

/**
 * Watches senders blocked by flow control or by a full socket (H2Stream.stallSince): the sweeper
 * calls back when the oldest stall reaches the session's stallTimeoutMs. One per session, armed
 * only while a stream is stalled.
 */
class StallWatch implements Deadline {
  deadline = Infinity;
  reason = "stall";
  armed = false;
  constructor(private readonly onStall: () => void) {}

  arm(at: number): void {
    if (at < this.deadline) this.deadline = at;
    if (!this.armed) {
      this.armed = true;
      sweeper.add(this);
    }
  }

  disarm(): void {
    this.deadline = Infinity;
    if (this.armed) {
      this.armed = false;
      sweeper.delete(this);
    }
  }

  onExpire(): void {
    this.disarm();
    this.onStall();
  }
}

interface PendingBlock {
  streamId: number;
  endStream: boolean;
  chunks: Uint8Array[];
  size: number;
  frames: number;
  priorityError: H2StreamError | undefined;
}

export abstract class H2Session implements StreamHost, Deadline {
  readonly writer: FrameWriter;
  readonly streams = new StreamTable<H2Stream>();
  protected readonly decoder: HpackDecoder;
  protected readonly encoder = new HpackEncoder();
  readonly #reader = new FrameReader(DEFAULT_MAX_FRAME_SIZE);

  // The peer's settings: what we may send.
  peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  peerInitialWindow = DEFAULT_INITIAL_WINDOW_SIZE;
  peerMaxConcurrentStreams = 0xffffffff;
  peerConnectProtocol = false;
  /** Connection-level send window. */
  sendWindow = DEFAULT_INITIAL_WINDOW_SIZE;
  /** Connection-level receive window: octets the peer may still send. */
  recvWindow: number;
  #connCredit = 0;

  /** Highest stream id the peer opened (or tried to). */
  lastPeerStreamId = 0;
  /** Next id for a stream we open (client: odd). */
  nextLocalStreamId: number;
  /** lastStreamId of the GOAWAY we sent, -1 if none. */
  goawaySent = -1;
  /** lastStreamId of the peer's GOAWAY, -1 if none. */
  goawayReceived = -1;
  /** SETTINGS received from the peer at least once (its preface is complete). */
  peerSettingsSeen = false;
  /** A connection error was sent or the socket failed: frames are no longer processed. */
  failed = false;
  /** The socket is closed; everything is over. */
  closed = false;
  #closing = false;
  /** shutdown() started: GOAWAY/last frames are being flushed, the socket closes soon. */
  get closing(): boolean {
    return this.#closing || this.closed;
  }
  #block: PendingBlock | null = null;

  /**
   * The peer stopped inside a frame (its header read, the payload not complete) or inside a field
   * block (HEADERS without END_HEADERS, CONTINUATION still due): nothing more can be read on
   * this connection until it finishes, whatever stream it is for.
   */
  protected get stuckMidFrame(): boolean {
    return this.#reader.buffered > 0 || this.#block !== null;
  }
  /**
   * Closed-stream memory (§5.1): how each remembered stream ended, in a two-way table: set
   * `(id >>> 1) & (sets - 1)` holds two entries (0 = empty: 0 is never a stream), the newer first.
   * `>>> 1` because one side's ids are two apart, so consecutive streams land in consecutive sets;
   * with sets ≥ limits.closedStreamMemory, a stream is forgotten only once two streams that closed
   * after it fell into its set (ids a multiple of 2 × sets apart): streams closing in id order
   * are all remembered for at least 2 × sets closes, and a long-lived stream that closes late
   * displaces the older of its set, not the newer. No Map insert and delete per stream (the Map
   * this replaced also cost about 17 KB per connection once full, this 2.5 KB). Made at the first
   * close, so a connection that closes none has none.
   */
  #recentIds: Int32Array | undefined;
  #recentHow: Uint8Array | undefined;
  /** Streams waiting for the connection send window. */
  readonly #blocked = new Set<H2Stream>();
  // --- the DoS catalog (limits.ts) ---
  readonly #rapidReset: FloodMeter;
  readonly #madeYouReset: FloodMeter;
  readonly #settingsFlood: FloodMeter;
  readonly #pingFlood: FloodMeter;
  readonly #emptyData: FloodMeter;
  readonly #windowUpdates: FloodMeter;
  readonly #noopFrames: FloodMeter;
  /** SETTINGS we sent and the peer has not acknowledged yet (an ACK beyond these is a no-op frame). */
  #settingsUnacked = 0;
  /**
   * We sent HEADERS or DATA since the peer's last PING. Such a PING is not counted as a flood:
   * gRPC clients measure bandwidth-delay with a PING per burst of DATA they receive (grpc-go's
   * BDP estimator), so PINGs that follow our traffic are paid for by it (grpc-go's own server
   * policy does the same).
   */
  #sentSincePing = false;
  /** Streams whose sender is blocked (stallSince ≥ 0). */
  readonly #stalled = new Set<H2Stream>();
  readonly #stallWatch = new StallWatch(() => this.#checkStalls());
  /** When a DATA frame was last queued (performance.now()): the connection's send progress. */
  #lastProgress = performance.now();
  #doneResolve!: () => void;
  readonly done: Promise<void> = new Promise((r) => this.#doneResolve = r);

  // Deadline: the subclass arms it (preface / idle); the base uses it to bound the linger.
  deadline = Infinity;
  reason = "idle";

  constructor(
    readonly conn: Deno.Conn,
    readonly isServer: boolean,
    readonly limits: H2Limits,
  ) {
    this.writer = new FrameWriter(conn, limits.outputHighWater, (e) => this.#onWriteError(e));
    this.decoder = new HpackDecoder({ maxHeaderListSize: limits.maxHeaderListSize });
    this.recvWindow = limits.connectionWindow;
    this.nextLocalStreamId = isServer ? 2 : 1;
    const w = limits.floodWindowMs;
    this.#rapidReset = new FloodMeter(limits.rapidResetMax, w);
    this.#madeYouReset = new FloodMeter(limits.madeYouResetMax, w);
    this.#settingsFlood = new FloodMeter(limits.settingsMax, w);
    this.#pingFlood = new FloodMeter(limits.pingMax, w);
    this.#emptyData = new FloodMeter(limits.emptyDataMax, w);
    this.#windowUpdates = new FloodMeter(limits.windowUpdateMax, w);
    this.#noopFrames = new FloodMeter(limits.noopFrameMax, w);
  }

  // --- hooks ----------------------------------------------------------------------------------

  /**
   * A complete, decoded field block; `fields` is null when over max_header_list_size.
   * `blockSize` is its encoded size (HEADERS and CONTINUATION payloads), for byte counts.
   */
  protected abstract onHeaderBlock(
    streamId: number,
    fields: HeaderField[] | null,
    endStream: boolean,
    priorityError: H2StreamError | undefined,
    blockSize: number,
  ): void;
  /** A named event for metrics (see limits.ts). */
  abstract event(kind: string): void;
  protected onPeerSettings(): void {}
  protected onGoaway(_f: GoawayFrame): void {}
  protected onStreamClosed(_s: H2Stream): void {}
  /** The connection is gone; every stream has been failed already. */
  protected onClosed(): void {}
  /** We sent END_STREAM on `s`. Default: close it if the peer is done too. */
  protected onLocalEnd(s: H2Stream): void {
    if (s.recvEnded) this.closeStream(s, Closed.Ended);
  }
  /** The peer ended `s` (END_STREAM or trailers). */
  protected onRemoteEnd(s: H2Stream): void {
    if (s.sendEnded) this.closeStream(s, Closed.Ended);
  }
  readWait(_s: H2Stream): void {}
  streamTimeout(s: H2Stream): void {
    this.resetStream(s, ErrorCode.CANCEL);
  }
  cancelRecv(s: H2Stream): void {
    if (s.closed) {
      s.abandonRecv();
      return;
    }
    this.resetStream(s, ErrorCode.CANCEL);
  }
  onExpire(reason: string): void {
    if (reason === "linger") this.abort();
  }

  // --- starting -------------------------------------------------------------------------------

  /** Our SETTINGS (plus the connection window increase) — the first frames we send. */
  protected sendPrefaceSettings(extra: Array<[number, number]>): void {
    const entries: Array<[number, number]> = [
      [SettingsId.INITIAL_WINDOW_SIZE, this.limits.streamWindow],
      [SettingsId.MAX_HEADER_LIST_SIZE, this.limits.maxHeaderListSize],
      ...extra,
    ];
    const payload = new Uint8Array(entries.length * 6);
    entries.forEach(([id, v], i) => {
      payload[i * 6] = id >>> 8;
      payload[i * 6 + 1] = id;
      payload[i * 6 + 2] = v >>> 24;
      payload[i * 6 + 3] = v >>> 16;
      payload[i * 6 + 4] = v >>> 8;
      payload[i * 6 + 5] = v;
    });
    this.writer.frame(FrameType.SETTINGS, 0, 0, payload, 0, payload.length);
    this.#settingsUnacked++;
    const extraWindow = this.limits.connectionWindow - DEFAULT_INITIAL_WINDOW_SIZE;
    if (extraWindow > 0) this.writer.u32(FrameType.WINDOW_UPDATE, 0, extraWindow);
  }

  /**
   * Reads until the connection ends. `initial` holds bytes already read (h2c detection);
   * `preface` makes the server consume the client preface first.
   */
  protected async readLoop(initial: Uint8Array | undefined, preface: boolean): Promise<void> {
    let needPreface = preface;
    let size = SLAB_MIN;
    let slab = new Uint8Array(size);
    let off = 0;
    const rid = rawSocketRid(this.conn);
    try {
      if (initial && initial.length > 0) {
        this.#reader.push(initial.slice());
        needPreface = this.#process(needPreface);
      }
      while (!this.closed) {
        if (slab.length - off < MIN_READ) {
          slab = new Uint8Array(size);
          off = 0;
        }
        const space = slab.length - off;
        const n = await readSocket(this.conn, rid, slab.subarray(off));
        if (n === null || n === 0) break;
        if (n === space && size < SLAB_MAX) size *= 2;
        if (this.failed) continue; // lingering after GOAWAY: drain and drop
        this.#reader.push(slab.subarray(off, off + n));
        off += n;
        needPreface = this.#process(needPreface);
      }
    } catch {
      // reset / closed under us: handled below
    } finally {
      this.#teardown(new H2ConnectionLost("connection closed"));
    }
  }

  /** Processes every complete frame; returns whether the preface is still expected. */
  #process(needPreface: boolean): boolean {
    try {
      if (needPreface) {
        if (!this.#reader.readPreface()) return true;
        needPreface = false;
      }
      for (;;) {
        if (this.failed) return false;
        const raw = this.#reader.next();
        if (!raw) return false;
        try {
          this.#onFrame(raw.header.type, raw.header.flags, raw.header.streamId, raw.header, raw.payload);
        } catch (e) {
          if (e instanceof H2StreamError) this.#streamError(e);
          else throw e;
        }
      }
    } catch (e) {
      if (e instanceof H2ConnectionError) this.connectionError(e.code, e.message);
      else this.connectionError(ErrorCode.INTERNAL_ERROR, e instanceof Error ? e.message : String(e));
      return false;
    }
  }

  // --- frame dispatch -------------------------------------------------------------------------

  #onFrame(
    type: number,
    flags: number,
    streamId: number,
    header: { length: number; type: number; flags: number; streamId: number },
    payload: Uint8Array,
  ): void {
    const block = this.#block;
    if (block !== null) {
      // §6.2/§6.10: a field block is contiguous; anything else is a connection error.
      if (type !== FrameType.CONTINUATION || streamId !== block.streamId) {
        throw new H2ConnectionError(
          ErrorCode.PROTOCOL_ERROR,
          "expected CONTINUATION of the open field block",
        );
      }
      const f = parseContinuation(header, payload);
      block.chunks.push(f.fragment);
      block.size += f.fragment.length;
      block.frames++;
      this.#checkBlock(block);
      if (f.endHeaders) {
        this.#block = null;
        const all = new Uint8Array(block.size);
        let o = 0;
        for (const c of block.chunks) {
          all.set(c, o);
          o += c.length;
        }
        this.#completeBlock(block.streamId, all, block.endStream, block.priorityError);
      }
      return;
    }
    if (!this.peerSettingsSeen && type !== FrameType.SETTINGS) {
      throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "the first frame must be SETTINGS (§3.4)");
    }
    // The frame parsers reject these (PROTOCOL_ERROR); the event names the abuse.
    if (streamId === 0 ? STREAM_ONLY.has(type) : CONNECTION_ONLY.has(type)) this.event("h2_stream0_abuse");
    switch (type) {
      case FrameType.DATA:
        this.#onData(parseData(header, payload));
        return;
      case FrameType.HEADERS: {
        let f: HeadersFrame;
        let prio: H2StreamError | undefined;
        try {
          f = parseHeaders(header, payload);
        } catch (e) {
          if (!(e instanceof H2StreamError) || !e.frame) throw e;
          f = e.frame;
          prio = e;
        }
        if (f.endHeaders) this.#completeBlock(f.streamId, f.fragment, f.endStream, prio);
        else {
          const b: PendingBlock = {
            streamId: f.streamId,
            endStream: f.endStream,
            chunks: [f.fragment],
            size: f.fragment.length,
            frames: 1,
            priorityError: prio,
          };
          this.#checkBlock(b);
          this.#block = b;
        }
        return;
      }
      case FrameType.PRIORITY:
        parsePriority(header, payload); // validated (self-dependency, length), otherwise ignored
        this.#flood(this.#noopFrames, "h2_noop_frame_flood");
        return;
      case FrameType.RST_STREAM: {
        const f = parseRstStream(header, payload);
        if (this.isIdle(f.streamId)) {
          throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `RST_STREAM on idle stream ${f.streamId}`);
        }
        const s = this.streams.get(f.streamId);
        // Rapid Reset (CVE-2023-44487): cancelling streams we are still working on, at a rate.
        if (s && this.isServer && !s.sendEnded) this.#flood(this.#rapidReset, "h2_rapid_reset");
        if (s) {
          s.resetCode = f.code;
          // §8.1: NO_ERROR after the peer's END_STREAM only stops our sending ("complete, stop
          // sending"); what it sent stays readable (closeStream keeps the queue).
          if (f.code !== ErrorCode.NO_ERROR || !s.recvEnded) s.fail(new H2StreamReset(f.code, true));
          this.closeStream(s, Closed.ResetRemote);
        }
        return;
      }
      case FrameType.SETTINGS: {
        const entries = parseSettings(header, payload);
        if ((flags & Flags.ACK) !== 0) {
          if (this.#settingsUnacked > 0) this.#settingsUnacked--;
          else this.#flood(this.#noopFrames, "h2_noop_frame_flood");
          return;
        }
        this.#flood(this.#settingsFlood, "h2_settings_flood");
        this.#applySettings(entries);
        return;
      }
      case FrameType.PUSH_PROMISE:
        // A server never accepts a push; our client advertises ENABLE_PUSH = 0 (§6.6, §8.4).
        throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE is not allowed here");
      case FrameType.PING: {
        const f = parsePing(header, payload);
        if (!f.ack) {
          if (this.#sentSincePing) this.#sentSincePing = false;
          else this.#flood(this.#pingFlood, "h2_ping_flood");
          this.writer.frame(FrameType.PING, Flags.ACK, 0, f.data, 0, 8);
          this.checkOutput();
        } else this.#flood(this.#noopFrames, "h2_noop_frame_flood"); // we never send PING
        return;
      }
      case FrameType.GOAWAY: {
        const f = parseGoaway(header, payload);
        this.goawayReceived = this.goawayReceived < 0
          ? f.lastStreamId
          : Math.min(this.goawayReceived, f.lastStreamId);
        this.onGoaway(f);
        return;
      }
      case FrameType.WINDOW_UPDATE:
        this.#flood(this.#windowUpdates, "h2_window_update_flood");
        this.#onWindowUpdate(header, payload);
        return;
      case FrameType.CONTINUATION:
        throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without an open field block");
      default:
        // Unknown frame types are ignored (§4.1, §5.5) — but not without limit.
        this.#flood(this.#noopFrames, "h2_noop_frame_flood");
        return;
    }
  }

  /** Counts one event on `meter`; over its threshold → event + GOAWAY(ENHANCE_YOUR_CALM). */
  #flood(meter: FloodMeter, event: string): void {
    if (meter.max === 0) return;
    if (meter.add(turnNow())) {
      this.event(event);
      throw new H2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `${event.slice(3).replaceAll("_", " ")}`);
    }
  }

  /**
   * A RST_STREAM we send because of what the peer did (MadeYouReset, CVE-2025-8671: resets the
   * client provokes cost the server like the ones it sends). Over the threshold the connection is
   * closed; returns true then.
   */
  protected provokedReset(): boolean {
    if (!this.isServer || this.#madeYouReset.max === 0) return false;
    if (!this.#madeYouReset.add(turnNow())) return false;
    this.event("h2_made_you_reset");
    this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, "made you reset");
    return true;
  }

  #checkBlock(b: PendingBlock): void {
    if (b.size > this.limits.maxHeaderBlockSize) {
      this.event("h2_header_block_too_large");
      throw new H2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "field block too large");
    }
    if (b.frames > this.limits.maxContinuationFrames + 1) {
      this.event("h2_continuation_flood");
      throw new H2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "too many CONTINUATION frames");
    }
  }

  #completeBlock(
    streamId: number,
    block: Uint8Array,
    endStream: boolean,
    prio: H2StreamError | undefined,
  ): void {
    let fields: HeaderField[] | null;
    try {
      fields = this.decoder.decode(block);
    } catch (e) {
      if (e instanceof HeaderListTooLarge) {
        this.event("h2_header_list_too_large");
        fields = null;
      } else if (e instanceof HpackError) {
        throw new H2ConnectionError(ErrorCode.COMPRESSION_ERROR, e.message);
      } else throw e;
    }
    this.onHeaderBlock(streamId, fields, endStream, prio, block.length);
  }

  /** Is `id` a stream that was never opened (idle, §5.1)? */
  isIdle(id: number): boolean {
    const peerParity = this.isServer ? 1 : 0;
    if ((id & 1) === peerParity) return id > this.lastPeerStreamId;
    return id >= this.nextLocalStreamId;
  }

  /** How a stream not in the table ended, if we remember. */
  closedHow(id: number): Closed | undefined {
    const ids = this.#recentIds;
    if (ids === undefined || id <= 0) return undefined;
    const at = closedSet(ids, id);
    if (ids[at] === id) return this.#recentHow![at] as Closed;
    if (ids[at + 1] === id) return this.#recentHow![at + 1] as Closed;
    return undefined;
  }

  /**
   * A frame carrying content (DATA / HEADERS) arrived for a stream that is not open: ignore it if
   * we reset the stream, else the error §5.1 asks for.
   */
  protected frameOnClosedStream(id: number, what: string): void {
    if (this.isIdle(id)) {
      throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `${what} on idle stream ${id}`);
    }
    switch (this.closedHow(id)) {
      case Closed.ResetLocal:
        return;
      case Closed.ResetRemote:
        throw new H2StreamError(id, ErrorCode.STREAM_CLOSED, `${what} after RST_STREAM`);
      default:
        throw new H2ConnectionError(ErrorCode.STREAM_CLOSED, `${what} on closed stream ${id}`);
    }
  }

  #onData(f: { streamId: number; endStream: boolean; data: Uint8Array; flowControlLength: number }): void {
    const len = f.flowControlLength;
    if (len > this.recvWindow) {
      throw new H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "DATA exceeds the connection window");
    }
    this.recvWindow -= len;
    const s = this.streams.get(f.streamId);
    if (!s) {
      this.dropped(len);
      this.frameOnClosedStream(f.streamId, "DATA");
      return;
    }
    if (s.recvEnded) {
      this.dropped(len);
      throw new H2StreamError(s.id, ErrorCode.STREAM_CLOSED, "DATA after END_STREAM");
    }
    if (len > s.recvWindow) {
      this.dropped(len);
      throw new H2StreamError(s.id, ErrorCode.FLOW_CONTROL_ERROR, "DATA exceeds the stream window");
    }
    s.recvWindow -= len;
    const padding = len - f.data.length;
    if (padding > 0) this.consumed(s, padding);
    if (f.data.length === 0 && !f.endStream) {
      this.event("h2_empty_data");
      this.#flood(this.#emptyData, "h2_empty_data_flood");
    }
    s.arrived += f.data.length;
    if (s.expectedLength >= 0) {
      if (s.arrived > s.expectedLength || (f.endStream && s.arrived !== s.expectedLength)) {
        this.dropped(f.data.length);
        this.event("h2_malformed");
        throw new H2StreamError(s.id, ErrorCode.PROTOCOL_ERROR, "DATA length differs from content-length");
      }
    }
    this.onData(s, f.data, f.endStream);
  }

  /** DATA accepted for an open stream (windows accounted, content-length checked). */
  protected onData(s: H2Stream, data: Uint8Array, endStream: boolean): void {
    if (s.discarding && data.length > 0) this.consumed(s, data.length);
    else s.pushData(data, false);
    if (endStream) {
      s.pushData(EMPTY, true);
      this.onRemoteEnd(s);
    }
  }

  #onWindowUpdate(
    header: { length: number; type: number; flags: number; streamId: number },
    payload: Uint8Array,
  ) {
    const id = header.streamId;
    if (id !== 0 && this.isIdle(id) && payload.length === 4) {
      throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${id}`);
    }
    const f = parseWindowUpdate(header, payload);
    if (id === 0) {
      this.sendWindow += f.increment;
      if (this.sendWindow > MAX_WINDOW_SIZE) {
        throw new H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "connection window above 2^31-1");
      }
      this.#wakeBlocked();
      return;
    }
    const s = this.streams.get(id);
    if (!s) return; // closed: a late update is normal (§5.1)
    s.sendWindow += f.increment;
    if (s.sendWindow > MAX_WINDOW_SIZE) {
      throw new H2StreamError(id, ErrorCode.FLOW_CONTROL_ERROR, "stream window above 2^31-1");
    }
    s.wakeSend();
  }

  #applySettings(entries: Array<[number, number]>): void {
    for (const [id, v] of entries) {
      switch (id) {
        case SettingsId.HEADER_TABLE_SIZE:
          this.encoder.setPeerMaxTableSize(v);
          break;
        case SettingsId.ENABLE_PUSH:
          if (!this.isServer && v !== 0) {
            throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "a server sent SETTINGS_ENABLE_PUSH = 1");
          }
          break;
        case SettingsId.MAX_CONCURRENT_STREAMS:
          this.peerMaxConcurrentStreams = v;
          break;
        case SettingsId.INITIAL_WINDOW_SIZE: {
          const delta = v - this.peerInitialWindow;
          this.peerInitialWindow = v;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW_SIZE) {
              throw new H2ConnectionError(
                ErrorCode.FLOW_CONTROL_ERROR,
                "INITIAL_WINDOW_SIZE overflows a stream window",
              );
            }
            if (delta > 0) s.wakeSend();
          }
          break;
        }
        case SettingsId.MAX_FRAME_SIZE:
          this.peerMaxFrameSize = v;
          break;
        case SettingsId.ENABLE_CONNECT_PROTOCOL:
          this.peerConnectProtocol = v === 1;
          break;
      }
    }
    this.writer.frame(FrameType.SETTINGS, Flags.ACK, 0);
    this.checkOutput();
    const first = !this.peerSettingsSeen;
    this.peerSettingsSeen = true;
    if (first) this.onPeerSettings();
  }

  /**
   * The peer is not reading and we keep owing it frames nothing else bounds (control frames, the
   * HEADERS of answers without a body): give up on it.
   */
  protected checkOutput(): void {
    if (this.writer.pending > this.limits.maxOutputBuffer) {
      this.event("h2_output_overflow");
      throw new H2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "peer is not reading");
    }
  }

  // --- flow control: receive side -------------------------------------------------------------

  consumed(s: H2Stream, n: number): void {
    if (n <= 0) return;
    this.dropped(n);
    if (s.recvEnded || s.closed) return;
    s.creditPending += n;
    if (s.creditPending >= this.limits.streamWindow >>> 1) {
      if (this.failed || this.closed) return;
      s.recvWindow += s.creditPending;
      this.writer.u32(FrameType.WINDOW_UPDATE, s.id, s.creditPending);
      s.creditPending = 0;
    }
  }

  dropped(n: number): void {
    if (n <= 0) return;
    this.#connCredit += n;
    if (this.#connCredit >= this.limits.connectionWindow >>> 1) {
      if (this.failed || this.closed) return;
      this.recvWindow += this.#connCredit;
      this.writer.u32(FrameType.WINDOW_UPDATE, 0, this.#connCredit);
      this.#connCredit = 0;
    }
  }

  // --- sending --------------------------------------------------------------------------------

  /** HEADERS (+ CONTINUATION); not flow-controlled. */
  sendHeaders(s: H2Stream, fields: HeaderField[], endStream: boolean): void {
    this.#checkHeaders(s);
    const block = this.encoder.encodeView(fields);
    this.#sentHeaders(s, block, block.length, endStream);
  }

  /** sendHeaders() of a flat field list `[name0, value0, …]` (no pair array per field). */
  sendHeaderList(s: H2Stream, list: string[], endStream: boolean): void {
    this.#checkHeaders(s);
    const n = this.encoder.encodeFlat(list);
    this.#sentHeaders(s, this.encoder.lastBlock, n, endStream);
  }

  #checkHeaders(s: H2Stream): void {
    if (s.closed || s.sendEnded || this.failed || this.closed) {
      throw s.failure ?? new H2StreamReset(ErrorCode.CANCEL, false, "stream is closed");
    }
  }

  /**
   * The block is `block`'s first `length` octets, in the encoder's buffer (valid until its next
   * call): the writer copies it at once.
   */
  #sentHeaders(s: H2Stream, block: Uint8Array, length: number, endStream: boolean): void {
    this.writer.headers(s.id, block, endStream, this.peerMaxFrameSize, length);
    this.#sentSincePing = true;
    s.bytesSent += length;
    if (endStream) {
      s.sendEnded = true;
      this.onLocalEnd(s);
    }
  }

  /**
   * DATA respecting both windows, the peer's frame size and the writer's high water mark. What
   * can go at once is queued synchronously; the promise is a shared resolved one then.
   */
  sendData(s: H2Stream, data: Uint8Array, endStream: boolean): Promise<void> {
    let off: number;
    try {
      off = this.#queueData(s, data, 0, endStream);
    } catch (e) {
      return Promise.reject(e);
    }
    return off === data.length ? RESOLVED : this.#sendDataWait(s, data, off, endStream);
  }

  /**
   * Queues DATA frames for data[off..] while both windows and the high water mark allow (an empty
   * END_STREAM frame always goes). Returns the new offset: data.length once everything (and the
   * END_STREAM, if asked) is queued. Throws when the stream or the connection cannot send.
   */
  #queueData(s: H2Stream, data: Uint8Array, off: number, endStream: boolean): number {
    const total = data.length;
    for (;;) {
      if (s.closed || s.sendEnded || this.failed || this.closed) {
        throw s.failure ?? new H2ConnectionLost("connection closed while sending");
      }
      const remaining = total - off;
      if (remaining === 0) {
        if (endStream) {
          this.writer.frame(FrameType.DATA, Flags.END_STREAM, s.id);
          s.sendEnded = true;
          this.onLocalEnd(s);
        }
        return off;
      }
      const allow = Math.min(remaining, s.sendWindow, this.sendWindow, this.peerMaxFrameSize);
      if (allow <= 0 || this.writer.pending >= this.writer.highWater) return off;
      const last = endStream && allow === remaining;
      this.writer.frame(FrameType.DATA, last ? Flags.END_STREAM : 0, s.id, data, off, allow);
      this.#progress(s);
      s.sendWindow -= allow;
      this.sendWindow -= allow;
      s.bytesSent += allow;
      off += allow;
      if (last) {
        s.sendEnded = true;
        this.onLocalEnd(s);
        return off;
      }
    }
  }

  /** The rest of data[off..] (off < data.length), waiting for window or for the socket. */
  async #sendDataWait(s: H2Stream, data: Uint8Array, off: number, endStream: boolean): Promise<void> {
    while (off < data.length) {
      if (Math.min(s.sendWindow, this.sendWindow) <= 0) {
        const w = s.waitSend();
        if (this.sendWindow <= 0) this.#blocked.add(s);
        this.#stall(s);
        await w;
      } else if (this.writer.pending >= this.writer.highWater) {
        this.#stall(s);
        await this.writer.writable();
      }
      off = this.#queueData(s, data, off, endStream);
    }
  }

  /**
   * Streams `body` as DATA, then its trailers (HEADERS + END_STREAM) or END_STREAM.
   * `state.reading` tells the caller whether a body.read() is pending (a retry must not race it).
   */
  sendBody(s: H2Stream, body: Body, state?: { reading: boolean }): Promise<void> {
    try {
      return this.sendBodyNow(s, body, state) ?? RESOLVED;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * sendBody without a promise while it need not wait: chunks the body has at hand (tryRead) are
   * queued synchronously as far as the windows allow. Returns undefined when the whole body and
   * its end went out that way, else the promise of the rest; throws what sendBody would reject
   * with. When the body ends right after its last chunk, that chunk's DATA frame (still in the
   * writer's buffer) carries END_STREAM itself: no empty DATA frame to end a small response.
   */
  sendBodyNow(s: H2Stream, body: Body, state?: { reading: boolean }): Promise<void> | undefined {
    if (body.tryRead === undefined) return this.#sendBodyWait(s, body, state, EMPTY, 0);
    for (;;) {
      const chunk = body.tryRead();
      if (chunk === undefined) return this.#sendBodyWait(s, body, state, EMPTY, 0);
      if (chunk === null) {
        this.#endBody(s, body);
        return undefined;
      }
      if (chunk.length === 0) continue;
      const off = this.#queueData(s, chunk, 0, false);
      if (off < chunk.length) return this.#sendBodyWait(s, body, state, chunk, off);
    }
  }

  async #sendBodyWait(
    s: H2Stream,
    body: Body,
    state: { reading: boolean } | undefined,
    chunk: Uint8Array,
    off: number,
  ): Promise<void> {
    if (off < chunk.length) await this.#sendDataWait(s, chunk, off, false);
    for (;;) {
      let next = body.tryRead?.();
      if (next === undefined) {
        if (state) state.reading = true;
        next = await body.read();
        if (state) state.reading = false;
      }
      if (next === null) break;
      if (next.length === 0) continue;
      const o = this.#queueData(s, next, 0, false);
      if (o < next.length) await this.#sendDataWait(s, next, o, false);
    }
    this.#endBody(s, body);
  }

  /** The body ended: trailers, or END_STREAM (on the stream's last DATA frame when still queued). */
  #endBody(s: H2Stream, body: Body): void {
    const t = body.trailers();
    const fields = t && t.length > 0 ? trailerFields(t) : undefined;
    if (fields && fields.length > 0) {
      this.sendHeaders(s, fields, true);
      return;
    }
    if (s.closed || s.sendEnded || this.failed || this.closed) {
      throw s.failure ?? new H2ConnectionLost("connection closed while sending");
    }
    if (this.writer.endStreamOnLastData(s.id)) {
      s.sendEnded = true;
      this.onLocalEnd(s);
    } else this.#queueData(s, EMPTY, 0, true);
  }

  // --- stalls: senders that cannot send (limits.stallTimeoutMs) ------------------------------

  /** `s` has DATA to send and cannot: remember since when. */
  #stall(s: H2Stream): void {
    const t = this.limits.stallTimeoutMs;
    if (t <= 0 || s.stallSince >= 0) return;
    const now = turnNow();
    s.stallSince = now;
    this.#stalled.add(s);
    this.#stallWatch.arm(now + t);
  }

  /** A DATA frame was queued for `s`: it and the connection are moving. */
  #progress(s: H2Stream): void {
    this.#windowUpdates.credit(2);
    this.#sentSincePing = true;
    // Only while a sender is stalled does the time of progress matter (#checkStalls asks whether
    // DATA went out since the oldest stall began; progress before every current stall cannot be).
    if (this.#stalled.size === 0) return;
    this.#lastProgress = turnNow();
    if (s.stallSince >= 0) {
      s.stallSince = -1;
      this.#stalled.delete(s);
    }
  }

  /**
   * The oldest stall reached the timeout. If the connection sent no DATA at all meanwhile, the
   * peer is not opening its window (or not reading): the connection goes. Otherwise only the
   * streams stuck that long are reset.
   */
  #checkStalls(): void {
    if (this.failed || this.closed) return;
    const t = this.limits.stallTimeoutMs;
    const now = performance.now();
    let next = Infinity;
    const expired: H2Stream[] = [];
    for (const s of this.#stalled) {
      if (s.stallSince + t <= now) expired.push(s);
      else next = Math.min(next, s.stallSince + t);
    }
    if (expired.length > 0 && now - this.#lastProgress >= t) {
      this.event("h2_connection_stall");
      this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, `no flow-control progress for ${t}ms`);
      return;
    }
    for (const s of expired) {
      this.#stalled.delete(s);
      s.stallSince = -1;
      if (s.closed) continue;
      this.event("h2_zero_window_stall");
      this.resetStream(s, ErrorCode.CANCEL);
      if (this.provokedReset()) return;
    }
    if (next < Infinity) this.#stallWatch.arm(next);
  }

  #wakeBlocked(): void {
    if (this.#blocked.size === 0) return;
    for (const s of this.#blocked) s.wakeSend();
    this.#blocked.clear();
  }

  // --- stream lifecycle -----------------------------------------------------------------------

  createStream(id: number): H2Stream {
    const s = new H2Stream(id, this, this.limits.streamWindow, this.peerInitialWindow);
    this.streams.set(id, s);
    return s;
  }

  /** Removes a stream; queued received data stays readable unless the stream failed. */
  closeStream(s: H2Stream, how: Closed): void {
    if (s.closed) return;
    s.closed = true;
    this.streams.delete(s.id);
    if (this.#blocked.size > 0) this.#blocked.delete(s); // (hashing a stream costs even when absent)
    if (s.stallSince >= 0) {
      s.stallSince = -1;
      this.#stalled.delete(s);
    }
    s.disarm();
    s.wakeSend();
    this.remember(s.id, how);
    this.onStreamClosed(s);
  }

  protected remember(id: number, how: Closed): void {
    let ids = this.#recentIds;
    if (ids === undefined) {
      const cap = this.limits.closedStreamMemory;
      if (!(cap > 0)) return;
      // Sets: a power of two (a mask of the id picks one), at least the memory asked for, at most
      // 2^20 (5 MiB), two entries each.
      const sets = 2 ** Math.ceil(Math.log2(Math.min(cap, 2 ** 20)));
      ids = this.#recentIds = new Int32Array(2 * sets);
      this.#recentHow = new Uint8Array(2 * sets);
    }
    const how8 = this.#recentHow!;
    const at = closedSet(ids, id);
    // The same stream again (a reset after its end): how changes, not its age.
    if (ids[at] === id) {
      how8[at] = how;
      return;
    }
    if (ids[at + 1] === id) {
      how8[at + 1] = how;
      return;
    }
    // New here: the older entry goes, the newer becomes the older.
    ids[at + 1] = ids[at];
    how8[at + 1] = how8[at];
    ids[at] = id;
    how8[at] = how;
  }

  /** RST_STREAM(code) for `s` (a stream or an id not in the table). */
  resetStream(s: H2Stream | number, code: number): void {
    const id = typeof s === "number" ? s : s.id;
    if (!this.failed && !this.closed) this.writer.u32(FrameType.RST_STREAM, id, code);
    if (typeof s === "number") {
      this.remember(id, Closed.ResetLocal);
      return;
    }
    if (s.closed) return;
    s.resetCode = code;
    s.fail(new H2StreamReset(code, false));
    this.closeStream(s, Closed.ResetLocal);
  }

  #streamError(e: H2StreamError): void {
    if (e.code !== ErrorCode.NO_ERROR) this.event("h2_stream_error");
    const s = this.streams.get(e.streamId);
    this.resetStream(s ?? e.streamId, e.code);
    if (e.code !== ErrorCode.NO_ERROR) this.provokedReset();
  }

  // --- connection end -------------------------------------------------------------------------

  /** Connection error (§5.4.1): GOAWAY(code), stop processing, close after a short linger. */
  connectionError(code: number, message: string): void {
    if (this.failed || this.closed) return;
    if (code !== ErrorCode.NO_ERROR) this.event("h2_protocol_error");
    // Never above a GOAWAY already sent (§6.8): streams opened after it were not processed.
    const last = this.goawaySent >= 0
      ? Math.min(this.goawaySent, this.lastPeerStreamId)
      : this.lastPeerStreamId;
    this.writer.goaway(last, code, message.slice(0, 200));
    this.goawaySent = last;
    this.failed = true;
    this.#block = null;
    const err = new H2ConnectionLost(`connection error ${errorCodeName(code)}: ${message}`);
    for (const s of this.streams.values()) {
      s.fail(err);
      this.closeStream(s, Closed.ResetLocal);
    }
    this.shutdown();
  }

  /** Sends GOAWAY(NO_ERROR) so the peer opens no new streams; in-flight streams finish. */
  goaway(debug = ""): void {
    if (this.failed || this.closed || this.goawaySent >= 0) return;
    this.goawaySent = this.lastPeerStreamId;
    this.writer.goaway(this.lastPeerStreamId, ErrorCode.NO_ERROR, debug);
  }

  /**
   * Flushes what is queued, half-closes, and lingers reading (bounded by limits.lingerMs) so the
   * peer reads our last frames instead of a TCP reset.
   */
  shutdown(): void {
    if (this.#closing || this.closed) return;
    this.#closing = true;
    // Bounded even if the peer never reads what is queued.
    this.reason = "linger";
    this.deadline = performance.now() + 2 * this.limits.lingerMs;
    sweeper.add(this);
    this.writer.settled().then(async () => {
      if (this.closed) return;
      try {
        await this.conn.closeWrite();
      } catch { /* already closed */ }
      this.reason = "linger";
      this.deadline = performance.now() + this.limits.lingerMs;
    });
  }

  /** Closes the socket now. */
  abort(): void {
    if (this.closed) return;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    this.#teardown(new H2ConnectionLost("connection aborted"));
  }

  #onWriteError(_e: unknown): void {
    this.failed = true;
    this.abort();
  }

  #teardown(err: H2ConnectionLost): void {
    if (this.closed) return;
    this.closed = true;
    this.failed = true;
    sweeper.delete(this);
    this.#stallWatch.disarm();
    this.#stalled.clear();
    this.writer.close();
    try {
      this.conn.close();
    } catch { /* already closed */ }
    for (const s of this.streams.values()) {
      const e =
        this.goawayReceived >= 0 && s.id > this.goawayReceived && (s.id & 1) === (this.isServer ? 0 : 1)
          ? new H2ConnectionLost(err.message, true)
          : err;
      s.fail(e);
      this.closeStream(s, Closed.ResetLocal);
    }
    this.#wakeBlocked();
    this.onClosed();
    this.#doneResolve();
  }
}
