/**
 * HTTP/2 framing (RFC 9113): the frame layout (§4.1), frame size limits (§4.2), the per-type payload
 * formats and their validity rules (§6.1-§6.10), the error codes (§7), the settings identifiers
 * (§6.5.2, plus SETTINGS_ENABLE_CONNECT_PROTOCOL from RFC 8441 §3) and the connection preface (§3.4).
 * Pure: no I/O. The connection state machine lives above this and decides what to do with frames;
 * this layer only answers "is this frame well-formed, and if not, which error and at what scope?".
 *
 * Error scope follows RFC 9113 §5.4: H2ConnectionError means GOAWAY + close; H2StreamError means
 * RST_STREAM on that stream only. Each parser uses exactly the code and scope the RFC gives for each
 * violation, checking the stream identifier before the length where both can be wrong, so a
 * conformance suite (h2spec), which sends one violation per frame, sees the code it expects.
 */

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/** Frame types (RFC 9113 §6). */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags. ACK and END_STREAM share a bit; which one applies depends on the frame type. */
export const Flags = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** Error codes (RFC 9113 §7). */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

const ERROR_NAMES: readonly string[] = Object.keys(ErrorCode);

/** "PROTOCOL_ERROR" for 0x1, "0x1f" for codes we do not know (unknown codes are legal, §7). */
export function errorCodeName(code: number): string {
  return code >= 0 && code < ERROR_NAMES.length ? ERROR_NAMES[code] : `0x${code.toString(16)}`;
}

/** Settings identifiers (RFC 9113 §6.5.2; 8 = RFC 8441 extended CONNECT). */
export const SettingsId = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
  ENABLE_CONNECT_PROTOCOL: 0x8,
} as const;

/** The client connection preface, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (RFC 9113 §3.4). */
export const CONNECTION_PREFACE: Uint8Array = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export const FRAME_HEADER_LENGTH = 9;
/** Initial and minimum SETTINGS_MAX_FRAME_SIZE (§4.2, §6.5.2). */
export const DEFAULT_MAX_FRAME_SIZE = 16384;
/** Largest SETTINGS_MAX_FRAME_SIZE a peer may advertise: 2^24 - 1 (§6.5.2). */
export const MAX_ALLOWED_FRAME_SIZE = 16777215;
/** Initial SETTINGS_INITIAL_WINDOW_SIZE and connection window (§6.9.2). */
export const DEFAULT_INITIAL_WINDOW_SIZE = 65535;
/** Largest flow-control window / WINDOW_UPDATE increment: 2^31 - 1 (§6.9.1). */
export const MAX_WINDOW_SIZE = 0x7fffffff;
/** Largest stream identifier: 2^31 - 1 (§5.1.1). */
export const MAX_STREAM_ID = 0x7fffffff;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** A connection error (§5.4.1): the caller sends GOAWAY with `code` and closes the connection. */
export class H2ConnectionError extends Error {
  constructor(readonly code: number, message: string) {
    super(`${errorCodeName(code)}: ${message}`);
    this.name = "H2ConnectionError";
  }
}

/** A stream error (§5.4.2): the caller sends RST_STREAM(`streamId`, `code`); the connection survives. */
export class H2StreamError extends Error {
  constructor(
    readonly streamId: number,
    readonly code: number,
    message: string,
    /**
     * Set when the offending frame was a HEADERS frame (e.g. a stream depending on itself). Its field
     * block fragment must still be fed to the HPACK decoder — together with any CONTINUATION frames —
     * or the connection's compression state desynchronises (RFC 9113 §4.3). The stream is reset
     * afterwards.
     */
    readonly frame?: HeadersFrame,
  ) {
    super(`${errorCodeName(code)} on stream ${streamId}: ${message}`);
    this.name = "H2StreamError";
  }
}

// ---------------------------------------------------------------------------------------------
// Frame reader (§4.1)
// ---------------------------------------------------------------------------------------------

export interface FrameHeader {
  /** Payload length in octets (24 bits). */
  length: number;
  type: number;
  flags: number;
  /** Stream identifier with the reserved bit cleared, as §4.1 requires of receivers. */
  streamId: number;
}

