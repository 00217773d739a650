/**
 * A hand-written HTTP/2 client over a raw socket, for protocol-level assertions (error codes,
 * stream vs connection errors, the DoS catalog) that a well-behaved client library would never
 * provoke. Shared by tests/integration/h2_conformance.test.ts and tests/attacks/h2_*.test.ts.
 */

import { type HeaderField, HpackDecoder, HpackEncoder } from "../../src/http/h2/hpack.ts";
import {
  CONNECTION_PREFACE,
  encodeFrame,
  FrameReader,
  FrameType,
  type RawFrame,
} from "../../src/http/h2/frames.ts";
import { concat } from "./common.ts";

export class RawH2 {
  readonly reader = new FrameReader();
  readonly encoder = new HpackEncoder({ huffman: false });
  readonly decoder = new HpackDecoder();
  #closed = false;
  #buf = new Uint8Array(65536);
  /** Fields of the last complete HEADERS block seen by waitFor(). */
  lastHeaders: HeaderField[] = [];

  private constructor(readonly conn: Deno.Conn) {}

  /**
   * `tls`: connect with TLS and ALPN "h2" (the CA PEM text to trust); the negotiated protocol
   * must be h2, as h2spec requires.
   */
  static async connect(
    port: number,
    opts: { handshake?: boolean; settings?: Uint8Array; tls?: { caCert: string } } = {},
  ): Promise<RawH2> {
    let conn: Deno.Conn;
    if (opts.tls) {
      const t = await Deno.connectTls({
        hostname: "127.0.0.1",
        port,
        caCerts: [opts.tls.caCert],
        alpnProtocols: ["h2"],
      });
      const hs = await t.handshake();
      if (hs.alpnProtocol !== "h2") {
        t.close();
        throw new Error(`ALPN negotiated ${hs.alpnProtocol} instead of h2`);
      }
      conn = t;
    } else conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const c = new RawH2(conn);
    if (opts.handshake !== false) {
      await c.send(CONNECTION_PREFACE, opts.settings ?? encodeFrame(FrameType.SETTINGS, 0, 0));
      // Server SETTINGS, then its ACK of ours (other frames, e.g. WINDOW_UPDATE, are skipped).
      let settings = false;
      let ack = false;
      while (!(settings && ack)) {
        const f = await c.next(5000);
        if (!f || f === "closed") throw new Error("no SETTINGS from the server");
        if (f.header.type !== FrameType.SETTINGS) continue;
        if (f.header.flags & 1) ack = true;
        else {
          settings = true;
          await c.send(encodeFrame(FrameType.SETTINGS, 1, 0));
        }
      }
    }
    return c;
  }

  /**
   * Writes the parts as one write, so frames sent together arrive together: the gateway then
   * handles them in one pass, before any answer to the first (a `respond` route answers within
   * the same turn) can change the state the later ones are judged in.
   */
  async send(...parts: Uint8Array[]): Promise<void> {
    const p = parts.length === 1 ? parts[0] : concat(parts);
    let off = 0;
    while (off < p.length) off += await this.conn.write(p.subarray(off));
  }

  /** A header block for `fields`, with the connection's encoder. */
  block(fields: HeaderField[]): Uint8Array {
    return this.encoder.encode(fields);
  }

  headers(streamId: number, fields: HeaderField[], flags = 0x5): Uint8Array {
    return encodeFrame(FrameType.HEADERS, flags, streamId, this.block(fields));
  }

  /** Next frame; "closed" when the server closed; undefined on timeout. */
  async next(timeoutMs = 3000): Promise<RawFrame | "closed" | undefined> {
    for (;;) {
      const f = this.reader.next();
      if (f) return f;
      if (this.#closed) return "closed";
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        this.conn.read(this.#buf).catch(() => null),
        new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), timeoutMs)),
      ]);
      clearTimeout(timer);
      if (n === "timeout") return undefined;
      if (n === null) {
        this.#closed = true;
        continue;
      }
      this.reader.push(this.#buf.slice(0, n));
    }
  }

  /**
   * Reads until a frame of `type` (optionally on `streamId`) or the connection closes.
   * Returns the frame, "closed", or undefined on timeout.
   */
  async waitFor(type: number, streamId?: number, timeoutMs = 3000): Promise<RawFrame | "closed" | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      const f = await this.next(left);
      if (f === undefined || f === "closed") return f;
      if (f.header.type === FrameType.HEADERS || f.header.type === FrameType.CONTINUATION) {
        if (f.header.flags & 0x4) {
          this.lastHeaders = this.decoder.decode(f.payload.subarray(f.header.flags & 0x20 ? 5 : 0));
        }
      }
      if (f.header.type === type && (streamId === undefined || f.header.streamId === streamId)) return f;
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

/** The error code of a GOAWAY or RST_STREAM frame. */
export function errorCodeOf(f: RawFrame): number {
  const o = f.header.type === FrameType.GOAWAY ? 4 : 0;
  const p = f.payload;
  return ((p[o] << 24) | (p[o + 1] << 16) | (p[o + 2] << 8) | p[o + 3]) >>> 0;
}

/** One buffer from many frames (a flood goes out in few writes). */
export { concat };

/** A 32-bit big-endian payload (RST_STREAM code, WINDOW_UPDATE increment). */
export const u32 = (v: number): Uint8Array => new Uint8Array([v >>> 24, v >>> 16, v >>> 8, v]);

/** What the server sent until it closed, sent GOAWAY, or `timeoutMs` passed. */
export interface Collected {
  /** Error code of the GOAWAY, if one came. */
  goaway?: number;
  /** RST_STREAM codes by stream id. */
  resets: Map<number, number>;
  /** :status of each stream's response HEADERS. */
  statuses: Map<number, number>;
  /** The server closed the connection. */
  closed: boolean;
  frames: number;
}

/** Reads frames until GOAWAY (or close, or timeout; `stop` may end it earlier). */
export async function collect(
  c: RawH2,
  timeoutMs: number,
  stop?: (got: Collected) => boolean,
): Promise<Collected> {
  const got: Collected = { resets: new Map(), statuses: new Map(), closed: false, frames: 0 };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return got;
    const f = await c.next(left);
    if (f === undefined) return got;
    if (f === "closed") {
      got.closed = true;
      return got;
    }
    got.frames++;
    const t = f.header.type;
    if (t === FrameType.GOAWAY) {
      got.goaway = errorCodeOf(f);
      return got;
    }
    if (t === FrameType.RST_STREAM) got.resets.set(f.header.streamId, errorCodeOf(f));
    if (t === FrameType.HEADERS && (f.header.flags & 0x4) !== 0) {
      try {
        const fields = c.decoder.decode(f.payload.subarray(f.header.flags & 0x20 ? 5 : 0));
        const st = fields.find(([n]) => n === ":status");
        if (st && !got.statuses.has(f.header.streamId)) got.statuses.set(f.header.streamId, Number(st[1]));
      } catch { /* a trailer block or a table we cannot follow: ignored */ }
    }
    if (stop?.(got)) return got;
  }
}
