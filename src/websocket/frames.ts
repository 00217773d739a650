/**
 * Just enough of RFC 6455 framing for a relay that passes frames through verbatim: where the
 * frames of a byte stream begin and end (so the gateway can put a close frame of its own between
 * two frames when it ends a tunnel: drain, timeouts), and that close frame. Payloads are never
 * unmasked, copied or buffered: a frame header is at most 14 bytes, and only those are looked at.
 */

const MAX_HEADER = 14;

/**
 * Follows frame boundaries across the chunks of one direction of a WebSocket tunnel. Control
 * frames may sit between the fragments of a message (§5.4), so any boundary is a safe place to
 * inject a close frame.
 */
export class FrameTracker {
  /** Payload bytes of the current frame not relayed yet. */
  #remaining = 0;
  /** Header bytes collected so far (a header may span chunks). */
  readonly #head = new Uint8Array(MAX_HEADER);
  #headLen = 0;
  /** Not valid framing (a length past 2^53): no boundary can be trusted any more. */
  broken = false;

  /** Between two frames: nothing of a frame has been relayed without the rest. */
  get atBoundary(): boolean {
    return !this.broken && this.#remaining === 0 && this.#headLen === 0;
  }

  /**
   * Advances over `chunk` and returns how many of its bytes were taken: all of them, or with
   * `stopAtBoundary` only up to the first frame boundary (possibly 0). A broken stream takes all.
   */
  advance(chunk: Uint8Array, stopAtBoundary = false): number {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.broken) return n;
      if (stopAtBoundary && this.#remaining === 0 && this.#headLen === 0) return i;
      if (this.#remaining > 0) {
        const k = Math.min(this.#remaining, n - i);
        this.#remaining -= k;
        i += k;
        continue;
      }
      const h = this.#head;
      h[this.#headLen++] = chunk[i++];
      if (this.#headLen < 2) continue;
      const len7 = h[1] & 0x7f;
      const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + ((h[1] & 0x80) !== 0 ? 4 : 0);
      if (this.#headLen < need) continue;
      let payload = len7;
      if (len7 === 126) payload = (h[2] << 8) | h[3];
      else if (len7 === 127) {
        const hi = ((h[2] << 24) >>> 0) + (h[3] << 16) + (h[4] << 8) + h[5];
        const lo = ((h[6] << 24) >>> 0) + (h[7] << 16) + (h[8] << 8) + h[9];
        if (hi >= 0x200000) {
          this.broken = true; // §5.2: the most significant bit must be 0; past 2^53 we cannot count
          return n;
        }
        payload = hi * 0x1_0000_0000 + lo;
      }
      this.#remaining = payload;
      this.#headLen = 0;
    }
    return n;
  }
}

/** Close status codes the gateway sends itself. */
export const CloseCode = {
  /** §7.4.1: the endpoint is going away (server shutting down, tunnel timed out). */
  GOING_AWAY: 1001,
} as const;

/**
 * A close frame with a status code and no reason. Frames towards a server (client → backend)
 * must be masked (§5.3); frames towards a client must not be.
 */
export function closeFrame(code: number, masked: boolean): Uint8Array {
  const hi = (code >>> 8) & 0xff, lo = code & 0xff;
  if (!masked) return Uint8Array.of(0x88, 0x02, hi, lo);
  const key = crypto.getRandomValues(new Uint8Array(4));
  return Uint8Array.of(0x88, 0x82, key[0], key[1], key[2], key[3], hi ^ key[0], lo ^ key[1]);
}
