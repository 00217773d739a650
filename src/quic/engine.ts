/**
 * The QUIC engine: the only module that touches `Deno.QuicEndpoint` / `Deno.connectQuic`
 * (quinn inside Deno, `--unstable-net`). Everything above it (HTTP/3 server and client, the
 * benchmark load client, tests) sees the small surface here, so a Deno upgrade that changes
 * the unstable API, or fixes one of its gaps, is absorbed in one file.
 *
 * Gaps of Deno 2.9.6's QUIC and what this module does about each (measured; docs/QUIC.md):
 *   - `writable.abort()` sends a FIN, not RESET_STREAM, and no API takes an error code:
 *     `QuicSendStream.resetStream(code)` finishes the stream and answers `false` ("the peer saw
 *     a FIN, not your code"), so the caller escalates (HTTP/3: connection close, or an upstream
 *     request stream held open) when a FIN would make a truncated message look complete.
 *   - `readable.cancel()` sends STOP_SENDING with code 0, whatever the reason:
 *     `QuicRecvStream.stopSending(code)` does that and records the code it could not send.
 *     A read still pending then resolves as if the peer had sent its FIN: `readInto` rejects
 *     with ReadStopped instead (and so does every later read), so a message we stopped reading
 *     is never taken for one the peer ended, complete or truncated.
 *   - Reading `QuicIncoming.remoteAddr` / `localIp` / `remoteAddressValidated` before
 *     `accept()` consumes the incoming ("Invalid QuicIncoming resource", the client sees a
 *     refusal): this module never reads them; the address comes from the accepted connection.
 *   - No Retry, no connection-ID control, and the server always accepts 0-RTT. Connections are
 *     accepted with `zeroRtt: true` (returned at once) so early data is detectable: a stream
 *     that arrived while `handshakeDone` is still false was sent as 0-RTT.
 *   - A stream's `id` getter throws once its resource is closed: ids are read at creation.
 *   - `QuicEndpoint.close()` does not release the UDP socket; it goes when the object is
 *     garbage-collected (20 opened and closed held 20 sockets until a GC): short-lived users
 *     (health probes) share one endpoint instead of opening one each.
 *   - `accept()` of a failed handshake rejects; a failed handshake never stops the accept loop.
 *   - A send stream whose object is garbage-collected is finished (the peer reads a FIN): a
 *     stream that must stay open (an HTTP/3 control stream) is held by its owner for the
 *     connection's life (tests/integration/h3_engine.test.ts, tests/fixtures/quic_gc.ts).
 */

/**
 * close() only queues a connection's CONNECTION_CLOSE: the endpoint (and the isolate that drives
 * it) must stay up this long for the packet to leave, or the peer waits out its idle timeout.
 */
export const CLOSE_FLUSH_MS = 250;

/** A QUIC application error code as sent in CONNECTION_CLOSE (RFC 9000 §20.2). */
export type AppErrorCode = number;

export interface QuicServerOptions {
  hostname: string;
  port: number;
  /** PEM certificate chain and private key. */
  cert: string;
  key: string;
  alpn: string[];
  /** Idle timeout negotiated with the peer (ms). */
  maxIdleTimeoutMs?: number;
  /** Concurrent bidirectional streams a peer may open (HTTP/3: requests in flight). */
  maxBidiStreams?: number;
  /** Concurrent unidirectional streams a peer may open (HTTP/3 needs at least 3). */
  maxUniStreams?: number;
  keepAliveMs?: number;
}

export interface QuicCloseInfo {
  code: AppErrorCode;
  reason: string;
}

/** A read of a stream we sent STOP_SENDING on: it ended because we stopped it, not at the peer's FIN. */
export class ReadStopped extends Error {
  constructor() {
    super("stream read stopped by STOP_SENDING");
    this.name = "ReadStopped";
  }
}

/** One received stream. Pull-based: nothing is read from quinn until read() is called. */
export class QuicRecvStream {
  /** Read once at creation: Deno's getter throws after the stream is closed. */
  readonly id: bigint;
  readonly #reader: ReadableStreamBYOBReader;
  #done = false;
  /** Code asked for in stopSending(); the wire carried 0 (Deno gap). */
  stopCode: number | undefined;
  /** The buffer the FIN-reading readInto() transferred (same contents as the caller's), if any. */
  finalBuffer: ArrayBuffer | undefined;

