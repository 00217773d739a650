/**
 * The power of two random choices (Mitzenmacher 2001), shared by p2c and ewma: draw two
 * distinct endpoints, weighted by weight, and take the one with the lower cost. Nearly as good
 * as a full least-loaded scan at O(log N) per pick, and because it is randomised, a burst of
 * concurrent picks does not all land on the single least-loaded endpoint.
 *
 * On a tie the first draw wins. The first draw alone is distributed exactly by weight, so a
 * pool whose costs are all equal (idle, or balanced) is served in proportion to weight;
 * choosing either at random on ties would skew that towards light endpoints.
 *
 * The second candidate is the other draw; the rest follow cheapest first (O(N) each, rare).
 */

import type { Endpoint } from "./picker.ts";
import { cheapestNotIn, IndexSet, type RankState } from "./ranking.ts";
import type { WeightedSampler } from "./sampling.ts";

export interface CostModel {
  readonly endpoints: readonly Endpoint[];
  readonly sampler: WeightedSampler;
  readonly random: () => number;
  /** Called once per request before any cost(), e.g. to read the clock once. */
  prepare(): void;
  cost(i: number): number;
}

export class TwoChoicesRanking implements RankState {
  readonly #m: CostModel;
  readonly #seen: IndexSet;
  readonly #cost: (i: number) => number;
  #given = 0;
  #other = 0;

  constructor(model: CostModel) {
    this.#m = model;
    this.#seen = new IndexSet(model.endpoints.length);
    this.#cost = (i) => model.cost(i);
  }

  reset(): void {
    this.#given = 0;
    this.#seen.clear();
    this.#m.prepare();
  }

  advance(): Endpoint | undefined {
    const m = this.#m;
    const n = m.endpoints.length;
    const given = this.#given;
    if (given >= n) return undefined;
    let i: number;
    if (given === 0) {
      if (n === 1) {
        i = 0;
      } else {
        const a = m.sampler.sample(m.random());
        const b = m.sampler.sampleExcept(m.random(), a);
        const bWins = m.cost(b) < m.cost(a);
        i = bWins ? b : a;
        this.#other = bWins ? a : b;
      }
    } else if (given === 1) {
      i = this.#other;
    } else {
      i = cheapestNotIn(n, this.#seen, this.#cost);
    }
    this.#seen.add(i);
    this.#given = given + 1;
    return m.endpoints[i];
  }
}
