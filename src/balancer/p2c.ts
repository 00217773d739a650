/**
 * p2c: power of two random choices on requests in flight (two_choices.ts). The two are drawn
 * by weight and compared on inFlight / weight rather than raw inFlight: at equal latency an
 * endpoint with twice the weight carries twice the requests, and comparing raw counts would
 * pull traffic back towards an equal split, undoing the weights.
 */

import type { Endpoint, Picker, PickerOptions, PickRequest } from "./picker.ts";
import { RankingPool } from "./ranking.ts";
import { WeightedSampler } from "./sampling.ts";
import { type CostModel, TwoChoicesRanking } from "./two_choices.ts";

class P2CPicker implements Picker, CostModel {
  readonly algorithm = "p2c" as const;
  readonly endpoints: readonly Endpoint[];
  readonly sampler: WeightedSampler;
  readonly random: () => number;
  readonly #pool: RankingPool<TwoChoicesRanking>;

  constructor(endpoints: readonly Endpoint[], options: PickerOptions) {
    this.endpoints = endpoints;
    this.sampler = new WeightedSampler(endpoints.map((e) => e.weight));
    this.random = options.random ?? Math.random;
    this.#pool = new RankingPool(() => new TwoChoicesRanking(this));
  }

  prepare(): void {}

  cost(i: number): number {
    const e = this.endpoints[i];
    return e.stats.inFlight / e.weight;
  }

  rank(req: PickRequest): Iterable<Endpoint> {
    return this.#pool.acquire().start(req);
  }
}

export function createP2C(endpoints: readonly Endpoint[], options: PickerOptions = {}): Picker {
  return new P2CPicker(endpoints, options);
}