  constructor(readonly stream: Deno.QuicReceiveStream) {
    this.id = stream.id;
    this.#reader = stream.getReader({ mode: "byob" });
  }

  get done(): boolean {
    return this.#done;
  }

  /**
   * Reads into `view` (BYOB). Returns the filled part — over a NEW ArrayBuffer (the old one
   * is transferred), so callers must adopt `result.buffer` — or null at FIN.
   * Rejects if the peer reset the stream or the connection closed.
   */
  async readInto(view: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer> | null> {
    if (this.stopCode !== undefined) throw new ReadStopped();
    if (this.#done) return null;
    const r = await this.#reader.read(view);
    if (this.stopCode !== undefined) throw new ReadStopped(); // cancelled while it was pending
    if (r.done) {
      this.#done = true;
      // A read that meets the FIN transfers `view`'s buffer too, and hands it back (empty view):
      // kept so a caller whose buffer still held unread bytes can adopt it (finalBuffer).
      this.finalBuffer = r.value?.buffer;
      return null;
    }
    return r.value;
  }

  /** STOP_SENDING: Deno sends code 0 whatever `code` is (recorded for logs and tests). */
  stopSending(code: AppErrorCode): void {
    if (this.#done) return;
    this.#done = true;
    this.stopCode = code;
    this.#reader.cancel().catch(() => {});
  }
}

/** One sending stream. write() resolves when quinn took the bytes (backpressure). */
export class QuicSendStream {
  readonly id: bigint;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #ended = false;
  #failed: unknown;

  constructor(readonly stream: Deno.QuicSendStream) {
    this.id = stream.id;
    this.#writer = stream.getWriter();
    // A write failure (peer STOP_SENDING, connection closed) also rejects `closed`.
    this.#writer.closed.catch((e) => {
      this.#failed ??= e;
    });
  }

  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Queues `bytes`; the promise settles when quinn accepted them. The caller must not modify
   * `bytes` before it settles. Rejects if the peer stopped the stream or the connection died.
   */
  write(bytes: Uint8Array): Promise<void> {
    if (this.#ended) return Promise.reject(new Error("QUIC stream already finished"));
    return this.#writer.write(bytes);
  }

  /** FIN after everything queued. Never rejects (a dead stream is simply gone). */
  async finish(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    try {
      await this.#writer.close();
    } catch { /* stopped by the peer or connection closed */ }
  }

  /**
   * Best effort at RESET_STREAM(code). Deno 2.9.6 has no reset: abort() makes quinn send a FIN.
   * Returns false to say "the peer saw a FIN, not a reset" so the caller can escalate.
   */
  resetStream(_code: AppErrorCode): boolean {
    if (this.#ended) return false;
    this.#ended = true;
    this.#writer.abort().catch(() => {});
    return false;
  }
}

export interface QuicBidiStream {
  readonly recv: QuicRecvStream;
  readonly send: QuicSendStream;
}

/** An accepted or connected QUIC connection. */
export class QuicConnection {
  readonly remote: { ip: string; port: number };
  /** Resolves when the TLS handshake completed; never rejects (see `handshakeFailed`). */
  readonly handshake: Promise<boolean>;
  #handshakeDone = false;
  #closed = false;
  #closeInfo: QuicCloseInfo | undefined;
  /**
   * Resolves once, whoever closed it; `local` when we did. `transport` when no application
   * CONNECTION_CLOSE ended it (idle timeout, transport error, lost path): `reason` then says why.
   */
  readonly closed: Promise<QuicCloseInfo & { local: boolean; transport: boolean }>;
  #bidi: ReadableStreamDefaultReader<Deno.QuicBidirectionalStream> | undefined;
  #uni: ReadableStreamDefaultReader<Deno.QuicReceiveStream> | undefined;

  constructor(readonly conn: Deno.QuicConn) {
    const addr = conn.remoteAddr;
    this.remote = { ip: addr.hostname, port: addr.port };
    this.handshake = conn.handshake.then(
      () => (this.#handshakeDone = true),
      () => false,
    );
    this.closed = conn.closed.then(
      (i) => this.#onClosed({ code: i.closeCode, reason: i.reason }, false),
      (e) => this.#onClosed({ code: 0, reason: e instanceof Error ? e.message : String(e) }, true),
    );
  }

  #onClosed(info: QuicCloseInfo, transport: boolean): QuicCloseInfo & { local: boolean; transport: boolean } {
    const local = this.#closeInfo !== undefined;
    this.#closed = true;
    return local ? { ...this.#closeInfo!, local, transport: false } : { ...info, local, transport };
  }

  /** True once the handshake completed; a stream that arrived before this was 0-RTT data. */
  get handshakeDone(): boolean {
    return this.#handshakeDone;
  }

  get isClosed(): boolean {
    return this.#closed || this.#closeInfo !== undefined;
  }

  /** Negotiated ALPN (after the handshake). */
  get protocol(): string | undefined {
    try {
      return this.conn.protocol;
    } catch {
      return undefined;
    }
  }

  /** SNI the client sent (server side, after the handshake). */
  get serverName(): string | undefined {
    try {
      return this.conn.serverName;
    } catch {
      return undefined;
    }
  }

  /** Next bidirectional stream the peer opened; null when the connection is closed. */
  async acceptBidi(): Promise<QuicBidiStream | null> {
    this.#bidi ??= this.conn.incomingBidirectionalStreams.getReader();
    try {
      const r = await this.#bidi.read();
      if (r.done) return null;
      return { recv: new QuicRecvStream(r.value.readable), send: new QuicSendStream(r.value.writable) };
    } catch {
      return null;
    }
  }

  /** Next unidirectional stream the peer opened; null when the connection is closed. */
  async acceptUni(): Promise<QuicRecvStream | null> {
    this.#uni ??= this.conn.incomingUnidirectionalStreams.getReader();
    try {
      const r = await this.#uni.read();
      if (r.done) return null;
      return new QuicRecvStream(r.value);
    } catch {
      return null;
    }
  }

  /** Opens a bidirectional stream (waits for stream credit from the peer). */
  async openBidi(): Promise<QuicBidiStream> {
    const s = await this.conn.createBidirectionalStream({ waitUntilAvailable: true });
    return { recv: new QuicRecvStream(s.readable), send: new QuicSendStream(s.writable) };
  }

  /** Opens a unidirectional stream (waits for stream credit from the peer). */
  async openUni(): Promise<QuicSendStream> {
    return new QuicSendStream(await this.conn.createUnidirectionalStream({ waitUntilAvailable: true }));
  }

  get maxDatagramSize(): number {
    try {
      return this.conn.maxDatagramSize;
    } catch {
      return 0;
    }
  }

  sendDatagram(data: Uint8Array): Promise<void> {
    return this.conn.sendDatagram(data);
  }

  readDatagram(): Promise<Uint8Array> {
    return this.conn.readDatagram();
  }

  /** CONNECTION_CLOSE with an application error code (sent on the wire as given). */
  close(code: AppErrorCode, reason = ""): void {
    if (this.#closeInfo) return;
    this.#closeInfo = { code, reason };
    try {
      this.conn.close({ closeCode: code, reason });
    } catch { /* already closed */ }
  }
}

/** A bound QUIC listener (one UDP socket). */
export class QuicServer {
  #stopped = false;

  private constructor(
    readonly endpoint: Deno.QuicEndpoint,
    readonly listener: Deno.QuicListener,
  ) {}

  /** Binds the UDP socket and starts listening; throws on a bind or certificate error. */
  static bind(opts: QuicServerOptions): QuicServer {
    const endpoint = new Deno.QuicEndpoint({ hostname: opts.hostname, port: opts.port });
    try {
      const listener = endpoint.listen({
        cert: opts.cert,
        key: opts.key,
        alpnProtocols: opts.alpn,
        maxIdleTimeout: opts.maxIdleTimeoutMs,
        maxConcurrentBidirectionalStreams: opts.maxBidiStreams,
        maxConcurrentUnidirectionalStreams: opts.maxUniStreams,
        keepAliveInterval: opts.keepAliveMs,
      });
      return new QuicServer(endpoint, listener);
    } catch (e) {
      try {
        endpoint.close();
      } catch { /* nothing bound */ }
      throw e;
    }
  }

  get port(): number {
    return this.endpoint.addr.port;
  }

  /**
   * Accepts connections until close(). Each is accepted with 0-RTT enabled (returned before the
   * handshake completes; see QuicConnection.handshakeDone). `onError` hears about failures that
   * did not stop the loop.
   */
  async serve(onConnection: (c: QuicConnection) => void, onError: (e: unknown) => void): Promise<void> {
    while (!this.#stopped) {
      let incoming: Deno.QuicIncoming;
      try {
        incoming = await this.listener.incoming();
      } catch (e) {
        if (this.#stopped || e instanceof Deno.errors.BadResource) return;
        onError(e);
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      // Never touch incoming.remoteAddr/localIp before accept (Deno bug: consumes the incoming).
      let conn: QuicConnection;
      try {
        const c = incoming.accept({ zeroRtt: true }) as Deno.QuicConn | Promise<Deno.QuicConn>;
        conn = new QuicConnection(c instanceof Promise ? await c : c);
      } catch (e) {
        onError(e); // a failed handshake: the next client is unaffected
        continue;
      }
      try {
        onConnection(conn);
      } catch (e) {
        conn.close(0x102, "internal error");
        onError(e);
      }
    }
  }

  /** Stops accepting; existing connections stay up (close() ends them). */
  stopAccepting(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      this.listener.stop();
    } catch { /* already stopped */ }
  }

  /** Closes the endpoint and every connection on it with `code`. */
  close(code: AppErrorCode = 0x100, reason = ""): void {
    this.stopAccepting();
    try {
      this.endpoint.close({ closeCode: code, reason });
    } catch { /* already closed */ }
  }
}

export interface QuicConnectOptions {
  hostname: string;
  port: number;
  /** TLS server name for SNI and verification (default: hostname). */
  serverName?: string;
  /** Extra trusted roots (PEM). The chain is always verified (webpki roots + these). */
  caCerts?: string[];
  alpn: string[];
  /** Try 0-RTT (needs a shared endpoint that has talked to this server before). */
  zeroRtt?: boolean;
  /** Share one endpoint (one UDP socket) between connections; also enables resumption. */
  endpoint?: QuicClientEndpoint;
  maxIdleTimeoutMs?: number;
  keepAliveMs?: number;
  maxBidiStreams?: number;
  maxUniStreams?: number;
}

/** A client-side UDP socket that several connections (and TLS resumption) can share. */
export class QuicClientEndpoint {
  readonly endpoint: Deno.QuicEndpoint;
  constructor(hostname = "0.0.0.0") {
    this.endpoint = new Deno.QuicEndpoint({ hostname, port: 0 });
  }
  close(): void {
    try {
      this.endpoint.close();
    } catch { /* already closed */ }
  }
}

/**
 * Connects with certificate verification (Deno offers no way to skip it for QUIC). With
 * `zeroRtt` and a resumable session on the shared endpoint, the connection is returned before
 * the handshake completes (`early` = true): what is sent then is replayable 0-RTT data.
 */
export async function connectQuic(
  opts: QuicConnectOptions,
): Promise<{ conn: QuicConnection; early: boolean }> {
  const r = Deno.connectQuic({
    hostname: opts.hostname,
    port: opts.port,
    serverName: opts.serverName,
    caCerts: opts.caCerts,
    alpnProtocols: opts.alpn,
    endpoint: opts.endpoint?.endpoint,
    zeroRtt: opts.zeroRtt ?? false,
    maxIdleTimeout: opts.maxIdleTimeoutMs,
    keepAliveInterval: opts.keepAliveMs,
    maxConcurrentBidirectionalStreams: opts.maxBidiStreams,
    maxConcurrentUnidirectionalStreams: opts.maxUniStreams,
  }) as Deno.QuicConn | Promise<Deno.QuicConn>;
  if (r instanceof Promise) return { conn: new QuicConnection(await r), early: false };
  return { conn: new QuicConnection(r), early: true };
}
