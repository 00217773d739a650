/**
 * Per-backend runtime state (balancer stats, connection pool) keyed by backend identity, so a
 * reload that keeps a backend keeps its in-flight counts, EWMA and warm connections. A reload
 * builds new PoolRuntime objects (new pickers over the same stats) and the proxy reads them
 * through one reference swap; removed backends close their idle connections and let
 * in-flight requests finish.
 */

import { createPicker } from "../balancer/index.ts";
import { type Endpoint, type EndpointStats, newEndpointStats, type Picker } from "../balancer/picker.ts";
import { type BackendConfig, backendKey, type ConfigSnapshot, type PoolConfig } from "../config/types.ts";
import { H1Pool } from "../http/h1/client.ts";
import { H2Pool } from "../http/h2/client.ts";
import { H3Pool, type H3Target, h3TargetOf } from "../http/h3/client.ts";
import { connectTarget } from "../net/connect.ts";

export interface BackendRuntime {
  readonly key: string;
  readonly pool: string;
  config: BackendConfig;
  readonly stats: EndpointStats;
  readonly h1: H1Pool;
  /** Multiplexed pool for protocol "h2" / "h2c" backends (requests go here instead of h1). */
  readonly h2?: H2Pool;
  /** Pooled QUIC connections for protocol "h3" backends. */
  readonly h3?: H3Pool;
  /**
   * Its upstream latency histogram series, looked up once (src/http/proxy.ts): with several
   * backends the family's last-series cache misses on every request and builds a key.
   */
  latency?: { observe(seconds: number): void };
  /**
   * L4 sessions open to it (TCP relays, UDP sessions): they hold a connection or socket of
   * their own, outside the HTTP pools, and least_connections must see them.
   */
  l4Sessions: number;
}

/**
 * An L4 session (TCP relay, UDP session) starts on `b`: it counts as a request in flight
 * (least_request, p2c, ewma) and as an open connection (least_connections). Returns its end,
 * to be called once.
 */
export function startL4Session(b: BackendRuntime): () => void {
  b.stats.inFlight++;
  b.l4Sessions++;
  return () => {
    b.stats.inFlight--;
    b.l4Sessions--;
  };
}

export interface PoolRuntime {
  readonly name: string;
  readonly config: PoolConfig;
  readonly picker: Picker;
  readonly backends: ReadonlyMap<string, BackendRuntime>;
}

export class BackendRegistry {
  #backends = new Map<string, BackendRuntime>();

  get size(): number {
    return this.#backends.size;
  }

  all(): Iterable<BackendRuntime> {
    return this.#backends.values();
  }

  /** Builds the pools of a snapshot, reusing state of backends that stay. */
  async build(snapshot: ConfigSnapshot): Promise<Map<string, PoolRuntime>> {
    const pools = new Map<string, PoolRuntime>();
    const next = new Map<string, BackendRuntime>();
    for (const p of snapshot.config.pools) {
      const runtimes = new Map<string, BackendRuntime>();
      const endpoints: Endpoint[] = [];
      for (const b of p.backends) {
        const key = backendKey(p.name, b);
        const isH2 = b.protocol === "h2" || b.protocol === "h2c";
        const useTls = b.tls !== undefined || b.protocol === "h2";
        const target = await connectTarget(b, useTls, useTls ? [isH2 ? "h2" : "http/1.1"] : undefined);
        const isH3 = b.protocol === "h3";
        const h3Target: H3Target | undefined = isH3 ? await h3TargetOf(b) : undefined;
        const limits = {
          maxIdle: p.max_idle_per_backend,
          maxTotal: p.max_connections_per_backend,
          idleTimeoutMs: p.idle_timeout,
          connectTimeoutMs: p.connect_timeout,
        };
        let rt = this.#backends.get(key) ?? next.get(key);
        if (rt) {
          rt.config = b;
          rt.h1.target = target;
          rt.h1.limits = limits;
          if (rt.h2) {
            rt.h2.target = target;
            rt.h2.limits = limits;
          }
          if (rt.h3) {
            rt.h3.target = h3Target!;
            rt.h3.limits = limits;
          }
        } else {
          const h1 = new H1Pool(key, target, limits);
          const h2 = isH2 ? new H2Pool(key, target, limits) : undefined;
          const h3 = isH3 ? new H3Pool(key, h3Target!, limits) : undefined;
          const stats = newEndpointStats();
          const made: BackendRuntime = {
            key,
            pool: p.name,
            config: b,
            stats,
            h1,
            h2,
            h3,
            latency: undefined,
            l4Sessions: 0,
          };
          // least_connections reads open upstream connections straight from the pool, and the L4
          // sessions (which do not use the pools) from the runtime.
          Object.defineProperty(stats, "connections", {
            get: () => (h3 ?? h2 ?? h1).open + made.l4Sessions,
            enumerable: true,
          });
          rt = made;
        }
        next.set(key, rt);
        runtimes.set(key, rt);
        endpoints.push({ key, address: b.address, weight: b.weight, stats: rt.stats });
      }
      pools.set(p.name, {
        name: p.name,
        config: p,
        picker: createPicker(p.algorithm, endpoints, {
          hashKey: p.hash_key,
          maglevTableSize: p.maglev_table_size,
          ringVirtualNodes: p.ring_virtual_nodes,
          ewmaDecayMs: p.ewma_decay,
          affinityCookie: p.affinity_cookie,
        }),
        backends: runtimes,
      });
    }
    return pools;
  }

  /** Makes `next` current; backends no longer present stop pooling (in-flight work finishes). */
  commit(pools: Map<string, PoolRuntime>): BackendRuntime[] {
    const next = new Map<string, BackendRuntime>();
    for (const p of pools.values()) for (const [k, b] of p.backends) next.set(k, b);
    const removed: BackendRuntime[] = [];
    for (const [k, b] of this.#backends) {
      if (!next.has(k)) {
        b.h1.close();
        b.h2?.close();
        b.h3?.close();
        removed.push(b);
      }
    }
    this.#backends = next;
    return removed;
  }

  closeAll(): void {
    for (const b of this.#backends.values()) {
      b.h1.close();
      b.h2?.close();
      b.h3?.close();
    }
  }
}
