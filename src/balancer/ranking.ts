/**
 * Allocation-free lazy rankings. rank() runs once per request, and a generator (or an array)
 * per call is garbage the hot path does not need. Each Picker keeps one Ranking, an object
 * that is its own iterator and reuses its IteratorResult; rank() resets and returns it.
 *
 * Contract, the same as a generator's: the result is iterated once, synchronously, and either
 * run to the end or closed with return() (for-of does that on break). While one ranking is
 * still open (say a caller holds it across an await), rank() hands out a fresh one instead, so
 * sharing is never observable; it merely costs an allocation.
 *
 * Ranking is one final class wrapping a per-algorithm RankState, not a base class with a
 * subclass per algorithm: V8's inline caches are per code location, so base-class methods
 * shared by eight subclasses (and selectEndpoint's calls to next()) would go megamorphic in a
 * gateway running several algorithms, which measured 2-3x slower per pick.
 */

import type { Endpoint, PickRequest } from "./picker.ts";

/** An algorithm's per-request ranking state. */
export interface RankState {
  reset(req: PickRequest): void;
  /** The next endpoint, or undefined when the ranking is exhausted. */
  advance(): Endpoint | undefined;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

export class Ranking<S extends RankState = RankState> implements IterableIterator<Endpoint, undefined> {
  readonly state: S;
  #open = false;
  readonly #result: IteratorYieldResult<Endpoint> = { done: false, value: undefined as unknown as Endpoint };

  constructor(state: S) {
    this.state = state;
  }

  get open(): boolean {
    return this.#open;
  }

  start(req: PickRequest): this {
    this.state.reset(req);
    this.#open = true;
    return this;
  }

  next(): IteratorResult<Endpoint, undefined> {
    if (!this.#open) return DONE;
    const e = this.state.advance();
    if (e === undefined) {
      this.#open = false;
      return DONE;
    }
    this.#result.value = e;
    return this.#result;
  }

  return(): IteratorResult<Endpoint, undefined> {
    this.#open = false;
    return DONE;
  }

  [Symbol.iterator](): this {
    return this;
  }
}

/** Hands out the picker's spare Ranking, or a new one while the spare is in use. */
export class RankingPool<S extends RankState> {
  readonly #spare: Ranking<S>;
  readonly #make: () => S;

  constructor(make: () => S) {
    this.#make = make;
    this.#spare = new Ranking(make());
  }

  acquire(): Ranking<S> {
    return this.#spare.open ? new Ranking(this.#make()) : this.#spare;
  }
}

/**
 * A set of endpoint indexes that empties in O(1): an entry is in the set when it holds the
 * current epoch, so clear() just bumps the epoch (and zeroes once every 2^32 clears).
 */
export class IndexSet {
  readonly #epochs: Uint32Array;
  #epoch = 1;

  constructor(size: number) {
    this.#epochs = new Uint32Array(size);
  }

  clear(): void {
    if (++this.#epoch === 0x100000000) {
      this.#epochs.fill(0);
      this.#epoch = 1;
    }
  }

  has(i: number): boolean {
    return this.#epochs[i] === this.#epoch;
  }

  add(i: number): void {
    this.#epochs[i] = this.#epoch;
  }
}

/** Index of the endpoint with the lowest `cost` that is not in `skip`, lowest index on ties; -1 if none. */
export function cheapestNotIn(n: number, skip: IndexSet, cost: (i: number) => number): number {
  let best = -1;
  let bestCost = Infinity;
  for (let i = 0; i < n; i++) {
    if (skip.has(i)) continue;
    const c = cost(i);
    if (best < 0 || c < bestCost) {
      best = i;
      bestCost = c;
    }
  }
  return best;
}
