/**
 * The one interface every load-balancing algorithm implements. Policy only: no I/O, no
 * timers, no health. Modelled on Pingora's selection: an algorithm *ranks* endpoints for a
 * request (best first, lazily); health, exclusions (retries) and the panic threshold are
 * applied on top of the ranking by select.ts, so no algorithm ever needs to know about them.
 *
 * A Picker is built for one backend set and never mutated; a reload builds a new one and
 * swaps it in. Mutable per-backend numbers live in EndpointStats, which is keyed by backend
 * identity and carried across reloads, so in-flight counts and EWMA survive a SIGHUP.
 */

import type { Algorithm } from "../config/types.ts";

/** Live numbers for one backend, shared by every Picker generation that contains it. */
export interface EndpointStats {
  /** Requests sent and not yet finished. */
  inFlight: number;
  /** Open upstream connections (pooled idle ones included). */
  connections: number;
  /** Peak-EWMA of upstream latency in milliseconds; 0 until the first sample. */
  ewmaMs: number;
  /** Time (ms, monotonic) of the last EWMA update, for decay. */
  ewmaAt: number;
  /** Times this backend was picked (for metrics). */
  picks: number;
}

export function newEndpointStats(): EndpointStats {
  return { inFlight: 0, connections: 0, ewmaMs: 0, ewmaAt: 0, picks: 0 };
}

export interface Endpoint {
  /** Backend identity (`pool/proto://host:port`), stable across reloads. */
  readonly key: string;
  readonly address: string;
  /** ≥ 1 here: weight-0 endpoints are dropped before a Picker sees them. */
  readonly weight: number;
  readonly stats: EndpointStats;
}

/** What an algorithm may look at in a request. Hash keys are read through these accessors. */
export interface PickRequest {
  readonly clientIp: string;
  /** Lower-case header name → first value. */
  header(name: string): string | undefined;
  cookie(name: string): string | undefined;
}

export interface PickerOptions {
  /** `header:NAME`, `cookie:NAME` or `client_ip` (default). */
  hashKey?: string;
  /** Maglev lookup-table size; must be prime. */
  maglevTableSize?: number;
  /** Ring-hash virtual nodes per unit of weight. */
  ringVirtualNodes?: number;
  /** EWMA decay time constant in ms. */
  ewmaDecayMs?: number;
  /** Cookie the gateway sets for session_affinity. */
  affinityCookie?: string;
  /** Injected randomness in [0, 1) so property tests are reproducible. */
  random?: () => number;
  /** Injected clock (ms) for EWMA decay. */
  now?: () => number;
}

export interface Picker {
  readonly algorithm: Algorithm;
  readonly endpoints: readonly Endpoint[];
  /**
   * Endpoints for this request, best first. Lazy: the caller stops at the first usable one,
   * so the common case costs one step. Must be finite; may repeat no endpoint.
   */
  rank(req: PickRequest): Iterable<Endpoint>;
}
