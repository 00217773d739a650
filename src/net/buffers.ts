/**
 * Relay buffers shared by every HTTP/1.1 reader and L4 TCP relay of the isolate. A reader takes
 * one for bulk body reads and gives it back once the message ended (a relay: once the connection
 * ended), so a keep-alive connection carrying bodies, or a stream of short TCP connections, does
 * not allocate (and zero) a fresh buffer each time, and an idle one holds none. The free list is
 * bounded: a burst of concurrent bodies leaves at most MAX_FREE behind.
 *
 * Giving a buffer back is only safe once no chunk taken from it is still in use; the Body
 * contract (a chunk is valid until the next read()) makes that true once the body ended.
 */

/**
 * 60 KiB, not 64: a relayed chunk is written as it was read, and on loopback (MTU 65536, MSS
 * 65483) a 65536-byte write leaves the socket as a full segment plus a 53-byte one, twice the
 * packets. Measured here with the proxy and origin on one core: POST 1 MiB 1.1k → 2.4k req/s
 * (nginx 1.6k), 1 GiB download 0.9 → 1.1 GiB/s, against 64 KiB (128 and 256 KiB are between).
 * On a real NIC a write is cut into MSS-sized packets either way.
 */
export const BODY_BUFFER = 60 * 1024;
const MAX_FREE = 64;
const free: Uint8Array[] = [];

export function takeBodyBuffer(): Uint8Array {
  return free.pop() ?? new Uint8Array(BODY_BUFFER);
}

/** True for a buffer of the pool's size (made by takeBodyBuffer, whole). */
export function isBodyBuffer(b: Uint8Array): boolean {
  return b.length === BODY_BUFFER && b.byteOffset === 0;
}

export function giveBodyBuffer(b: Uint8Array): void {
  if (isBodyBuffer(b) && free.length < MAX_FREE) free.push(b);
}

/** Buffers waiting in the pool (tests). */
export function freeBodyBuffers(): number {
  return free.length;
}

/**
 * Head buffers: the first read of a cleartext client connection (telling HTTP/1.1 from h2c) and
 * then its HTTP/1.1 reader's buffer for request heads. A stream of short connections (one
 * request each, `Connection: close`) would otherwise allocate a 4 KiB buffer per connection:
 * a backing store outside V8's heap, which V8 counts as external memory and collects with extra
 * scavenges. Recycled, h1-small-close measured +8.6 % req/s, −9.5 % CPU per request and a p99
 * 0.75x as long (scripts/bench_ab.sh --close HEAD 16 2, against the same code without the pool).
 *
 * Giving one back is only safe when no socket read into it is in flight and no view of it is
 * held by anyone else (a request body's chunk, a tunnel's first bytes): ConnReader.release()
 * says when. Bounded like the body buffers: at most MAX_FREE_HEADS (1 MiB) wait here.
 */
export const HEAD_BUFFER = 4096;
const MAX_FREE_HEADS = 256;
const freeHeads: Uint8Array[] = [];

export function takeHeadBuffer(): Uint8Array {
  return freeHeads.pop() ?? new Uint8Array(HEAD_BUFFER);
}

/** True for a buffer of the head size that spans its whole ArrayBuffer (made by takeHeadBuffer). */
export function isHeadBuffer(b: Uint8Array): boolean {
  return b.length === HEAD_BUFFER && b.byteOffset === 0 && b.buffer.byteLength === HEAD_BUFFER;
}

export function giveHeadBuffer(b: Uint8Array): void {
  if (isHeadBuffer(b) && freeHeads.length < MAX_FREE_HEADS) freeHeads.push(b);
}

/** Head buffers waiting in the pool (tests). */
export function freeHeadBuffers(): number {
  return freeHeads.length;
}
