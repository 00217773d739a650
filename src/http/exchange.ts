/**
 * The protocol-neutral exchange (DESIGN.md §3, HAProxy's HTX idea): every server codec turns
 * its wire format into a ProxyRequest, every upstream client turns a ProxyRequest back into
 * its wire format and yields a ProxyResponse. Nine front×back cells come from 3 + 3 pieces.
 *
 * Headers are a flat array `[name0, value0, name1, value1, …]` with lower-case names and no
 * pseudo-headers, connection-specific headers already removed by the codec that parsed
 * them. Flat arrays avoid one small object per header on the hot path.
 */

export type HeaderList = string[];

/**
 * A streamed body. Pull-based, so backpressure is simply "don't call read() yet".
 * A chunk returned by read() is valid only until the next read() call: producers may reuse
 * their buffer, so a consumer that keeps a chunk past that must copy it.
 */
export interface Body {
  /**
   * Next chunk, or null at the end. Rejects if the producer failed (truncated body). A chunk is
   * read-only: consumers copy or write it, never write into it (a gateway answer's bytes are
   * shared between answers).
   */
  read(): Promise<Uint8Array | null>;
  /**
   * Optional synchronous read(): the next chunk (or null at the end) when the producer has it
   * without waiting, undefined when only read() can tell. Same chunk validity as read(); throws
   * where read() would reject. Lets a writer coalesce buffered pieces without a promise each.
   */
  tryRead?(): Uint8Array | null | undefined;
  /** Trailer fields once read() has returned null; undefined when there were none. */
  trailers(): HeaderList | undefined;
  /** Total length when known in advance (Content-Length), else undefined. */
  readonly length: number | undefined;
  /** Bytes delivered by read() so far (0 means the body can still be replayed elsewhere). */
  readonly received: number;
  /** Abandon the body; the producer releases what it holds (e.g. closes an upstream). */
  cancel(reason?: unknown): void;
}

export interface ClientInfo {
  readonly ip: string;
  readonly port: number;
  readonly listener: string;
  readonly tls: boolean;
  /** SNI server name when TLS, else undefined. */
  readonly serverName?: string;
}

export interface ProxyRequest {
  method: string;
  scheme: "http" | "https";
  /** Host / :authority as received (may include a port). */
  authority: string;
  /** Origin-form path with query, or authority-form for CONNECT. */
  path: string;
  headers: HeaderList;
  body: Body | null;
  /** `:protocol` of an extended CONNECT (RFC 8441 / 9220), e.g. "websocket". */
  protocol?: string;
  /** The front's HTTP version, for Via and logs. */
  version: "1.0" | "1.1" | "2" | "3";
  /** Client sent `TE: trailers` (H1) or is an H2/H3 client (always allowed). */
  acceptsTrailers: boolean;
  client: ClientInfo;
}

export interface ProxyResponse {
  status: number;
  headers: HeaderList;
  body: Body | null;
  /**
   * Set when the answer switches the exchange to a tunnel (a WebSocket after 101 / an extended
   * CONNECT's 200, or a CONNECT tunnel): the front writes the head, then hands its side of the
   * connection (or stream) to `run`. `body` is null then.
   */
  upgrade?: Upgrade;
}

/**
 * One side of a tunnel as raw bytes, whatever carries it (a TCP/TLS connection after an HTTP/1.1
 * upgrade, an HTTP/2 stream's DATA frames). Backpressure: write() resolves only once the bytes
 * were handed on, and the relay awaits it before the next read().
 */
export interface ByteStream {
  /** Next chunk, or null at the peer's end of stream. Valid only until the next read(). */
  read(): Promise<Uint8Array | null>;
  write(chunk: Uint8Array): Promise<void>;
  /** No more writes (FIN / END_STREAM); resolves once what was written is on its way. */
  closeWrite(): Promise<void>;
  /** Tear down now (reset / close). Idempotent. */
  abort(): void;
}

/** What a tunnel relayed, for the access log: bytes from and to the client. */
export interface TunnelTotals {
  fromClient: number;
  toClient: number;
}

export interface Upgrade {
  /** "websocket": the gateway may end it with close frames (drain, timeouts); "connect": raw bytes. */
  readonly kind: "websocket" | "connect";
  /** Relays between `client` and the upstream side until both ended; never rejects. */
  run(client: ByteStream): Promise<TunnelTotals>;
  /** The client went away before the tunnel began: release the upstream side. */
  cancel(): void;
}

export function getHeader(headers: HeaderList, name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1];
  return undefined;
}

export function hasHeader(headers: HeaderList, name: string): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return true;
  return false;
}

/**
 * A body with all bytes in hand (gateway answers, probe requests). A class rather than an object
 * of closures: a gateway answer is made per request (404s, direct `respond` routes, errors), and
 * four closures and a getter each were most of its garbage.
 */
class BytesBody implements Body {
  readonly length: number;
  #done = false;

  constructor(readonly bytes: Uint8Array) {
    this.length = bytes.length;
  }

  get received(): number {
    return this.#done ? this.length : 0;
  }

  tryRead(): Uint8Array | null {
    if (this.#done || this.length === 0) return null;
    this.#done = true;
    return this.bytes;
  }

  read(): Promise<Uint8Array | null> {
    return Promise.resolve(this.tryRead());
  }

  trailers(): undefined {
    return undefined;
  }

  cancel(): void {
    this.#done = true;
  }
}

export function bytesBody(bytes: Uint8Array): Body {
  return new BytesBody(bytes);
}

const textEncoder = new TextEncoder();

/**
 * The UTF-8 of the texts gateway answers repeat (route bodies, error texts), encoded once. The
 * same bytes then go out in many answers: every codec copies a chunk this small into its own
 * write buffer or frame, and none writes into a chunk. Bounded: texts over MAX_CACHED_TEXT are
 * encoded each time, and the cache starts over when it holds MAX_TEXTS (texts with per-request
 * details, such as an exception's message, cannot grow it without end).
 */
const encodedTexts = new Map<string, Uint8Array>();
const MAX_TEXTS = 256;
const MAX_CACHED_TEXT = 4096;

function encodeText(text: string): Uint8Array {
  let bytes = encodedTexts.get(text);
  if (bytes !== undefined) return bytes;
  bytes = textEncoder.encode(text);
  if (text.length <= MAX_CACHED_TEXT) {
    if (encodedTexts.size >= MAX_TEXTS) encodedTexts.clear();
    encodedTexts.set(text, bytes);
  }
  return bytes;
}

/** A small answer generated by the gateway itself (404, 502, 503, direct `respond`). */
export function gatewayResponse(
  status: number,
  text: string,
  contentType = "text/plain; charset=utf-8",
  extra: HeaderList = [],
): ProxyResponse {
  const bytes = encodeText(text);
  return {
    status,
    headers: ["content-type", contentType, "content-length", String(bytes.length), ...extra],
    body: bytesBody(bytes),
  };
}
