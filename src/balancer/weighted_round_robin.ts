/**
 * weighted_round_robin: smooth weighted round-robin as in nginx (ngx_http_upstream_get_peer).
 * Each pick adds every weight to its endpoint's `current`, takes the largest `current` and
 * subtracts the total weight from it. Weights 5,1,1 give a a b a c a a: heavy endpoints are
 * interleaved with light ones rather than served in bursts.
 *
 * nginx leaves peers it has already tried out of the round. Here the caller may skip the first
 * candidate (unhealthy, excluded), so the ranking charges each request to the candidate the
 * caller stopped at: moving past a candidate refunds its charge and takes back its weight for
 * this round, then picks the best of the rest against the reduced total. The result equals
 * nginx's with the skipped peers marked tried, and Σ current stays 0, so an endpoint that is
 * skipped for a long time does not bank credit and burst when it comes back.
 *
 * The first candidate costs O(N); each further one another O(N) scan (rare: retries, outages).
 */

import type { Endpoint, Picker, PickerOptions, PickRequest } from "./picker.ts";
import { IndexSet, RankingPool, type RankState } from "./ranking.ts";

class WeightedRoundRobinPicker implements Picker {
  readonly algorithm = "weighted_round_robin" as const;
  readonly endpoints: readonly Endpoint[];
  readonly weights: Float64Array;
  readonly current: Float64Array;
  readonly total: number;
  readonly #pool: RankingPool<SmoothRanking>;

  constructor(endpoints: readonly Endpoint[], _options: PickerOptions) {
    this.endpoints = endpoints;
    this.weights = Float64Array.from(endpoints, (e) => e.weight);
    this.current = new Float64Array(endpoints.length);
    this.total = this.weights.reduce((a, b) => a + b, 0);
    this.#pool = new RankingPool(() => new SmoothRanking(this));
  }

  rank(req: PickRequest): Iterable<Endpoint> {
    return this.#pool.acquire().start(req);
  }
}

class SmoothRanking implements RankState {
  readonly #p: WeightedRoundRobinPicker;
  readonly #seen: IndexSet;
  #step = 0;
  /** Endpoint the request is currently charged to, and by how much. */
  #charged = -1;
  #charge = 0;

  constructor(picker: WeightedRoundRobinPicker) {
    this.#p = picker;
    this.#seen = new IndexSet(picker.endpoints.length);
  }

  reset(): void {
    this.#step = 0;
    this.#seen.clear();
  }

  advance(): Endpoint | undefined {
    const { endpoints, weights, current } = this.#p;
    const n = endpoints.length;
    if (this.#step >= n) return undefined;
    let best = -1;
    if (this.#step === 0) {
      for (let i = 0; i < n; i++) {
        current[i] += weights[i];
        if (best < 0 || current[i] > current[best]) best = i;
      }
      this.#charge = this.#p.total;
    } else {
      // The previous candidate was not used: undo its charge and its share of this round.
      const prev = this.#charged;
      current[prev] += this.#charge - weights[prev];
      this.#charge -= weights[prev];
      for (let i = 0; i < n; i++) {
        if (this.#seen.has(i)) continue;
        if (best < 0 || current[i] > current[best]) best = i;
      }
    }
    current[best] -= this.#charge;
    this.#charged = best;
    this.#seen.add(best);
    this.#step++;
    return endpoints[best];
  }
}

export function createWeightedRoundRobin(
  endpoints: readonly Endpoint[],
  options: PickerOptions = {},
): Picker {
  return new WeightedRoundRobinPicker(endpoints, options);
}
