/**
 * Counters shared by every data-plane isolate of the process (one SharedArrayBuffer handed to
 * each worker), so caps stay global when N workers serve the same listeners: requests in
 * flight, open connections per listener, and open connections per client IP.
 *
 * Each counter has a process-wide total, taken with a compare-and-swap so that concurrent takers
 * are decided one at a time (exactly as many are admitted as the cap leaves room for), and a
 * per-worker share of it in that worker's region, so when a worker dies the control isolate
 * takes its shares off the totals (`resetWorker`) and nothing it held leaks. Per-IP counts
 * live in a fixed table of hashed slots: two addresses that share a slot share a cap, which can
 * only make the cap stricter, never looser, and costs no allocation per connection.
 */

const IN_FLIGHT = 0;
const LISTENER_BASE = 1;
export const MAX_LISTENERS = 256;
const IP_BASE = LISTENER_BASE + MAX_LISTENERS;
const IP_SLOTS = 1 << 16;
const REGION = IP_BASE + IP_SLOTS;
/** Buffer layout: the totals region, then one region per worker. */
const TOTALS = 0;

export class SharedCounters {
  readonly cells: Int32Array;
  readonly workers: number;
  readonly #base: number;

  /** A fresh buffer for `workers` regions, or a view on an existing one as worker `id`. */
  constructor(buffer?: SharedArrayBuffer, id = 0, workers?: number) {
    const buf = buffer ?? new SharedArrayBuffer(REGION * 4 * ((workers ?? 1) + 1));
    this.cells = new Int32Array(buf);
    this.workers = this.cells.length / REGION - 1;
    this.#base = regionOf(id);
  }

  get buffer(): SharedArrayBuffer {
    return this.cells.buffer as SharedArrayBuffer;
  }

  #sum(index: number): number {
    return Atomics.load(this.cells, TOTALS + index);
  }

  /**
   * Takes one unit of `index` if the total stays ≤ cap; returns false (taking nothing) otherwise.
   * A compare-and-swap on the total rather than add-then-check: with add-then-check, two workers
   * taking the last unit at once each saw the other's tentative add and both backed out (seen:
   * max_in_flight = 1 refusing all six concurrent requests of a two-worker test).
   */
  #take(index: number, cap: number): boolean {
    const c = this.cells, at = TOTALS + index;
    for (let t = Atomics.load(c, at);;) {
      if (t + 1 > cap) return false;
      const seen = Atomics.compareExchange(c, at, t, t + 1);
      if (seen === t) break;
      t = seen;
    }
    Atomics.add(c, this.#base + index, 1);
    return true;
  }

  #release(index: number): void {
    Atomics.sub(this.cells, this.#base + index, 1);
    Atomics.sub(this.cells, TOTALS + index, 1);
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

  /** A worker died: what it held is released all at once (it no longer changes its region). */
  resetWorker(id: number): void {
    const c = this.cells, base = regionOf(id);
    for (let i = 0; i < REGION; i++) {
      const held = Atomics.exchange(c, base + i, 0);
      if (held !== 0) Atomics.sub(c, TOTALS + i, held);
    }
  }
}

function regionOf(worker: number): number {
  return (worker + 1) * REGION;
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
