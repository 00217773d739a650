/**
 * ewma: peak-EWMA latency balancing as in Finagle's PeakEwma and linkerd2 (tower's
 * peak_ewma): each endpoint's cost is its latency estimate times its queue, and the pick is
 * the power of two choices on that cost (two_choices.ts), so slow endpoints shed traffic
 * before they time out.
 *
 * Estimate: a sample above the current value replaces it at once (peak: react to a slowdown
 * immediately), a lower one pulls it down with alpha = 1 - exp(-elapsed / decay), so the
 * recovery is by time, not by request count. As in tower, the estimate also decays towards 0
 * while no samples arrive (applied when read, without writing): an endpoint that was shunned
 * for being slow is eventually tried again instead of keeping its bad estimate forever.
 *
 * Cost = estimate * (inFlight / weight + 1). For weight 1 this is exactly linkerd's
 * estimate * (pending + 1). With weights the weight divides the queue, not the whole product:
 * estimate * (inFlight + 1) / weight would make the heavier of two idle, equally fast
 * endpoints win every comparison (a weight-4 endpoint would get ~72% of a 1:2:3:4 pool rather
 * than 40%), whereas this form ties them so the weighted draw decides, and under load still
 * compares queue per unit of weight.
 *
 * Endpoints without a sample cost UNSAMPLED_EWMA_MS per queue slot: small, so a new endpoint
 * is tried soon and gets a real estimate, yet its queue still counts against it.
 */

import type { Endpoint, EndpointStats, Picker, PickerOptions, PickRequest } from "./picker.ts";
import { RankingPool } from "./ranking.ts";
import { WeightedSampler } from "./sampling.ts";
import { type CostModel, TwoChoicesRanking } from "./two_choices.ts";

export const DEFAULT_EWMA_DECAY_MS = 10_000;
/** Latency assumed for an endpoint with no sample yet (ms). */
export const UNSAMPLED_EWMA_MS = 1;

/**
 * Records one response latency. The forwarder calls this when a response head arrives (and
 * with the elapsed time when an attempt fails or times out, so a black hole gets expensive).
 */
export function observeLatency(
  stats: EndpointStats,
  ms: number,
  now: number,
  decayMs: number = DEFAULT_EWMA_DECAY_MS,
): void {
  if (!(ms >= 0) || ms === Infinity) return;
  if (ms > stats.ewmaMs || !(decayMs > 0)) {
    stats.ewmaMs = ms;
  } else {
    const elapsed = Math.max(0, now - stats.ewmaAt);
    const alpha = 1 - Math.exp(-elapsed / decayMs);
    stats.ewmaMs += (ms - stats.ewmaMs) * alpha;
  }
  stats.ewmaAt = now;
}

/** The latency estimate as of `now`: decayed towards 0 since the last sample; UNSAMPLED_EWMA_MS if none. */
export function ewmaEstimate(
  stats: EndpointStats,
  now: number,
  decayMs: number = DEFAULT_EWMA_DECAY_MS,
): number {
  const ewma = stats.ewmaMs;
  if (ewma === 0) return UNSAMPLED_EWMA_MS;
  const elapsed = now - stats.ewmaAt;
  return elapsed > 0 && decayMs > 0 ? ewma * Math.exp(-elapsed / decayMs) : ewma;
}

class EwmaPicker implements Picker, CostModel {
  readonly algorithm = "ewma" as const;
  readonly endpoints: readonly Endpoint[];
  readonly sampler: WeightedSampler;
  readonly random: () => number;
  readonly #now: () => number;
  readonly #decayMs: number;
  #at = 0;
  readonly #pool: RankingPool<TwoChoicesRanking>;

  constructor(endpoints: readonly Endpoint[], options: PickerOptions) {
    this.endpoints = endpoints;
    this.sampler = new WeightedSampler(endpoints.map((e) => e.weight));
    this.random = options.random ?? Math.random;
    this.#now = options.now ?? (() => performance.now());
    this.#decayMs = options.ewmaDecayMs ?? DEFAULT_EWMA_DECAY_MS;
    this.#pool = new RankingPool(() => new TwoChoicesRanking(this));
  }

  prepare(): void {
    this.#at = this.#now();
  }

  cost(i: number): number {
    const e = this.endpoints[i];
    return ewmaEstimate(e.stats, this.#at, this.#decayMs) * (e.stats.inFlight / e.weight + 1);
  }

  rank(req: PickRequest): Iterable<Endpoint> {
    return this.#pool.acquire().start(req);
  }
}

export function createEwma(endpoints: readonly Endpoint[], options: PickerOptions = {}): Picker {
  if (options.ewmaDecayMs !== undefined && !(options.ewmaDecayMs > 0)) {
    throw new Error(`ewma decay must be > 0 ms, got ${options.ewmaDecayMs}`);
  }
  return new EwmaPicker(endpoints, options);
}
