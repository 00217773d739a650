/**
 * Minimal RFC 6455 client framing for tests that carry a WebSocket over a transport of their own
 * (an HTTP/3 extended CONNECT stream, tests/helpers/h3_client.ts H3Tunnel): masked text, binary and
 * close frames out (no fragmentation); frames in, with continuation frames joined, pings answered
 * and pongs skipped. Server frames must be unmasked (§5.1): a masked one fails the test.
 */

import { concat } from "./common.ts";

export interface WsTransport {
  /** Next bytes (a view valid until the next call), or null at the end of the stream. */
  read(): Promise<Uint8Array | null>;
  write(bytes: Uint8Array): Promise<void>;
  closeWrite(): Promise<void>;
}

export type WsMessage =
  | { type: "text"; text: string }
  | { type: "binary"; data: Uint8Array }
  | { type: "close"; code: number | undefined; reason: string }
  /** The transport ended without a close frame. */
  | { type: "end" };

export const Op = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One masked client frame (FIN set). */
export function clientFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const ext = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const out = new Uint8Array(2 + ext + 4 + n);
  out[0] = 0x80 | opcode;
  if (ext === 0) out[1] = 0x80 | n;
  else if (ext === 2) {
    out[1] = 0x80 | 126;
    out[2] = n >>> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = 0x80 | 127;
    const hi = Math.floor(n / 0x1_0000_0000), lo = n >>> 0;
    new DataView(out.buffer).setUint32(2, hi);
    new DataView(out.buffer).setUint32(6, lo);
  }
  const k = 2 + ext;
  crypto.getRandomValues(out.subarray(k, k + 4));
  const m0 = out[k], m1 = out[k + 1], m2 = out[k + 2], m3 = out[k + 3];
  const p = k + 4;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    out[p + i] = payload[i] ^ m0;
    out[p + i + 1] = payload[i + 1] ^ m1;
    out[p + i + 2] = payload[i + 2] ^ m2;
    out[p + i + 3] = payload[i + 3] ^ m3;
  }
  for (; i < n; i++) out[p + i] = payload[i] ^ out[k + (i & 3)];
  return out;
}

export function closePayload(code: number, reason = ""): Uint8Array {
  const r = enc.encode(reason);
  const out = new Uint8Array(2 + r.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(r, 2);
  return out;
}

/** A WebSocket client endpoint over a transport whose opening handshake already succeeded. */
export class WsClientConn {
  /** Received bytes not parsed yet (copies: transport views do not outlive the next read). */
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;

  constructor(readonly t: WsTransport) {}

  sendText(text: string): Promise<void> {
    return this.t.write(clientFrame(Op.TEXT, enc.encode(text)));
  }

  sendBinary(data: Uint8Array): Promise<void> {
    return this.t.write(clientFrame(Op.BINARY, data));
  }

  sendClose(code: number, reason = ""): Promise<void> {
    return this.t.write(clientFrame(Op.CLOSE, closePayload(code, reason)));
  }

  /** The next message (or close frame, or the end of the transport). */
  async next(): Promise<WsMessage> {
    const parts: Uint8Array[] = [];
    let msgOp = -1;
    for (;;) {
      if (!(await this.#need(2))) return { type: "end" };
      const h = this.#peek(2);
      const fin = (h[0] & 0x80) !== 0;
      const op = h[0] & 0x0f;
      if ((h[1] & 0x80) !== 0) throw new Error("masked frame from the server");
      const len7 = h[1] & 0x7f;
      const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
      if (!(await this.#need(2 + ext))) throw new Error("stream ended inside a frame header");
      const head = this.#take(2 + ext);
      let len = len7;
      if (ext === 2) len = (head[2] << 8) | head[3];
      else if (ext === 8) {
        const v = new DataView(head.buffer, head.byteOffset);
        len = v.getUint32(2) * 0x1_0000_0000 + v.getUint32(6);
      }
      if (!(await this.#need(len))) throw new Error("stream ended inside a frame");
      const payload = this.#take(len);
      switch (op) {
        case Op.PING:
          await this.t.write(clientFrame(Op.PONG, payload));
          continue;
        case Op.PONG:
          continue;
        case Op.CLOSE:
          return {
            type: "close",
            code: len >= 2 ? (payload[0] << 8) | payload[1] : undefined,
            reason: dec.decode(payload.subarray(2)),
          };
        case Op.TEXT:
        case Op.BINARY:
          if (msgOp !== -1) throw new Error("new message inside a fragmented one");
          msgOp = op;
          break;
        case Op.CONT:
          if (msgOp === -1) throw new Error("continuation without a message");
          break;
        default:
          throw new Error(`unknown opcode ${op}`);
      }
      parts.push(payload);
      if (!fin) continue;
      const data = parts.length === 1 ? parts[0] : concat(parts);
      return msgOp === Op.TEXT ? { type: "text", text: dec.decode(data) } : { type: "binary", data };
    }
  }

  /** Reads until `n` bytes are buffered; false if the transport ended first. */
  async #need(n: number): Promise<boolean> {
    while (this.#buffered < n) {
      if (this.#ended) return false;
      const c = await this.t.read();
      if (c === null) {
        this.#ended = true;
        return false;
      }
      if (c.length === 0) continue;
      this.#chunks.push(c.slice());
      this.#buffered += c.length;
    }
    return true;
  }

  #peek(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let o = 0;
    for (const c of this.#chunks) {
      if (o >= n) break;
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
    }
    return out;
  }

  #take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.#chunks[0];
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    this.#buffered -= n;
    return out;
  }
}
