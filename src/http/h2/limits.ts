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
 *   h2_empty_data          DATA frame without payload or END_STREAM (counted; flood cap later)
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
  /** Closed streams remembered to tell "closed" from "never opened" (RFC 9113 §5.1). */
  closedStreamMemory: number;
  /** Linger after our GOAWAY before the socket is closed, so the peer reads it (ms). */
  lingerMs: number;
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
};

export function h2Limits(overrides: Partial<H2Limits> = {}): H2Limits {
  const l = { ...DEFAULT_H2_LIMITS, ...overrides };
  // A window below the protocol default could be overrun legally before our SETTINGS are seen.
  l.streamWindow = Math.min(0x7fffffff, Math.max(65535, l.streamWindow));
  l.connectionWindow = Math.min(0x7fffffff, Math.max(65535, l.connectionWindow));
  return l;
}
