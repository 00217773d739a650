/**
 * ring_hash: consistent hashing on a ring, ketama-style (libketama; Karger et al. 1997).
 * Each endpoint puts ringVirtualNodes × weight points on a 32-bit ring; a request goes to the
 * first point clockwise of its key's hash (binary search, O(log P)). Removing an endpoint moves
 * only the keys that were on it, adding one moves keys only onto it; the price is a less even
 * spread than maglev (an endpoint's share is off by about 1/√points of itself).
 *
 * Further candidates walk on clockwise, taking endpoints not yet offered, so a failed
 * endpoint's keys spread over its ring neighbours. The walk is cut short at 16·N points; any
 * endpoint not met by then follows in index order, keeping the ranking complete.
 *
 * The ring is capped at RING_MAX_POINTS (heavy weights × many endpoints would otherwise take
 * gigabytes): past the cap every endpoint's share of points is scaled down alike, keeping ≥ 1.
 */

import type { Endpoint, Picker, PickerOptions, PickRequest } from "./picker.ts";
import { hash32, type HashKeyReader, hashKeyReader } from "./hash.ts";
import { IndexSet, RankingPool, type RankState } from "./ranking.ts";

export const DEFAULT_RING_VIRTUAL_NODES = 160;
export const RING_MAX_POINTS = 1 << 20;
const REQUEST_SEED = 0;
const WALK_POINTS_PER_ENDPOINT = 16;
/** Points and owners are sorted together packed as point · n + owner in a float64. */
const MAX_RING_ENDPOINTS = 1 << 21;

/** A sorted ring of (point, endpoint index) pairs. */
export class HashRing {
  readonly points: Uint32Array;
  readonly owners: Int32Array;
  readonly size: number;

  constructor(keys: readonly string[], weights: readonly number[], virtualNodes: number) {
    if (!Number.isInteger(virtualNodes) || virtualNodes < 1) {
      throw new Error(`ring virtual nodes must be a positive integer, got ${virtualNodes}`);
    }
    const n = keys.length;
    if (n > MAX_RING_ENDPOINTS) throw new Error(`ring_hash supports at most ${MAX_RING_ENDPOINTS} endpoints`);
    const wanted = weights.reduce((sum, w) => sum + virtualNodes * w, 0);
    const scale = wanted > RING_MAX_POINTS ? RING_MAX_POINTS / wanted : 1;
    const counts = weights.map((w) => Math.max(1, Math.floor(virtualNodes * w * scale)));
    const packed = new Float64Array(counts.reduce((a, b) => a + b, 0));
    let k = 0;
    for (let i = 0; i < n; i++) {
      for (let v = 0; v < counts[i]; v++) packed[k++] = hash32(`${keys[i]}-${v}`) * n + i;
    }
    packed.sort();
    this.size = packed.length;
    this.points = new Uint32Array(this.size);
    this.owners = new Int32Array(this.size);
    for (let j = 0; j < this.size; j++) {
      const owner = packed[j] % n;
      this.owners[j] = owner;
      this.points[j] = (packed[j] - owner) / n;
    }
  }

  /** Position of the first point at or clockwise after `h` (wrapping to 0). */
  find(h: number): number {
    const points = this.points;
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    return lo === this.size ? 0 : lo;
  }
}

export interface RingSource {
  readonly endpoints: readonly Endpoint[];
  readonly ring: HashRing;
  readonly readKey: HashKeyReader;
}

/** Ring walk for one request, optionally led by a pinned endpoint. */
export class RingRanking implements RankState {
  readonly #s: RingSource;
  readonly #seen: IndexSet;
  readonly #walkLimit: number;
  #pos = 0;
  #walked = 0;
  #given = 0;
  #first = 0;
  #swept = 0;
  #pinned = -1;
  #nextPin = -1;

  constructor(source: RingSource) {
    this.#s = source;
    this.#seen = new IndexSet(source.endpoints.length);
    this.#walkLimit = Math.min(source.ring.size, WALK_POINTS_PER_ENDPOINT * source.endpoints.length);
  }

  /** Offer endpoint `i` first in the next ranking (session_affinity's cookie); -1 for none. */
  pin(i: number): void {
    this.#nextPin = i;
  }

  reset(req: PickRequest): void {
    const s = this.#s;
    this.#pos = s.ring.size === 0 ? 0 : s.ring.find(hash32(s.readKey(req), REQUEST_SEED));
    this.#walked = 0;
    this.#given = 0;
    this.#swept = 0;
    this.#pinned = this.#nextPin;
    this.#nextPin = -1;
    this.#seen.clear();
  }

  advance(): Endpoint | undefined {
    const { endpoints, ring } = this.#s;
    const n = endpoints.length;
    if (this.#given >= n) return undefined;
    const seen = this.#seen;
    if (this.#pinned >= 0) {
      const i = this.#pinned;
      this.#pinned = -1;
      return this.#give(i);
    }
    while (this.#walked < this.#walkLimit) {
      const i = ring.owners[this.#pos];
      this.#pos = this.#pos + 1 === ring.size ? 0 : this.#pos + 1;
      this.#walked++;
      if (seen.has(i)) continue;
      return this.#give(i);
    }
    while (++this.#swept < n) {
      const i = (this.#first + this.#swept) % n;
      if (!seen.has(i)) return this.#give(i);
    }
    return undefined;
  }

  #give(i: number): Endpoint {
    if (this.#given === 0) this.#first = i;
    this.#seen.add(i);
    this.#given++;
    return this.#s.endpoints[i];
  }
}

class RingHashPicker implements Picker, RingSource {
  readonly algorithm = "ring_hash" as const;
  readonly endpoints: readonly Endpoint[];
  readonly ring: HashRing;
  readonly readKey: HashKeyReader;
  readonly #pool: RankingPool<RingRanking>;

  constructor(endpoints: readonly Endpoint[], options: PickerOptions) {
    this.endpoints = endpoints;
    this.ring = new HashRing(
      endpoints.map((e) => e.key),
      endpoints.map((e) => e.weight),
      options.ringVirtualNodes ?? DEFAULT_RING_VIRTUAL_NODES,
    );
    this.readKey = hashKeyReader(options.hashKey);
    this.#pool = new RankingPool(() => new RingRanking(this));
  }

  rank(req: PickRequest): Iterable<Endpoint> {
    return this.#pool.acquire().start(req);
  }
}

export function createRingHash(endpoints: readonly Endpoint[], options: PickerOptions = {}): Picker {
  return new RingHashPicker(endpoints, options);
}