export interface RawFrame {
  header: FrameHeader;
  payload: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/**
 * Reassembles frames from socket reads of any size. Chunks passed to push() are retained and payloads
 * are returned as views into them where possible, so the caller must hand over ownership (never
 * reuse a read buffer that was pushed). A payload that straddles chunks is copied once.
 */
export class FrameReader {
  #chunks: (Uint8Array | undefined)[] = [];
  /** Index of the first chunk still holding unread bytes. */
  #first = 0;
  /** Read offset inside #chunks[#first]. */
  #offset = 0;
  #buffered = 0;
  #maxFrameSize: number;
  readonly #header = new Uint8Array(FRAME_HEADER_LENGTH);

  /** `maxFrameSize` is our SETTINGS_MAX_FRAME_SIZE: the largest payload we accept. */
  constructor(maxFrameSize: number = DEFAULT_MAX_FRAME_SIZE) {
    this.#maxFrameSize = checkMaxFrameSize(maxFrameSize);
  }

  /** Call once the peer has acknowledged a SETTINGS frame that changed our SETTINGS_MAX_FRAME_SIZE. */
  setMaxFrameSize(n: number): void {
    this.#maxFrameSize = checkMaxFrameSize(n);
  }

  /** Octets received but not yet returned as frames (for the caller's memory bounds). */
  get buffered(): number {
    return this.#buffered;
  }

  /** Appends bytes from the socket. The reader keeps a reference to `chunk`. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /**
   * Server side, before any frame: consumes the 24-octet client preface (§3.4). Returns false while
   * more bytes are needed, true once it has been consumed. Throws H2ConnectionError(PROTOCOL_ERROR) as
   * soon as the bytes seen so far cannot be a preface (e.g. an HTTP/1.1 request line).
   */
  readPreface(): boolean {
    const n = Math.min(this.#buffered, CONNECTION_PREFACE.length);
    const got = new Uint8Array(n);
    this.#peek(got, n);
    for (let i = 0; i < n; i++) {
      if (got[i] !== CONNECTION_PREFACE[i]) {
        throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "invalid connection preface");
      }
    }
    if (n < CONNECTION_PREFACE.length) return false;
    this.#skip(n);
    return true;
  }

  /**
   * The next complete frame, or undefined if more bytes are needed. Throws
   * H2ConnectionError(FRAME_SIZE_ERROR) as soon as a header announces a payload above our
   * SETTINGS_MAX_FRAME_SIZE (§4.2) — before buffering that payload. The reader is unusable afterwards.
   */
  next(): RawFrame | undefined {
    if (this.#buffered < FRAME_HEADER_LENGTH) return undefined;
    let h: Uint8Array;
    let o: number;
    const chunk = this.#chunks[this.#first]!;
    if (chunk.length - this.#offset >= FRAME_HEADER_LENGTH) {
      h = chunk;
      o = this.#offset;
    } else {
      this.#peek(this.#header, FRAME_HEADER_LENGTH);
      h = this.#header;
      o = 0;
    }
    const length = (h[o] << 16) | (h[o + 1] << 8) | h[o + 2];
    if (length > this.#maxFrameSize) {
      throw new H2ConnectionError(
        ErrorCode.FRAME_SIZE_ERROR,
        `frame length ${length} exceeds SETTINGS_MAX_FRAME_SIZE ${this.#maxFrameSize}`,
      );
    }
    if (this.#buffered < FRAME_HEADER_LENGTH + length) return undefined;
    const header: FrameHeader = {
      length,
      type: h[o + 3],
      flags: h[o + 4],
      streamId: (((h[o + 5] & 0x7f) << 24) | (h[o + 6] << 16) | (h[o + 7] << 8) | h[o + 8]) >>> 0,
    };
    this.#skip(FRAME_HEADER_LENGTH);
    return { header, payload: this.#take(length) };
  }

  /** Copies the first n buffered octets into `into` without consuming them. Caller ensures n ≤ buffered. */
  #peek(into: Uint8Array, n: number): void {
    let ci = this.#first;
    let off = this.#offset;
    let w = 0;
    while (w < n) {
      const c = this.#chunks[ci]!;
      const k = Math.min(n - w, c.length - off);
      into.set(c.subarray(off, off + k), w);
      w += k;
      ci++;
      off = 0;
    }
  }

  #skip(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const c = this.#chunks[this.#first]!;
      const avail = c.length - this.#offset;
      if (n < avail) {
        this.#offset += n;
        return;
      }
      n -= avail;
      this.#dropFirst();
    }
  }

