/**
 * Health for every backend of every pool: schedules active probes (interval + jitter,
 * bounded by timeout), takes passive results from live traffic, and publishes one verdict per
 * backend that the picker filter reads (HealthView). State is keyed by backend identity, so a
 * reload keeps the state of unchanged backends and only starts/stops probes for the rest.
 * Owned by the control side; data planes only read verdicts and report passive results.
 */

import { backendKey, type ConfigSnapshot, type PoolConfig } from "../config/types.ts";
import type { Logger } from "../observability/log.ts";
import type { Counter, Gauge } from "../observability/metrics.ts";
import { connectTarget } from "../net/connect.ts";
import { h3TargetOf } from "../http/h3/client.ts";
import { h3Probe, parseStatusRanges, type ProbeSpec, runProbe } from "./probe.ts";
import { BackendHealth, type Transition } from "./state.ts";

export interface HealthMetrics {
  backendUp: Gauge;
  transitions: Counter;
  ejections: Counter;
  poolPanic: Gauge;
  probes: Counter;
}

interface Entry {
  key: string;
  pool: string;
  address: string;
  health: BackendHealth;
  probe?: { spec: ProbeSpec; interval: number; jitter: number; timeout: number; fingerprint: string };
  timer?: ReturnType<typeof setTimeout>;
  probing: boolean;
  generation: number;
}

export interface BackendStatus {
  key: string;
  pool: string;
  address: string;
  up: boolean;
  active_up: boolean;
  ejected_until?: string;
  times_ejected: number;
  reason: string;
  last_check?: { at: string; ok: boolean; detail: string };
}

export class HealthManager {
  readonly #entries = new Map<string, Entry>();
  #pools = new Map<string, { config: PoolConfig; keys: string[]; panic: boolean }>();
  #generation = 0;
  #snapshot: ConfigSnapshot | undefined;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #stopped = false;
  /** Called on every verdict change (data-plane workers subscribe here). */
  onChange: ((key: string, up: boolean) => void) | undefined;

  constructor(private readonly log: Logger, private readonly metrics: HealthMetrics) {}

