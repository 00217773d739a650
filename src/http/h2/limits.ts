/**
 * The numbers an HTTP/2 connection lives by, in one place: what we advertise (SETTINGS), how much
 * we are willing to buffer, and the caps that turn abuse into a counted event plus an RST_STREAM or
 * GOAWAY. Every cap that fires reports a named event through the connection's `event(kind)` hook
 * (the server wires it to protocol_events_total{event}); the DoS catalog extends this table with
 * its own thresholds rather than scattering constants through the codec.
 *
 * Event names emitted by the codec (all prefixed "h2_"):
 *   h2_protocol_error      connection error sent (GOAWAY with a code other than NO_ERROR)
 *   h2_stream_error        RST_STREAM sent for a stream error
 *   h2_refused_stream      a stream above max_concurrent_streams was refused
 *   h2_malformed           a malformed request/response (RFC 9113 §8.1.1) was reset
 *   h2_header_list_too_large  decoded field section over max_header_list_size
 *   h2_header_block_too_large field block (HEADERS + CONTINUATION) over max_header_block_size
 *   h2_continuation_flood  more CONTINUATION frames than max_continuation_frames
 *   h2_output_overflow     peer stopped reading while we owed it control frames
 *   h2_empty_data          DATA frame without payload or END_STREAM (each one; see the flood below)
 *
 * The DoS catalog (server side; each threshold counts within one `floodWindowMs` window, 0 disables
 * it, and crossing it sends GOAWAY(ENHANCE_YOUR_CALM) and closes the connection):
 *   h2_rapid_reset         client RST_STREAMs on streams still in progress > rapidResetMax (CVE-2023-44487)
 *   h2_made_you_reset      RST_STREAMs we had to send because of the client's frames (stream errors,
 *                          refused streams, stalled streams) > madeYouResetMax (CVE-2025-8671,
 *                          CVE-2019-9514)
 *   h2_settings_flood      SETTINGS frames (each costs us an ACK) > settingsMax (CVE-2019-9515)
 *   h2_ping_flood          PING frames (each costs us an ACK) > pingMax (CVE-2019-9512); the first
 *                          PING after we sent HEADERS/DATA is free (BDP probes of gRPC clients)
 *   h2_empty_data_flood    DATA frames without payload or END_STREAM > emptyDataMax (CVE-2019-9518)
 *   h2_window_update_flood WINDOW_UPDATE frames beyond two per DATA frame we sent (a stream and a
 *                          connection update each) > windowUpdateMax
 *   h2_noop_frame_flood    frames that make us do nothing (PRIORITY, unknown types, unsolicited
 *                          SETTINGS/PING ACKs) > noopFrameMax (CVE-2019-9513 style)
 * Checks that need no window:
 *   h2_stream0_abuse       a stream frame on stream 0 or a connection frame on a stream: GOAWAY(PROTOCOL_ERROR)
 *   h2_continuation_flood / h2_header_block_too_large: see above (CVE-2024-27316), GOAWAY(ENHANCE_YOUR_CALM)
 *   h2_header_list_too_large: the HPACK decoder stops materialising fields past maxHeaderListSize,
 *                          so an "HPACK bomb" costs no memory; the stream gets 431. The dynamic table
 *                          stays at the 4096 octets we never raise.
 *   h2_zero_window_stall   a stream that had DATA to send but no window (or a blocked socket) for
 *                          stallTimeoutMs while the connection made progress: RST_STREAM(CANCEL)
 *   h2_connection_stall    the connection sent no DATA at all for stallTimeoutMs while a stream was
 *                          waiting to (never opened its window, or stopped reading the socket):
 *                          GOAWAY(ENHANCE_YOUR_CALM) and close
 *   h2_refused_stream      max concurrent streams (exchanges still running after a reset count too)
 * On the gateway's HTTP/2 backends (counted in upstream_protocol_events_total), the codec's events
 * above, and:
 *   h2_upstream_stalled    a stream timed out while its connection was stuck inside a frame or a
 *                          field block: the connection is retired (GOAWAY, no new streams)
 */

