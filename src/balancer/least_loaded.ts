/**
 * Shared core of least_connections and least_request: the endpoint with the lowest
 * load / weight, where load is open connections or requests in flight.
 *
 * The weight scales the load, in the spirit of Envoy's least_request with unequal weights
 * (which scales each weight by 1/(active+1)^bias): a weight-3 endpoint with 3 requests is as
 * loaded as a weight-1 endpoint with 1, so at equal latency traffic settles in proportion to
 * weight. Cross-multiplying (a.load * b.weight vs b.load * a.weight) keeps it exact.
 *
 * Ties are broken by a weighted random draw among the tied endpoints. Ties are the common
 * case on an idle or fast pool (every load 0), and breaking them by index would send all of
 * that traffic to the first endpoint; the weighted draw makes such a pool behave like
 * weighted_random. One pass finds the minimum and the tied weight, a second (only when there
 * is a tie) walks to the drawn one: O(N), one random number.
 *
 * Further candidates are the least loaded of the rest, each by another O(N) scan.
 */

import type { Endpoint, EndpointStats, Picker, PickerOptions, PickRequest } from "./picker.ts";
import { cheapestNotIn, IndexSet, RankingPool, type RankState } from "./ranking.ts";

export type LoadMetric = "connections" | "inFlight";

class LeastLoadedPicker implements Picker {
  readonly algorithm: "least_connections" | "least_request";
  readonly endpoints: readonly Endpoint[];
  readonly random: () => number;
  readonly byConnections: boolean;
  /** Flat copies of endpoints[i].stats / .weight: one indirection less in the O(N) scan. */
  readonly stats: readonly EndpointStats[];
  readonly weights: Float64Array;
  readonly #pool: RankingPool<LeastLoadedRanking>;

  constructor(
    algorithm: "least_connections" | "least_request",
    metric: LoadMetric,
    endpoints: readonly Endpoint[],
    options: PickerOptions,
  ) {
    this.algorithm = algorithm;
    this.endpoints = endpoints;
    this.byConnections = metric === "connections";
    this.stats = endpoints.map((e) => e.stats);
    this.weights = Float64Array.from(endpoints, (e) => e.weight);
    this.random = options.random ?? Math.random;
    this.#pool = new RankingPool(() => new LeastLoadedRanking(this));
  }

  load(s: EndpointStats): number {
    return this.byConnections ? s.connections : s.inFlight;
  }

  rank(req: PickRequest): Iterable<Endpoint> {
    return this.#pool.acquire().start(req);
  }
}

class LeastLoadedRanking implements RankState {
  readonly #p: LeastLoadedPicker;
  readonly #seen: IndexSet;
  readonly #cost: (i: number) => number;
  #given = 0;

  constructor(picker: LeastLoadedPicker) {
    this.#p = picker;
    this.#seen = new IndexSet(picker.endpoints.length);
    this.#cost = (i) => {
      const e = picker.endpoints[i];
      return picker.load(e.stats) / e.weight;
    };
  }

  reset(): void {
    this.#given = 0;
    this.#seen.clear();
  }

  advance(): Endpoint | undefined {
    const p = this.#p;
    const eps = p.endpoints;
    const n = eps.length;
    if (this.#given >= n) return undefined;
    const i = this.#given === 0 ? this.#least() : cheapestNotIn(n, this.#seen, this.#cost);
    this.#seen.add(i);
    this.#given++;
    return eps[i];
  }

  #least(): number {
    const p = this.#p;
    const { stats, weights } = p;
    const byConnections = p.byConnections;
    const n = stats.length;
    let best = 0;
    let bestLoad = byConnections ? stats[0].connections : stats[0].inFlight;
    let bestWeight = weights[0];
    let tiedWeight = bestWeight;
    let ties = 1;
    for (let i = 1; i < n; i++) {
      const load = byConnections ? stats[i].connections : stats[i].inFlight;
      const w = weights[i];
      const lhs = load * bestWeight;
      const rhs = bestLoad * w;
      if (lhs < rhs) {
        best = i;
        bestLoad = load;
        bestWeight = w;
        tiedWeight = w;
        ties = 1;
      } else if (lhs === rhs) {
        tiedWeight += w;
        ties++;
      }
    }
    if (ties === 1) return best;
    let x = p.random() * tiedWeight;
    let last = best;
    for (let i = best; i < n; i++) {
      const load = byConnections ? stats[i].connections : stats[i].inFlight;
      if (load * bestWeight !== bestLoad * weights[i]) continue;
      last = i;
      x -= weights[i];
      if (x < 0) return i;
    }
    return last; // only reached through float rounding or a random() that returned ≥ 1
  }
}

export function createLeastLoaded(
  algorithm: "least_connections" | "least_request",
  metric: LoadMetric,
  endpoints: readonly Endpoint[],
  options: PickerOptions,
): Picker {
  return new LeastLoadedPicker(algorithm, metric, endpoints, options);
}
