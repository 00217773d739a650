/** Test helpers for the balancer suites: a seeded PRNG, endpoints and requests. */

import { type Endpoint, newEndpointStats, type PickRequest } from "../../../src/balancer/picker.ts";

/** mulberry32 (Tommy Ettinger): a tiny seeded PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Backend key as the gateway spells it. */
export function backendKey(i: number, pool = "api"): string {
  return `${pool}/h1://10.0.${i >> 8}.${i & 255}:8080`;
}

export function makeEndpoint(i: number, weight = 1, pool = "api"): Endpoint {
  const key = backendKey(i, pool);
  return { key, address: key.slice(key.indexOf("//") + 2), weight, stats: newEndpointStats() };
}

export function makeEndpoints(weights: readonly number[], pool = "api"): Endpoint[] {
  return weights.map((w, i) => makeEndpoint(i, w, pool));
}

/** Same key and stats, new object: what a reload builds for a backend it keeps. */
export function rebuilt(e: Endpoint, weight = e.weight): Endpoint {
  return { key: e.key, address: e.address, weight, stats: e.stats };
}

export function request(
  clientIp: string,
  headers: Record<string, string> = {},
  cookies: Record<string, string> = {},
): PickRequest {
  return {
    clientIp,
    header: (name) => headers[name],
    cookie: (name) => cookies[name],
  };
}

/** `count` distinct client IPs (IPv4 and IPv6 mixed) drawn from `rand`. */
export function distinctIps(count: number, rand: () => number): string[] {
  const seen = new Set<string>();
  while (seen.size < count) {
    const r = Math.floor(rand() * 0x100000000);
    if (rand() < 0.8) {
      seen.add(`${r >>> 24}.${(r >>> 16) & 255}.${(r >>> 8) & 255}.${r & 255}`);
    } else {
      seen.add(`2001:db8::${(r >>> 16).toString(16)}:${(r & 0xffff).toString(16)}`);
    }
  }
  return [...seen];
}

/** Percentage-point shares of `counts`. */
export function shares(counts: readonly number[]): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => (100 * c) / total);
}

export const ALWAYS_HEALTHY = { isHealthy: () => true, panicThreshold: 0.5 };