  /** Consumes n octets: a view when they lie in one chunk, otherwise one copy. */
  #take(n: number): Uint8Array {
    if (n === 0) return EMPTY;
    const c = this.#chunks[this.#first]!;
    const off = this.#offset;
    if (c.length - off >= n) {
      this.#skip(n);
      return c.subarray(off, off + n);
    }
    const out = new Uint8Array(n);
    this.#peek(out, n);
    this.#skip(n);
    return out;
  }

  #dropFirst(): void {
    this.#chunks[this.#first] = undefined;
    this.#first++;
    this.#offset = 0;
    if (this.#first === this.#chunks.length) {
      this.#chunks.length = 0;
      this.#first = 0;
    } else if (this.#first >= 64 && this.#first * 2 >= this.#chunks.length) {
      // Amortised compaction: byte-at-a-time input stays linear instead of shifting every time.
      this.#chunks = this.#chunks.slice(this.#first);
      this.#first = 0;
    }
  }
}

function checkMaxFrameSize(n: number): number {
  if (!Number.isInteger(n) || n < DEFAULT_MAX_FRAME_SIZE || n > MAX_ALLOWED_FRAME_SIZE) {
    throw new RangeError(`max frame size must be in [${DEFAULT_MAX_FRAME_SIZE}, ${MAX_ALLOWED_FRAME_SIZE}]`);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Payload parsers (§6)
// ---------------------------------------------------------------------------------------------

export interface PrioritySpec {
  exclusive: boolean;
  /** Stream this one depends on (31 bits). */
  dependency: number;
  /** 1..256 (the wire value plus one). */
  weight: number;
}

export interface DataFrame {
  kind: "data";
  streamId: number;
  endStream: boolean;
  /** Application data, padding removed (a view into the payload). */
  data: Uint8Array;
  /** Octets this frame counts against flow control: the whole payload, padding included (§6.9). */
  flowControlLength: number;
}

export interface HeadersFrame {
  kind: "headers";
  streamId: number;
  endStream: boolean;
  endHeaders: boolean;
  /** Present when the PRIORITY flag was set (deprecated signal, §5.3.2; parsed for validation only). */
  priority: PrioritySpec | undefined;
  /** Field block fragment, padding removed. */
  fragment: Uint8Array;
}

export interface PriorityFrame {
  kind: "priority";
  streamId: number;
  priority: PrioritySpec;
}

export interface RstStreamFrame {
  kind: "rst_stream";
  streamId: number;
  code: number;
}

/** [identifier, value]; value is a uint32. */
export type SettingsEntry = [id: number, value: number];

export interface SettingsFrame {
  kind: "settings";
  ack: boolean;
  /** Known settings only, in wire order (later duplicates win when applied in order). */
  settings: SettingsEntry[];
}

export interface PushPromiseFrame {
  kind: "push_promise";
  streamId: number;
  promisedStreamId: number;
  endHeaders: boolean;
  fragment: Uint8Array;
}

export interface PingFrame {
  kind: "ping";
  ack: boolean;
  /** The 8 opaque octets (a view; copy before the chunk is released if kept). */
  data: Uint8Array;
}

export interface GoawayFrame {
  kind: "goaway";
  lastStreamId: number;
  code: number;
  debugData: Uint8Array;
}

export interface WindowUpdateFrame {
  kind: "window_update";
  streamId: number;
  increment: number;
}

export interface ContinuationFrame {
  kind: "continuation";
  streamId: number;
  endHeaders: boolean;
  fragment: Uint8Array;
}

/** A frame of a type this implementation does not know: §4.1 and §5.5 say to ignore it. */
export interface UnknownFrame {
  kind: "unknown";
  header: FrameHeader;
  payload: Uint8Array;
}

export type Frame =
  | DataFrame
  | HeadersFrame
  | PriorityFrame
  | RstStreamFrame
  | SettingsFrame
  | PushPromiseFrame
  | PingFrame
  | GoawayFrame
  | WindowUpdateFrame
  | ContinuationFrame
  | UnknownFrame;

function u32(p: Uint8Array, o: number): number {
  return ((p[o] << 24) | (p[o + 1] << 16) | (p[o + 2] << 8) | p[o + 3]) >>> 0;
}

function connError(code: number, message: string): H2ConnectionError {
  return new H2ConnectionError(code, message);
}

/** Validates and decodes any frame by type; unknown types come back as `kind: "unknown"`. */
export function parseFrame(header: FrameHeader, payload: Uint8Array): Frame {
  switch (header.type) {
    case FrameType.DATA:
      return parseData(header, payload);
    case FrameType.HEADERS:
      return parseHeaders(header, payload);
    case FrameType.PRIORITY:
      return parsePriority(header, payload);
    case FrameType.RST_STREAM:
      return parseRstStream(header, payload);
    case FrameType.SETTINGS:
      return {
        kind: "settings",
        ack: (header.flags & Flags.ACK) !== 0,
        settings: parseSettings(header, payload),
      };
    case FrameType.PUSH_PROMISE:
      return parsePushPromise(header, payload);
    case FrameType.PING:
      return parsePing(header, payload);
    case FrameType.GOAWAY:
      return parseGoaway(header, payload);
    case FrameType.WINDOW_UPDATE:
      return parseWindowUpdate(header, payload);
    case FrameType.CONTINUATION:
      return parseContinuation(header, payload);
    default:
      return { kind: "unknown", header, payload };
  }
}

/**
 * Strips padding (§6.1, §6.2, §6.6). `fixed` is the number of octets after the Pad Length field that
 * precede the data (5 for HEADERS+PRIORITY, 4 for PUSH_PROMISE). Returns the content: the payload
 * itself when there is neither padding nor a fixed part (the common frame: no view object).
 */
function unpad(header: FrameHeader, payload: Uint8Array, fixed: number, what: string): Uint8Array {
  const len = payload.length;
  if ((header.flags & Flags.PADDED) === 0) {
    if (len < fixed) throw connError(ErrorCode.FRAME_SIZE_ERROR, `${what} frame too short`);
    return fixed === 0 ? payload : payload.subarray(fixed);
  }
  // A PADDED frame too short to even hold Pad Length (and fixed fields) is malformed (§4.2).
  if (len < 1 + fixed) throw connError(ErrorCode.FRAME_SIZE_ERROR, `${what} frame too short for its fields`);
  const pad = payload[0];
  // "If the length of the padding is the length of the frame payload or greater, the recipient MUST
  // treat this as a connection error of type PROTOCOL_ERROR" (§6.1; same rule in §6.2 and §6.6).
  if (pad > len - 1 - fixed) {
    throw connError(ErrorCode.PROTOCOL_ERROR, `${what} pad length ${pad} exceeds the payload`);
  }
  return payload.subarray(1 + fixed, len - pad);
}

/** DATA (§6.1). */
export function parseData(header: FrameHeader, payload: Uint8Array): DataFrame {
  if (header.streamId === 0) throw connError(ErrorCode.PROTOCOL_ERROR, "DATA frame on stream 0");
  return {
    kind: "data",
    streamId: header.streamId,
    endStream: (header.flags & Flags.END_STREAM) !== 0,
    data: unpad(header, payload, 0, "DATA"),
    flowControlLength: payload.length,
  };
}

function readPriority(p: Uint8Array, o: number): PrioritySpec {
  return { exclusive: (p[o] & 0x80) !== 0, dependency: u32(p, o) & 0x7fffffff, weight: p[o + 4] + 1 };
}

/**
 * HEADERS (§6.2). A self-dependency (§5.3.1) throws H2StreamError carrying the parsed frame, because
 * the field block must still be decoded to keep HPACK in sync.
 */
export function parseHeaders(header: FrameHeader, payload: Uint8Array): HeadersFrame {
  if (header.streamId === 0) throw connError(ErrorCode.PROTOCOL_ERROR, "HEADERS frame on stream 0");
  const hasPriority = (header.flags & Flags.PRIORITY) !== 0;
  const fragment = unpad(header, payload, hasPriority ? 5 : 0, "HEADERS"); // checks the length first
  const padded = (header.flags & Flags.PADDED) !== 0 ? 1 : 0;
  const frame: HeadersFrame = {
    kind: "headers",
    streamId: header.streamId,
    endStream: (header.flags & Flags.END_STREAM) !== 0,
    endHeaders: (header.flags & Flags.END_HEADERS) !== 0,
    priority: hasPriority ? readPriority(payload, padded) : undefined,
    fragment,
  };
  if (frame.priority !== undefined && frame.priority.dependency === header.streamId) {
    throw new H2StreamError(header.streamId, ErrorCode.PROTOCOL_ERROR, "stream depends on itself", frame);
  }
  return frame;
}

/** PRIORITY (§6.3). */
export function parsePriority(header: FrameHeader, payload: Uint8Array): PriorityFrame {
  if (header.streamId === 0) throw connError(ErrorCode.PROTOCOL_ERROR, "PRIORITY frame on stream 0");
  if (payload.length !== 5) {
    throw new H2StreamError(header.streamId, ErrorCode.FRAME_SIZE_ERROR, "PRIORITY frame length is not 5");
  }
  const priority = readPriority(payload, 0);
  if (priority.dependency === header.streamId) {
    throw new H2StreamError(header.streamId, ErrorCode.PROTOCOL_ERROR, "stream depends on itself");
  }
  return { kind: "priority", streamId: header.streamId, priority };
}

/** RST_STREAM (§6.4). */
export function parseRstStream(header: FrameHeader, payload: Uint8Array): RstStreamFrame {
  if (header.streamId === 0) throw connError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM frame on stream 0");
  if (payload.length !== 4) throw connError(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM frame length is not 4");
  return { kind: "rst_stream", streamId: header.streamId, code: u32(payload, 0) };
}

/**
 * SETTINGS (§6.5). Returns the known settings as [id, value] in wire order; unknown identifiers are
 * dropped (§6.5.2: "MUST ignore"). For an ACK the list is empty. Value checks per §6.5.2 and RFC 8441.
 */
export function parseSettings(header: FrameHeader, payload: Uint8Array): SettingsEntry[] {
  if (header.streamId !== 0) throw connError(ErrorCode.PROTOCOL_ERROR, "SETTINGS frame on a stream");
  if ((header.flags & Flags.ACK) !== 0) {
    if (payload.length !== 0) throw connError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload");
    return [];
  }
  if (payload.length % 6 !== 0) {
    throw connError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS length is not a multiple of 6");
  }
  const out: SettingsEntry[] = [];
  for (let o = 0; o < payload.length; o += 6) {
    const id = (payload[o] << 8) | payload[o + 1];
    const value = u32(payload, o + 2);
    switch (id) {
      case SettingsId.HEADER_TABLE_SIZE:
      case SettingsId.MAX_CONCURRENT_STREAMS:
      case SettingsId.MAX_HEADER_LIST_SIZE:
        break;
      case SettingsId.ENABLE_PUSH:
        if (value > 1) {
          throw connError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value} is not 0 or 1`);
        }
        break;
      case SettingsId.INITIAL_WINDOW_SIZE:
        if (value > MAX_WINDOW_SIZE) {
          throw connError(
            ErrorCode.FLOW_CONTROL_ERROR,
            `SETTINGS_INITIAL_WINDOW_SIZE ${value} exceeds 2^31-1`,
          );
        }
        break;
      case SettingsId.MAX_FRAME_SIZE:
        if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_ALLOWED_FRAME_SIZE) {
          throw connError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value} out of range`);
        }
        break;
      case SettingsId.ENABLE_CONNECT_PROTOCOL:
        if (value > 1) {
          throw connError(
            ErrorCode.PROTOCOL_ERROR,
            `SETTINGS_ENABLE_CONNECT_PROTOCOL ${value} is not 0 or 1`,
          );
        }
        break;
      default:
        continue; // unknown: ignore
    }
    out.push([id, value]);
  }
  return out;
}

/** PUSH_PROMISE (§6.6). Whether a push is acceptable at all (a server never accepts one) is the caller's call. */
export function parsePushPromise(header: FrameHeader, payload: Uint8Array): PushPromiseFrame {
  if (header.streamId === 0) throw connError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE frame on stream 0");
  const fragment = unpad(header, payload, 4, "PUSH_PROMISE"); // checks the length first
  return {
    kind: "push_promise",
    streamId: header.streamId,
    // After the Pad Length octet, if any.
    promisedStreamId: u32(payload, (header.flags & Flags.PADDED) !== 0 ? 1 : 0) & 0x7fffffff,
    endHeaders: (header.flags & Flags.END_HEADERS) !== 0,
    fragment,
  };
}

/** PING (§6.7). */
export function parsePing(header: FrameHeader, payload: Uint8Array): PingFrame {
  if (header.streamId !== 0) throw connError(ErrorCode.PROTOCOL_ERROR, "PING frame on a stream");
  if (payload.length !== 8) throw connError(ErrorCode.FRAME_SIZE_ERROR, "PING frame length is not 8");
  return { kind: "ping", ack: (header.flags & Flags.ACK) !== 0, data: payload };
}

/** GOAWAY (§6.8). */
export function parseGoaway(header: FrameHeader, payload: Uint8Array): GoawayFrame {
  if (header.streamId !== 0) throw connError(ErrorCode.PROTOCOL_ERROR, "GOAWAY frame on a stream");
  if (payload.length < 8) throw connError(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY frame shorter than 8");
  return {
    kind: "goaway",
    lastStreamId: u32(payload, 0) & 0x7fffffff,
    code: u32(payload, 4),
    debugData: payload.subarray(8),
  };
}

/** WINDOW_UPDATE (§6.9). A zero increment is a stream error on a stream, a connection error on stream 0. */
export function parseWindowUpdate(header: FrameHeader, payload: Uint8Array): WindowUpdateFrame {
  if (payload.length !== 4) {
    throw connError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE frame length is not 4");
  }
  const increment = u32(payload, 0) & 0x7fffffff;
  if (increment === 0) {
    if (header.streamId === 0) throw connError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE with increment 0");
    throw new H2StreamError(header.streamId, ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE with increment 0");
  }
  return { kind: "window_update", streamId: header.streamId, increment };
}

/** CONTINUATION (§6.10). Whether one is expected here is connection state, checked by the caller. */
export function parseContinuation(header: FrameHeader, payload: Uint8Array): ContinuationFrame {
  if (header.streamId === 0) throw connError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION frame on stream 0");
  return {
    kind: "continuation",
    streamId: header.streamId,
    endHeaders: (header.flags & Flags.END_HEADERS) !== 0,
    fragment: payload,
  };
}

// ---------------------------------------------------------------------------------------------
// Serializers. Arguments are our own values, so violations are programming errors (RangeError).
// ---------------------------------------------------------------------------------------------

function checkStreamId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > MAX_STREAM_ID) throw new RangeError(`invalid stream id ${id}`);
}

function checkU32(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`${what} must be a uint32, got ${v}`);
  }
}

