/**
 * The one place health, exclusions and the panic threshold meet the algorithms' rankings
 * (the Picker contract in picker.ts): take the first ranked endpoint that is healthy and not
 * excluded. Algorithms stay health-blind, so every one of them gets the same semantics.
 *
 * Panic threshold, as in Envoy: when fewer than that fraction of the endpoints are healthy,
 * health checks are probably wrong or the pool is overwhelmed, and concentrating all traffic
 * on the few survivors would only knock them over too. Health is then ignored and traffic is
 * spread over every endpoint; exclusions (endpoints this request already tried) are still
 * honoured while any endpoint is left that is not excluded.
 */

import type { Endpoint, Picker, PickRequest } from "./picker.ts";

export interface SelectOptions {
  isHealthy(key: string): boolean;
  /** Keys not to use for this request (e.g. already tried by an earlier attempt). */
  exclude?: ReadonlySet<string>;
  /** Fraction 0..1; below this fraction of healthy endpoints the pool is in panic. */
  panicThreshold: number;
}

export interface Selection {
  endpoint: Endpoint;
  /** The pool was in panic and health was ignored. */
  panic: boolean;
}

/**
 * True when fewer than `threshold` of the picker's endpoints are healthy (never for an empty
 * pool or a threshold ≤ 0). Stops as soon as the answer is certain, so a healthy pool costs
 * threshold·N health lookups.
 */
export function computePanic(
  picker: Picker,
  isHealthy: (key: string) => boolean,
  threshold: number,
): boolean {
  const eps = picker.endpoints;
  const n = eps.length;
  if (n === 0 || !(threshold > 0)) return false;
  let healthy = 0;
  let unhealthy = 0;
  for (let i = 0; i < n; i++) {
    if (isHealthy(eps[i].key)) {
      if (++healthy / n >= threshold) return false;
    } else if ((n - ++unhealthy) / n < threshold) {
      return true;
    }
  }
  return healthy / n < threshold;
}

/**
 * The endpoint for one attempt of `req`, or undefined when none is usable. Counts the pick in
 * stats.picks (here only, so a ranking that is looked at but not used counts nothing).
 */
export function selectEndpoint(picker: Picker, req: PickRequest, opts: SelectOptions): Selection | undefined {
  const eps = picker.endpoints;
  if (eps.length === 0) return undefined;
  const panic = computePanic(picker, opts.isHealthy, opts.panicThreshold);
  const exclude = opts.exclude !== undefined && opts.exclude.size > 0 ? opts.exclude : undefined;
  let chosen: Endpoint | undefined;
  let firstRanked: Endpoint | undefined;
  const it = picker.rank(req)[Symbol.iterator]();
  try {
    for (let r = it.next(); !r.done; r = it.next()) {
      const e = r.value;
      firstRanked ??= e;
      if (exclude?.has(e.key)) continue;
      if (!panic && !opts.isHealthy(e.key)) continue;
      chosen = e;
      break;
    }
  } finally {
    it.return?.();
  }
  // The ranking may stop early (the Picker contract allows a partial ranking).
  if (chosen === undefined) {
    for (let i = 0; i < eps.length; i++) {
      const e = eps[i];
      if (exclude?.has(e.key)) continue;
      if (!panic && !opts.isHealthy(e.key)) continue;
      chosen = e;
      break;
    }
  }
  // In panic every endpoint is usable; exclusions yield when they would leave none.
  if (chosen === undefined && panic) chosen = firstRanked ?? eps[0];
  if (chosen === undefined) return undefined;
  chosen.stats.picks++;
  return { endpoint: chosen, panic };
}
