/**
 * Counters shared by every data-plane isolate of the process (one SharedArrayBuffer handed to
 * each worker), so caps stay global when N workers serve the same listeners: requests in
 * flight, open connections per listener, and open connections per client IP.
 *
 * Each worker adds to its own region and a check sums all regions, so when a worker dies the
 * control isolate zeroes that region (`resetWorker`) and nothing it held leaks. Per-IP counts
 * live in a fixed table of hashed slots: two addresses that share a slot share a cap, which can
 * only make the cap stricter, never looser, and costs no allocation per connection.
 */

const IN_FLIGHT = 0;
const LISTENER_BASE = 1;
export const MAX_LISTENERS = 256;
const IP_BASE = LISTENER_BASE + MAX_LISTENERS;
const IP_SLOTS = 1 << 16;
const REGION = IP_BASE + IP_SLOTS;

export class SharedCounters {
  readonly cells: Int32Array;
  readonly workers: number;
  readonly #base: number;

  /** A fresh buffer for `workers` regions, or a view on an existing one as worker `id`. */
  constructor(buffer?: SharedArrayBuffer, id = 0, workers?: number) {
    const buf = buffer ?? new SharedArrayBuffer(REGION * 4 * (workers ?? 1));
    this.cells = new Int32Array(buf);
    this.workers = this.cells.length / REGION;
    this.#base = id * REGION;
  }

  get buffer(): SharedArrayBuffer {
    return this.cells.buffer as SharedArrayBuffer;
  }

  #sum(index: number): number {
    let n = 0;
    for (let w = 0; w < this.workers; w++) n += Atomics.load(this.cells, w * REGION + index);
    return n;
  }

  /** Takes one unit of `index` if the total stays ≤ cap; returns false (taking nothing) otherwise. */
  #take(index: number, cap: number): boolean {
    Atomics.add(this.cells, this.#base + index, 1);
    if (this.#sum(index) > cap) {
      Atomics.sub(this.cells, this.#base + index, 1);
      return false;
    }
    return true;
  }

  #release(index: number): void {
    Atomics.sub(this.cells, this.#base + index, 1);
  }

  takeInFlight(cap: number): boolean {
    return this.#take(IN_FLIGHT, cap);
  }
  releaseInFlight(): void {
    this.#release(IN_FLIGHT);
  }
  get inFlight(): number {
    return this.#sum(IN_FLIGHT);
  }

  takeListener(slot: number, cap: number): boolean {
    return this.#take(LISTENER_BASE + slot, cap);
  }
  releaseListener(slot: number): void {
    this.#release(LISTENER_BASE + slot);
  }
  listenerConnections(slot: number): number {
    return this.#sum(LISTENER_BASE + slot);
  }

  takeIp(ip: string, cap: number): boolean {
    return this.#take(IP_BASE + ipSlot(ip), cap);
  }
  releaseIp(ip: string): void {
    this.#release(IP_BASE + ipSlot(ip));
  }

  /** A worker died: what it held is released all at once. */
  resetWorker(id: number): void {
    this.cells.fill(0, id * REGION, (id + 1) * REGION);
  }
}

/** FNV-1a over the address text, folded to the slot range. */
function ipSlot(ip: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < ip.length; i++) {
    h ^= ip.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h ^ (h >>> 16)) & (IP_SLOTS - 1);
}