/** Writes a 9-octet frame header into `out` at `offset`. */
export function writeFrameHeader(
  out: Uint8Array,
  offset: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  if (!Number.isInteger(length) || length < 0 || length > MAX_ALLOWED_FRAME_SIZE) {
    throw new RangeError(`invalid frame length ${length}`);
  }
  checkStreamId(streamId);
  out[offset] = length >>> 16;
  out[offset + 1] = length >>> 8;
  out[offset + 2] = length;
  out[offset + 3] = type;
  out[offset + 4] = flags;
  out[offset + 5] = streamId >>> 24;
  out[offset + 6] = streamId >>> 16;
  out[offset + 7] = streamId >>> 8;
  out[offset + 8] = streamId;
}

/** One frame (header + payload) in a new array. */
export function encodeFrame(
  type: number,
  flags: number,
  streamId: number,
  payload: Uint8Array = EMPTY,
): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_LENGTH + payload.length);
  writeFrameHeader(out, 0, payload.length, type, flags, streamId);
  out.set(payload, FRAME_HEADER_LENGTH);
  return out;
}

function writeU32(out: Uint8Array, o: number, v: number): void {
  out[o] = v >>> 24;
  out[o + 1] = v >>> 16;
  out[o + 2] = v >>> 8;
  out[o + 3] = v;
}

