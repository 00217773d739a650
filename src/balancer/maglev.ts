/**
 * maglev: consistent hashing by lookup table (Eisenbud et al., "Maglev: A Fast and Reliable
 * Software Network Load Balancer", NSDI 2016, §3.4). A request's hash key indexes a table of M
 * slots (M prime) that every backend fills along its own permutation of the slots. Lookup is
 * O(1); shares match the weights to within a few slots of M; removing one of N backends moves
 * its keys and a small fraction of the others (0.2 % measured at N = 10, M = 65537; a ring
 * moves none of the others but spreads less evenly).
 *
 * The table must be reproducible bit for bit by C (an XDP program reads one filled here), so
 * the construction is kept to integer steps. With eg_hash32 from hash.ts over the UTF-8 bytes
 * of each backend key, and positive integer weights:
 *
 *     for i in 0..n-1:
 *       offset[i] = eg_hash32(key[i], 0)          % M
 *       skip[i]   = eg_hash32(key[i], 0x9e3779b9) % (M - 1) + 1
 *       next[i]   = offset[i]         // slot j of i's permutation is (offset + j*skip) % M
 *       credit[i] = 0
 *     maxw = max(weight); table[0..M-1] = -1; filled = 0
 *     while filled < M:               // one round
 *       for i in 0..n-1:
 *         credit[i] += weight[i]
 *         if credit[i] < maxw: continue   // weighted: i takes weight[i]/maxw turns per round
 *         credit[i] -= maxw
 *         while table[next[i]] >= 0: next[i] = (next[i] + skip[i]) % M
 *         table[next[i]] = i; next[i] = (next[i] + skip[i]) % M
 *         filled += 1
 *         if filled == M: stop
 *
 * With equal weights this is the paper's Pseudocode 1 exactly. Because M is prime and
 * 1 ≤ skip < M, every permutation visits every slot, so a turn always finds an empty one.
 *
 * rank(): table[hash32(key) % M] first; further candidates walk forward through the table
 * taking endpoints not yet offered, which spreads a failed backend's keys over the others as
 * the table spreads everything (the walk is cut short at 16·N slots; the few endpoints not met
 * by then follow in index order, so the ranking stays complete and deterministic).
 */

import type { Endpoint, Picker, PickerOptions, PickRequest } from "./picker.ts";
import { hash32, type HashKeyReader, hashKeyReader } from "./hash.ts";
import { IndexSet, RankingPool, type RankState } from "./ranking.ts";

export const DEFAULT_MAGLEV_TABLE_SIZE = 65537;
export const MAGLEV_OFFSET_SEED = 0;
export const MAGLEV_SKIP_SEED = 0x9e3779b9;
/** Seed of the request-key hash; any value works, it only has to be fixed. */
const REQUEST_SEED = 0;
const WALK_SLOTS_PER_ENDPOINT = 16;

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * Fills a Maglev lookup table: slot → index into `keys`, following the construction in the
 * header comment exactly. Throws on a non-prime size or a weight that is not a positive integer.
 */
export function maglevTable(keys: readonly string[], weights: readonly number[], size: number): Int32Array {
  if (!isPrime(size) || size > 0x7fffffff) {
    throw new Error(`maglev table size must be a prime < 2^31, got ${size}`);
  }
  if (keys.length !== weights.length) throw new Error("maglev: keys and weights differ in length");
  const n = keys.length;
  const table = new Int32Array(size).fill(-1);
  if (n === 0) return table;
  const skip = new Uint32Array(n);
  const next = new Uint32Array(n);
  const credit = new Float64Array(n);
  let maxWeight = 0;
  for (let i = 0; i < n; i++) {
    const w = weights[i];
    if (!Number.isSafeInteger(w) || w < 1) {
      throw new Error(`maglev: weight must be a positive integer, got ${w}`);
    }
    if (w > maxWeight) maxWeight = w;
    next[i] = hash32(keys[i], MAGLEV_OFFSET_SEED) % size;
    skip[i] = (hash32(keys[i], MAGLEV_SKIP_SEED) % (size - 1)) + 1;
  }
  let filled = 0;
  while (filled < size) {
    for (let i = 0; i < n; i++) {
      credit[i] += weights[i];
      if (credit[i] < maxWeight) continue;
      credit[i] -= maxWeight;
      let c = next[i];
      while (table[c] >= 0) c = (c + skip[i]) % size;
      table[c] = i;
      next[i] = (c + skip[i]) % size;
      if (++filled === size) break;
    }
  }
  return table;
}

class MaglevPicker implements Picker {
  readonly algorithm = "maglev" as const;
  readonly endpoints: readonly Endpoint[];
  readonly table: Int32Array;
  readonly readKey: HashKeyReader;
  readonly #pool: RankingPool<MaglevRanking>;

  constructor(endpoints: readonly Endpoint[], options: PickerOptions) {
    this.endpoints = endpoints;
    this.table = maglevTable(
      endpoints.map((e) => e.key),
      endpoints.map((e) => e.weight),
      options.maglevTableSize ?? DEFAULT_MAGLEV_TABLE_SIZE,
    );
    this.readKey = hashKeyReader(options.hashKey);
    this.#pool = new RankingPool(() => new MaglevRanking(this));
  }

  rank(req: PickRequest): Iterable<Endpoint> {
    return this.#pool.acquire().start(req);
  }
}

class MaglevRanking implements RankState {
  readonly #p: MaglevPicker;
  readonly #seen: IndexSet;
  readonly #walkLimit: number;
  #slot = 0;
  #walked = 0;
  #given = 0;
  #first = 0;
  #swept = 0;

  constructor(picker: MaglevPicker) {
    this.#p = picker;
    this.#seen = new IndexSet(picker.endpoints.length);
    this.#walkLimit = Math.min(picker.table.length, WALK_SLOTS_PER_ENDPOINT * picker.endpoints.length);
  }

  reset(req: PickRequest): void {
    const p = this.#p;
    this.#slot = hash32(p.readKey(req), REQUEST_SEED) % p.table.length;
    this.#walked = 0;
    this.#given = 0;
    this.#swept = 0;
    this.#seen.clear();
  }

  advance(): Endpoint | undefined {
    const { endpoints, table } = this.#p;
    const n = endpoints.length;
    if (this.#given >= n) return undefined;
    const seen = this.#seen;
    while (this.#walked < this.#walkLimit) {
      const i = table[this.#slot];
      this.#slot = this.#slot + 1 === table.length ? 0 : this.#slot + 1;
      this.#walked++;
      if (i < 0 || seen.has(i)) continue;
      if (this.#given === 0) this.#first = i;
      return this.#give(i);
    }
    while (++this.#swept < n) {
      const i = (this.#first + this.#swept) % n;
      if (!seen.has(i)) return this.#give(i);
    }
    return undefined;
  }

  #give(i: number): Endpoint {
    this.#seen.add(i);
    this.#given++;
    return this.#p.endpoints[i];
  }
}

export function createMaglev(endpoints: readonly Endpoint[], options: PickerOptions = {}): Picker {
  return new MaglevPicker(endpoints, options);
}
