/**
 * An HTTP/3 request stream carrying a tunnel after a CONNECT was answered 2xx: an RFC 9220
 * WebSocket (extended CONNECT) or a plain CONNECT (RFC 9114 §4.4). From then on the stream's DATA
 * frame payloads both ways are the tunnel's bytes; this adapts that to the ByteStream the relay in
 * src/websocket/tunnel.ts works on.
 *
 * Memory: read() hands out one piece of one DATA frame at a time, a view of the frame reader's
 * buffer (at most its size, 256 KiB), never a whole frame, and reads from QUIC only when called, so
 * a relay that stops reading holds the client back with QUIC flow control. write() resolves when
 * quinn took the bytes, which it does only within the client's stream window: a client that stops
 * reading stops the relay, and through it the backend.
 *
 * Frames (RFC 9114 §4.4, RFC 9220 §3): after the response only DATA may be sent; unknown and
 * reserved (GREASE) types are skipped (§9: extension frames are ignored); any other known type —
 * HEADERS (trailers) included — is H3_FRAME_UNEXPECTED, a connection error like every stream error
 * of this codec (Deno cannot reset one stream with a code, src/quic/engine.ts).
 */

import type { ByteStream } from "../exchange.ts";
import type { QuicSendStream } from "../../quic/engine.ts";
import {
  checkRequestStreamFrame,
  encodeFrame,
  frameHeader,
  FrameReader,
  FrameType,
  H3,
  H3Error,
} from "./frames.ts";

/** Payloads up to this size are copied behind their DATA frame header (one QUIC write, not two). */
const COALESCE_LIMIT = 16 * 1024;

/** What the tunnel needs of the request stream it runs on (src/http/h3/server.ts RequestStream). */
export interface H3TunnelCarrier {
  /** The request stream's frame reader, positioned just after the request HEADERS. */
  readonly reader: FrameReader;
  readonly send: QuicSendStream;
  /** A write to the stream, counted for the access log; resolves when quinn took the bytes. */
  write(bytes: Uint8Array): Promise<void>;
  /** A connection error (H3Error): the codec closes the connection with its code. */
  fail(e: unknown): void;
  /** Which side the peer is (what its frames may be): "client" on the quic front, "server" upstream. */
  readonly peer?: "client" | "server";
}

export class H3TunnelStream implements ByteStream {
  /** Payload bytes of the current DATA frame not handed out yet. */
  #remaining = 0;
  #ended = false;
  #aborted = false;
  /** Tunnel bytes received from the client (DATA payloads, not frame headers). */
  received = 0;

  constructor(private readonly s: H3TunnelCarrier) {}

  async read(): Promise<Uint8Array | null> {
    if (this.#ended || this.#aborted) return null;
    try {
      return await this.#next();
    } catch (e) {
      // A protocol violation by the client closes the connection with its code; after our own
      // abort(), the cancelled read is no fault of the client's.
      if (e instanceof H3Error && !this.#aborted) this.s.fail(e);
      throw e;
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
        this.#ended = true; // FIN between frames: the client's half-close
        return null;
      }
      switch (h.type) {
        case FrameType.DATA:
          this.#remaining = h.length; // empty DATA frames carry nothing: read the next one
          continue;
        case FrameType.HEADERS:
          throw new H3Error(H3.FRAME_UNEXPECTED, "HEADERS on a CONNECT stream after its 2xx (RFC 9114 §4.4)");
        default:
          checkRequestStreamFrame(h.type, this.s.peer ?? "client");
          await r.discard(h.length);
      }
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.length === 0) return;
    if (chunk.length <= COALESCE_LIMIT) {
      await this.s.write(encodeFrame(FrameType.DATA, chunk));
      return;
    }
    // Two writes queued in order; the second settling means quinn took both.
    this.s.write(frameHeader(FrameType.DATA, chunk.length)).catch(() => {});
    await this.s.write(chunk);
  }

  /** FIN: the tunnel's half-close towards the client. */
  async closeWrite(): Promise<void> {
    await this.s.send.finish();
  }

  /**
   * Tear down. Deno has no RESET_STREAM: the send side ends with a FIN (so a WebSocket client sees
   * its stream end without a close frame: an abnormal closure it can tell), the receive side gets
   * STOP_SENDING (code 0 on the wire; H3_CONNECT_ERROR recorded, as RFC 9114 §4.4 would send).
   * A no-op on a stream that already ended both ways.
   */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.s.reader.stream.stopSending(H3.CONNECT_ERROR);
    this.s.send.resetStream(H3.CONNECT_ERROR);
  }
}