/** SETTINGS with the given [id, value] entries (§6.5). */
export function settingsFrame(entries: readonly SettingsEntry[]): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_LENGTH + entries.length * 6);
  writeFrameHeader(out, 0, entries.length * 6, FrameType.SETTINGS, 0, 0);
  let o = FRAME_HEADER_LENGTH;
  for (const [id, value] of entries) {
    if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new RangeError(`invalid settings id ${id}`);
    checkU32("settings value", value);
    out[o] = id >>> 8;
    out[o + 1] = id;
    writeU32(out, o + 2, value);
    o += 6;
  }
  return out;
}

/** SETTINGS with ACK and no payload. */
export function settingsAck(): Uint8Array {
  return encodeFrame(FrameType.SETTINGS, Flags.ACK, 0);
}

/** PING carrying 8 opaque octets (§6.7); a reply sets `ack` and echoes the received data. */
export function pingFrame(data: Uint8Array, ack = false): Uint8Array {
  if (data.length !== 8) throw new RangeError("PING data must be 8 octets");
  return encodeFrame(FrameType.PING, ack ? Flags.ACK : 0, 0, data);
}

/** GOAWAY (§6.8). A string `debug` is sent as UTF-8. */
export function goawayFrame(lastStreamId: number, code: number, debug?: Uint8Array | string): Uint8Array {
  checkStreamId(lastStreamId);
  checkU32("error code", code);
  const dbg = debug === undefined
    ? EMPTY
    : typeof debug === "string"
    ? new TextEncoder().encode(debug)
    : debug;
  const out = new Uint8Array(FRAME_HEADER_LENGTH + 8 + dbg.length);
  writeFrameHeader(out, 0, 8 + dbg.length, FrameType.GOAWAY, 0, 0);
  writeU32(out, 9, lastStreamId);
  writeU32(out, 13, code);
  out.set(dbg, 17);
  return out;
}

