/**
 * Entry point of the balancer: builds a Picker for a pool's algorithm. Weight-0 endpoints are
 * dropped here (they take no new traffic), so no algorithm has to handle them. Health and
 * retries are applied by select.ts on top of any Picker.
 */

import type { Algorithm } from "../config/types.ts";
import type { Endpoint, Picker, PickerOptions } from "./picker.ts";
import { createEwma } from "./ewma.ts";
import { createLeastConnections } from "./least_connections.ts";
import { createLeastRequest } from "./least_request.ts";
import { createMaglev } from "./maglev.ts";
import { createP2C } from "./p2c.ts";
import { createRandom } from "./random.ts";
import { createRingHash } from "./ring_hash.ts";
import { createRoundRobin } from "./round_robin.ts";
import { createSessionAffinity } from "./session_affinity.ts";
import { createWeightedRandom } from "./weighted_random.ts";
import { createWeightedRoundRobin } from "./weighted_round_robin.ts";

export type PickerFactory = (endpoints: readonly Endpoint[], options: PickerOptions) => Picker;

export const ALGORITHM_IMPLEMENTATIONS: Readonly<Record<Algorithm, PickerFactory>> = Object.freeze({
  round_robin: createRoundRobin,
  weighted_round_robin: createWeightedRoundRobin,
  random: createRandom,
  weighted_random: createWeightedRandom,
  least_connections: createLeastConnections,
  least_request: createLeastRequest,
  p2c: createP2C,
  maglev: createMaglev,
  ring_hash: createRingHash,
  ewma: createEwma,
  session_affinity: createSessionAffinity,
});

/**
 * A Picker for `endpoints` (weight-0 ones dropped). Randomness and the clock come from
 * options.random / options.now (Math.random / performance.now by default). Throws on bad
 * options, e.g. a maglevTableSize that is not prime.
 */
export function createPicker(
  algorithm: Algorithm,
  endpoints: readonly Endpoint[],
  options: PickerOptions = {},
): Picker {
  const factory = ALGORITHM_IMPLEMENTATIONS[algorithm];
  if (factory === undefined) throw new Error(`unknown load-balancing algorithm '${algorithm}'`);
  const live = endpoints.filter((e) => e.weight > 0);
  return factory(live, {
    ...options,
    random: options.random ?? Math.random,
    now: options.now ?? (() => performance.now()),
  });
}

export type { Endpoint, EndpointStats, Picker, PickerOptions, PickRequest } from "./picker.ts";
export { newEndpointStats } from "./picker.ts";
export { computePanic, selectEndpoint } from "./select.ts";
export type { Selection, SelectOptions } from "./select.ts";
export { observeLatency } from "./ewma.ts";
export { affinityToken } from "./session_affinity.ts";
export { requestHashKey } from "./hash.ts";