export interface H2Limits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS we advertise (server) / cap we apply per upstream connection. */
  maxConcurrentStreams: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE we advertise: per-stream receive buffer bound. ≥ 65535. */
  streamWindow: number;
  /** Connection receive window: bound on bytes buffered for all streams of one connection. */
  connectionWindow: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce on the decoded list. */
  maxHeaderListSize: number;
  /** Cap on one encoded field block (HEADERS + CONTINUATION fragments). */
  maxHeaderBlockSize: number;
  /** Cap on CONTINUATION frames in one field block (CVE-2024-27316). */
  maxContinuationFrames: number;
  /** Output bytes queued before data producers wait (backpressure towards the streams). */
  outputHighWater: number;
  /** Output bytes queued (control frames included) before the peer is declared not reading. */
  maxOutputBuffer: number;
  /** Request-body bytes a server accepts and drops after its response is complete, before RST_STREAM(NO_ERROR). */
  discardLimit: number;
  /** Advertise SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441); set by the WebSocket work when it lands. */
  enableConnectProtocol: boolean;
  /** Closed streams remembered (§5.1: closed vs never opened); in id order, each for 2x this many closes after it. */
  closedStreamMemory: number;
  /** Linger after our GOAWAY before the socket is closed, so the peer reads it (ms). */
  lingerMs: number;
  /** The window every flood threshold below counts in (ms). */
  floodWindowMs: number;
  /** Peer RST_STREAMs on streams still in progress per window (Rapid Reset); 0 disables. */
  rapidResetMax: number;
  /** RST_STREAMs we send because of the peer's frames, per window (MadeYouReset); 0 disables. */
  madeYouResetMax: number;
  /** SETTINGS frames per window; 0 disables. */
  settingsMax: number;
  /** PING frames per window; 0 disables. */
  pingMax: number;
  /** DATA frames with neither payload nor END_STREAM per window; 0 disables. */
  emptyDataMax: number;
  /** WINDOW_UPDATE frames per window beyond two per DATA frame we sent; 0 disables. */
  windowUpdateMax: number;
  /** Frames that do nothing (PRIORITY, unknown types, unsolicited ACKs) per window; 0 disables. */
  noopFrameMax: number;
  /** A sender blocked by flow control (or a full socket) this long is cut off (ms); 0 disables. */
  stallTimeoutMs: number;
}

export const DEFAULT_H2_LIMITS: Readonly<H2Limits> = {
  maxConcurrentStreams: 100,
  streamWindow: 1024 * 1024,
  connectionWindow: 4 * 1024 * 1024,
  maxHeaderListSize: 64 * 1024,
  maxHeaderBlockSize: 256 * 1024,
  maxContinuationFrames: 64,
  outputHighWater: 128 * 1024,
  maxOutputBuffer: 4 * 1024 * 1024,
  discardLimit: 1024 * 1024,
  enableConnectProtocol: false,
  closedStreamMemory: 256,
  lingerMs: 1000,
  floodWindowMs: 10_000,
  rapidResetMax: 1000,
  madeYouResetMax: 200,
  settingsMax: 100,
  pingMax: 200,
  emptyDataMax: 100,
  windowUpdateMax: 1000,
  noopFrameMax: 1000,
  stallTimeoutMs: 30_000,
};

/**
 * Counts events in fixed windows of `windowMs`: `add()` reports when the count of the current
 * window passes `max` (never when max is 0). Fixed windows are coarse but O(1) and allocation
 * free; a flood is orders of magnitude above any threshold, so the edge effect does not matter.
 */
export class FloodMeter {
  #start = -Infinity;
  #count = 0;
  constructor(readonly max: number, readonly windowMs: number) {}

  /** Counts `n` events at `now`; true when the window's count exceeds max. */
  add(now: number, n = 1): boolean {
    if (now - this.#start >= this.windowMs) {
      this.#start = now;
      this.#count = 0;
    }
    this.#count += n;
    return this.max > 0 && this.#count > this.max;
  }

  /** Takes `n` events back (earned credit, e.g. a DATA frame we sent pays for a WINDOW_UPDATE). */
  credit(n: number): void {
    this.#count -= n;
  }

  /** Events counted in the current window (for tests and logs). */
  get count(): number {
    return this.#count;
  }
}

export function h2Limits(overrides: Partial<H2Limits> = {}): H2Limits {
  const l = { ...DEFAULT_H2_LIMITS, ...overrides };
  // A window below the protocol default could be overrun legally before our SETTINGS are seen.
  l.streamWindow = Math.min(0x7fffffff, Math.max(65535, l.streamWindow));
  l.connectionWindow = Math.min(0x7fffffff, Math.max(65535, l.connectionWindow));
  return l;
}
