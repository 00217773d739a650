/**
 * session_affinity: sticky sessions. The gateway gives each client a cookie (default
 * "eg_affinity") holding affinityToken(endpoint); while that endpoint is in the set it is
 * ranked first. Clients without a valid cookie, or whose endpoint has left the set, are
 * placed by consistent hashing of the hash key on a ring (ring_hash.ts), so they still land
 * somewhere stable, and a reload that keeps the endpoint keeps the session: the token derives
 * from the endpoint key alone, not from its position or the picker generation.
 *
 * If the sticky endpoint is unhealthy or excluded, select.ts moves past it to the ring's
 * choice; the forwarder then re-issues the cookie for the endpoint actually used.
 */

import type { Endpoint, Picker, PickerOptions, PickRequest } from "./picker.ts";
import { hash64Hex, type HashKeyReader, hashKeyReader } from "./hash.ts";
import { RankingPool } from "./ranking.ts";
import { DEFAULT_RING_VIRTUAL_NODES, HashRing, RingRanking, type RingSource } from "./ring_hash.ts";

export const DEFAULT_AFFINITY_COOKIE = "eg_affinity";

const tokens = new WeakMap<object, string>();

/**
 * The cookie value naming `endpoint`: 16 hex digits of FNV-1a 64 of its key. Stable across
 * reloads and gateway instances, and does not show the address. It is not a secret: someone
 * who guesses the key format can confirm a guessed address by hashing it.
 */
export function affinityToken(endpoint: Pick<Endpoint, "key">): string {
  // Called per response to set the cookie; keys are immutable, so hash each object once.
  let token = tokens.get(endpoint);
  if (token === undefined) {
    token = hash64Hex(endpoint.key);
    tokens.set(endpoint, token);
  }
  return token;
}

class SessionAffinityPicker implements Picker, RingSource {
  readonly algorithm = "session_affinity" as const;
  readonly endpoints: readonly Endpoint[];
  readonly ring: HashRing;
  readonly readKey: HashKeyReader;
  readonly cookie: string;
  /** affinityToken → endpoint index. */
  readonly #byToken = new Map<string, number>();
  readonly #pool: RankingPool<RingRanking>;

  constructor(endpoints: readonly Endpoint[], options: PickerOptions) {
    this.endpoints = endpoints;
    this.ring = new HashRing(
      endpoints.map((e) => e.key),
      endpoints.map((e) => e.weight),
      options.ringVirtualNodes ?? DEFAULT_RING_VIRTUAL_NODES,
    );
    this.readKey = hashKeyReader(options.hashKey);
    this.cookie = options.affinityCookie ?? DEFAULT_AFFINITY_COOKIE;
    endpoints.forEach((e, i) => {
      const token = affinityToken(e);
      if (!this.#byToken.has(token)) this.#byToken.set(token, i);
    });
    this.#pool = new RankingPool(() => new RingRanking(this));
  }

  rank(req: PickRequest): Iterable<Endpoint> {
    const token = req.cookie(this.cookie);
    const pinned = token === undefined ? undefined : this.#byToken.get(token);
    const ranking = this.#pool.acquire();
    ranking.state.pin(pinned ?? -1);
    return ranking.start(req);
  }
}

export function createSessionAffinity(endpoints: readonly Endpoint[], options: PickerOptions = {}): Picker {
  return new SessionAffinityPicker(endpoints, options);
}