/** RST_STREAM (§6.4). */
export function rstStreamFrame(streamId: number, code: number): Uint8Array {
  if (streamId === 0) throw new RangeError("RST_STREAM needs a stream id");
  checkU32("error code", code);
  const out = new Uint8Array(FRAME_HEADER_LENGTH + 4);
  writeFrameHeader(out, 0, 4, FrameType.RST_STREAM, 0, streamId);
  writeU32(out, 9, code);
  return out;
}

/** WINDOW_UPDATE (§6.9); stream 0 updates the connection window. */
export function windowUpdateFrame(streamId: number, increment: number): Uint8Array {
  if (!Number.isInteger(increment) || increment < 1 || increment > MAX_WINDOW_SIZE) {
    throw new RangeError(`WINDOW_UPDATE increment must be in [1, 2^31-1], got ${increment}`);
  }
  const out = new Uint8Array(FRAME_HEADER_LENGTH + 4);
  writeFrameHeader(out, 0, 4, FrameType.WINDOW_UPDATE, 0, streamId);
  writeU32(out, 9, increment);
  return out;
}

/**
 * A field block as HEADERS followed by as many CONTINUATION frames as `maxFrameSize` (the peer's
 * SETTINGS_MAX_FRAME_SIZE) requires, in one array so the whole sequence is written at once — nothing
 * may be interleaved between them (§6.10). END_STREAM goes on the HEADERS frame (§8.1), END_HEADERS
 * on the last frame.
 */