  /** Follows a snapshot: new backends get fresh state, kept ones keep theirs, removed ones stop. */
  apply(snapshot: ConfigSnapshot): void {
    this.#snapshot = snapshot;
    const gen = ++this.#generation;
    const pools = new Map<string, { config: PoolConfig; keys: string[]; panic: boolean }>();
    for (const p of snapshot.config.pools) {
      const keys: string[] = [];
      for (const b of p.backends) {
        const key = backendKey(p.name, b);
        keys.push(key);
        const active = p.health ? { rise: p.health.rise, fall: p.health.fall } : undefined;
        const outlier = p.outlier
          ? {
            consecutive5xx: p.outlier.consecutive_5xx,
            consecutiveFailures: p.outlier.consecutive_failures,
            baseEjectionMs: p.outlier.base_ejection_time,
            maxEjectionMs: p.outlier.max_ejection_time,
          }
          : undefined;
        let e = this.#entries.get(key);
        if (!e) {
          e = {
            key,
            pool: p.name,
            address: b.address,
            health: new BackendHealth(active, outlier),
            probing: false,
            generation: gen,
          };
          this.#entries.set(key, e);
          this.metrics.backendUp.with(p.name, b.address).set(1);
        } else {
          e.health.active = active;
          e.health.outlier = outlier;
          e.generation = gen;
          if (!active) e.health.activeUp = true; // checks removed: the active verdict no longer applies
        }
        const hc = p.health;
        if (hc) {
          const host = hc.host ?? b.host_header ?? b.address;
          const spec: ProbeSpec = hc.kind === "tcp"
            ? { kind: "tcp" }
            : hc.kind === "grpc"
            ? { kind: "grpc", service: hc.grpc_service, authority: host }
            : {
              kind: "http",
              method: hc.method,
              path: hc.path,
              host,
              expected: parseStatusRanges(hc.expected_status)!,
              bodyContains: hc.body_contains,
              // h2 / h2c backends are probed the way requests reach them.
              h2: b.protocol === "h2" || b.protocol === "h2c",
            };
          const fingerprint = JSON.stringify([spec, hc.interval, hc.jitter, hc.timeout, b.tls ?? null]);
          const changed = e.probe?.fingerprint !== fingerprint;
          e.probe = { spec, interval: hc.interval, jitter: hc.jitter, timeout: hc.timeout, fingerprint };
          // A new or changed probe starts soon (spread over up to 1 s), an unchanged one keeps its rhythm.
          if (changed || !e.timer) {
            this.#schedule(e, changed ? Math.random() * Math.min(hc.interval, 1000) : undefined);
          }
        } else if (e.probe) {
          e.probe = undefined;
          if (e.timer) clearTimeout(e.timer);
          e.timer = undefined;
        }
      }
      pools.set(p.name, { config: p, keys, panic: this.#pools.get(p.name)?.panic ?? false });
    }
    for (const [key, e] of this.#entries) {
      if (e.generation !== gen) {
        if (e.timer) clearTimeout(e.timer);
        this.#entries.delete(key);
        // A removed backend's series go with it: label cardinality stays bounded by the config.
        const id = { pool: e.pool, backend: e.address };
        for (
          const fam of [
            this.metrics.backendUp,
            this.metrics.transitions,
            this.metrics.ejections,
            this.metrics.probes,
          ]
        ) {
          fam.removeMatching(id);
        }
      }
    }
    this.#pools = pools;
    for (const name of pools.keys()) this.#updatePanic(name);
    this.#ensureTicker();
  }

  #schedule(e: Entry, firstDelay?: number): void {
    if (e.timer) clearTimeout(e.timer);
    const p = e.probe;
    if (!p || this.#stopped) return;
    const delay = firstDelay ?? p.interval + Math.random() * p.jitter;
    e.timer = setTimeout(() => this.#probeOnce(e), delay);
  }

  async #probeOnce(e: Entry): Promise<void> {
    e.timer = undefined;
    const p = e.probe;
    if (!p || this.#stopped || this.#entries.get(e.key) !== e || e.probing) return;
    e.probing = true;
    try {
      const pool = this.#snapshot?.config.pools.find((x) => x.name === e.pool);
      const b = pool?.backends.find((x) => backendKey(e.pool, x) === e.key);
      if (!b) return;
      let r;
      if (b.protocol === "h3") r = await h3Probe(await h3TargetOf(b), p.spec, p.timeout);
      else {
        const isH2 = b.protocol === "h2" || b.protocol === "h2c";
        const useTls = b.tls !== undefined || b.protocol === "h2";
        const target = await connectTarget(b, useTls, useTls && isH2 ? ["h2"] : undefined);
        r = await runProbe(target, p.spec, p.timeout);
      }
      this.metrics.probes.with(e.pool, e.address, r.ok ? "pass" : "fail").inc();
      this.#record(e, e.health.probe(r.ok, r.detail, Date.now()));
    } catch (err) {
      this.#record(e, e.health.probe(false, err instanceof Error ? err.message : String(err), Date.now()));
    } finally {
      e.probing = false;
      if (this.#entries.get(e.key) === e && e.probe && !e.timer) this.#schedule(e);
    }
  }

  isHealthy = (key: string): boolean => {
    const e = this.#entries.get(key);
    if (e === undefined) return true;
    return e.health.isUsableNow(); // asked twice per request
  };

  /** A live request on `key` ended with `status` (0: no response — connect failure or timeout). */
  observe = (key: string, status: number): void => {
    const e = this.#entries.get(key);
    if (!e || !e.health.outlier) return;
    const wasEjections = e.health.timesEjected;
    const t = e.health.passive(status, Date.now(), this.#mayEject(e));
    if (e.health.timesEjected !== wasEjections) {
      this.metrics.ejections.with(e.pool, e.address).inc();
    }
    this.#record(e, t);
  };

  #mayEject(e: Entry): boolean {
    const pool = this.#pools.get(e.pool);
    if (!pool?.config.outlier) return false;
    const now = Date.now();
    let ejected = 0;
    for (const k of pool.keys) {
      const x = this.#entries.get(k);
      if (x && now < x.health.ejectedUntil) ejected++;
    }
    return (ejected + 1) * 100 <= pool.keys.length * pool.config.outlier.max_ejection_percent;
  }

  #record(e: Entry, t: Transition): void {
    if (!t) return;
    this.metrics.backendUp.with(e.pool, e.address).set(t.up ? 1 : 0);
    this.metrics.transitions.with(e.pool, e.address, t.up ? "up" : "down").inc();
    this.log.warn(t.up ? "backend up" : "backend down", {
      pool: e.pool,
      backend: e.address,
      reason: t.reason,
    });
    this.onChange?.(e.key, t.up);
    this.#updatePanic(e.pool);
  }

  /** Panic: too few healthy backends → the pool picks among all (select.ts), said here once per edge. */
  #updatePanic(poolName: string): void {
    const pool = this.#pools.get(poolName);
    if (!pool) return;
    const healthy = pool.keys.filter((k) => this.isHealthy(k)).length;
    const threshold = pool.config.panic_threshold;
    const panic = pool.keys.length > 0 && healthy * 100 < pool.keys.length * threshold;
    this.metrics.poolPanic.with(poolName).set(panic ? 1 : 0);
    if (panic !== pool.panic) {
      pool.panic = panic;
      if (panic) {
        this.log.error("pool in panic mode: too few healthy backends, picking among all", {
          pool: poolName,
          healthy,
          total: pool.keys.length,
          panic_threshold_percent: threshold,
        });
      } else this.log.info("pool left panic mode", { pool: poolName, healthy, total: pool.keys.length });
    }
  }

  /** Ejections end by time; this tick turns those into transitions (log, gauge, panic). */
  #ensureTicker(): void {
    if (this.#ticker !== undefined) return;
    this.#ticker = setInterval(() => {
      const now = Date.now();
      for (const e of this.#entries.values()) {
        if (e.health.ejectedUntil > 0) this.#record(e, e.health.edge(now));
      }
    }, 250);
    Deno.unrefTimer(this.#ticker);
  }

  status(): BackendStatus[] {
    const now = Date.now();
    return [...this.#entries.values()].map((e) => ({
      key: e.key,
      pool: e.pool,
      address: e.address,
      up: e.health.isUsable(now),
      active_up: e.health.activeUp,
      ejected_until: now < e.health.ejectedUntil ? new Date(e.health.ejectedUntil).toISOString() : undefined,
      times_ejected: e.health.timesEjected,
      reason: e.health.lastReason,
      last_check: e.health.lastCheck
        ? {
          at: new Date(e.health.lastCheck.at).toISOString(),
          ok: e.health.lastCheck.ok,
          detail: e.health.lastCheck.detail,
        }
        : undefined,
    }));
  }

  stop(): void {
    this.#stopped = true;
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    for (const e of this.#entries.values()) if (e.timer) clearTimeout(e.timer);
  }
}
