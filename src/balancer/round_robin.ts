/**
 * round_robin: endpoints in turn, ignoring weights (weighted_round_robin honours them).
 *
 * The cursor moves past every endpoint the caller *looks at*, not once per request. When an
 * endpoint is skipped (unhealthy, excluded) the next request starts after the one actually
 * used, so the survivors keep an even rotation instead of the skipped one's successor taking
 * a double share (the classic naive-RR bias). The start is random so that several gateways
 * restarted together do not walk their backends in lockstep.
 */

import type { Endpoint, Picker, PickerOptions, PickRequest } from "./picker.ts";
import { RankingPool, type RankState } from "./ranking.ts";

class RoundRobinPicker implements Picker {
  readonly algorithm = "round_robin" as const;
  readonly endpoints: readonly Endpoint[];
  /** Index the next request starts at. */
  cursor: number;
  readonly #pool: RankingPool<RoundRobinRanking>;

  constructor(endpoints: readonly Endpoint[], options: PickerOptions) {
    this.endpoints = endpoints;
    const random = options.random ?? Math.random;
    const n = endpoints.length;
    this.cursor = n > 0 ? Math.min(n - 1, Math.max(0, Math.floor(random() * n))) : 0;
    this.#pool = new RankingPool(() => new RoundRobinRanking(this));
  }

  rank(req: PickRequest): Iterable<Endpoint> {
    return this.#pool.acquire().start(req);
  }
}

class RoundRobinRanking implements RankState {
  readonly #picker: RoundRobinPicker;
  #left = 0;

  constructor(picker: RoundRobinPicker) {
    this.#picker = picker;
  }

  reset(): void {
    this.#left = this.#picker.endpoints.length;
  }

  advance(): Endpoint | undefined {
    if (this.#left === 0) return undefined;
    this.#left--;
    const p = this.#picker;
    const i = p.cursor;
    p.cursor = i + 1 === p.endpoints.length ? 0 : i + 1;
    return p.endpoints[i];
  }
}

export function createRoundRobin(endpoints: readonly Endpoint[], options: PickerOptions = {}): Picker {
  return new RoundRobinPicker(endpoints, options);
}
