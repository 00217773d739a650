/**
 * weighted_random: an endpoint drawn with probability weight / Σweights, by prefix sums and a
 * binary search (O(log N), see sampling.ts).
 *
 * Further candidates (rare: retries, outages) are drawn again, rejecting ones already
 * offered, up to REDRAWS times; failing that, the next endpoint after the last draw that was
 * not offered yet is taken. Exact weighted sampling without replacement would need O(N) work
 * or per-request state of size N, for a path that is seldom taken.
 */

import type { Endpoint, Picker, PickerOptions, PickRequest } from "./picker.ts";
import { IndexSet, RankingPool, type RankState } from "./ranking.ts";
import { WeightedSampler } from "./sampling.ts";

const REDRAWS = 4;

class WeightedRandomPicker implements Picker {
  readonly algorithm = "weighted_random" as const;
  readonly endpoints: readonly Endpoint[];
  readonly random: () => number;
  readonly sampler: WeightedSampler;
  readonly #pool: RankingPool<WeightedRandomRanking>;

  constructor(endpoints: readonly Endpoint[], options: PickerOptions) {
    this.endpoints = endpoints;
    this.random = options.random ?? Math.random;
    this.sampler = new WeightedSampler(endpoints.map((e) => e.weight));
    this.#pool = new RankingPool(() => new WeightedRandomRanking(this));
  }

  rank(req: PickRequest): Iterable<Endpoint> {
    return this.#pool.acquire().start(req);
  }
}

class WeightedRandomRanking implements RankState {
  readonly #p: WeightedRandomPicker;
  readonly #seen: IndexSet;
  #given = 0;

  constructor(picker: WeightedRandomPicker) {
    this.#p = picker;
    this.#seen = new IndexSet(picker.endpoints.length);
  }

  reset(): void {
    this.#given = 0;
    this.#seen.clear();
  }

  advance(): Endpoint | undefined {
    const p = this.#p;
    const n = p.endpoints.length;
    if (this.#given >= n) return undefined;
    let i = p.sampler.sample(p.random());
    if (this.#given > 0) {
      for (let tries = 1; this.#seen.has(i) && tries < REDRAWS; tries++) i = p.sampler.sample(p.random());
      while (this.#seen.has(i)) i = i + 1 === n ? 0 : i + 1;
    }
    this.#seen.add(i);
    this.#given++;
    return p.endpoints[i];
  }
}

export function createWeightedRandom(endpoints: readonly Endpoint[], options: PickerOptions = {}): Picker {
  return new WeightedRandomPicker(endpoints, options);
}
