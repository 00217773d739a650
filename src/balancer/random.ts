/**
 * random: a uniformly random endpoint, ignoring weights (weighted_random honours them).
 *
 * Further candidates are the rest in random order, drawn lazily by a Fisher-Yates shuffle
 * kept in a per-ranking permutation: any permutation is a valid starting state, so nothing is
 * reset between requests and each candidate costs O(1). (Walking forward from the first pick
 * instead would double the load on the neighbour of an unhealthy endpoint.)
 */

import type { Endpoint, Picker, PickerOptions, PickRequest } from "./picker.ts";
import { RankingPool, type RankState } from "./ranking.ts";

class RandomPicker implements Picker {
  readonly algorithm = "random" as const;
  readonly endpoints: readonly Endpoint[];
  readonly random: () => number;
  readonly #pool: RankingPool<ShuffleRanking>;

  constructor(endpoints: readonly Endpoint[], options: PickerOptions) {
    this.endpoints = endpoints;
    this.random = options.random ?? Math.random;
    this.#pool = new RankingPool(() => new ShuffleRanking(this));
  }

  rank(req: PickRequest): Iterable<Endpoint> {
    return this.#pool.acquire().start(req);
  }
}

class ShuffleRanking implements RankState {
  readonly #p: RandomPicker;
  readonly #perm: Uint32Array;
  #k = 0;

  constructor(picker: RandomPicker) {
    this.#p = picker;
    this.#perm = Uint32Array.from(picker.endpoints, (_, i) => i);
  }

  reset(): void {
    this.#k = 0;
  }

  advance(): Endpoint | undefined {
    const perm = this.#perm;
    const n = perm.length;
    const k = this.#k;
    if (k >= n) return undefined;
    const j = Math.min(n - 1, k + Math.floor(this.#p.random() * (n - k)));
    const chosen = perm[j];
    perm[j] = perm[k];
    perm[k] = chosen;
    this.#k = k + 1;
    return this.#p.endpoints[chosen];
  }
}

export function createRandom(endpoints: readonly Endpoint[], options: PickerOptions = {}): Picker {
  return new RandomPicker(endpoints, options);
}