export function headersFrames(
  streamId: number,
  block: Uint8Array,
  endStream: boolean,
  maxFrameSize: number,
): Uint8Array {
  if (streamId === 0) throw new RangeError("HEADERS needs a stream id");
  checkMaxFrameSize(maxFrameSize);
  const frames = Math.max(1, Math.ceil(block.length / maxFrameSize));
  const out = new Uint8Array(block.length + frames * FRAME_HEADER_LENGTH);
  let o = 0;
  for (let i = 0; i < frames; i++) {
    const start = i * maxFrameSize;
    const end = Math.min(block.length, start + maxFrameSize);
    let flags = i === frames - 1 ? Flags.END_HEADERS : 0;
    if (i === 0 && endStream) flags |= Flags.END_STREAM;
    writeFrameHeader(
      out,
      o,
      end - start,
      i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION,
      flags,
      streamId,
    );
    out.set(block.subarray(start, end), o + FRAME_HEADER_LENGTH);
    o += FRAME_HEADER_LENGTH + end - start;
  }
  return out;
}

/** Just the 9-octet DATA header, so the caller can writev(header, payload) without copying the payload. */
export function dataFrameHeader(streamId: number, length: number, endStream: boolean): Uint8Array {
  if (streamId === 0) throw new RangeError("DATA needs a stream id");
  const out = new Uint8Array(FRAME_HEADER_LENGTH);
  writeFrameHeader(out, 0, length, FrameType.DATA, endStream ? Flags.END_STREAM : 0, streamId);
  return out;
}
