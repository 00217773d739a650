/**
 * Balancer micro-benchmark: picks per second of every algorithm at 3, 30 and 300 backends,
 * measured through selectEndpoint (the per-request hot path: panic check, ranking, health
 * check, pick count), all backends healthy (weights 1, 2, 3 in turn), each request completing
at once. Hash-based
 * algorithms see 1024 distinct client IPs in turn. Numbers, not assertions.
 *
 *   deno run scripts/bench_balancer.ts
 */

import { ALGORITHMS } from "../src/config/schema.ts";
import type { Algorithm } from "../src/config/types.ts";
import { createPicker, observeLatency, selectEndpoint } from "../src/balancer/index.ts";
import { type Endpoint, newEndpointStats, type PickRequest } from "../src/balancer/picker.ts";

const SIZES = [3, 30, 300] as const;
const MAX_PICKS = 200_000;
const MAX_MS = 2_000;
const WARMUP_PICKS = 20_000;

function endpoints(n: number): Endpoint[] {
  return Array.from({ length: n }, (_, i) => {
    const key = `bench/h1://10.0.${i >> 8}.${i & 255}:8080`;
    const stats = newEndpointStats();
    // A latency sample, so ewma computes real (decaying) costs rather than the unsampled default.
    observeLatency(stats, 5 + (i % 7), performance.now());
    return { key, address: key.slice(key.indexOf("//") + 2), weight: 1 + (i % 3), stats };
  });
}

function requests(count: number): PickRequest[] {
  return Array.from({ length: count }, (_, i) => ({
    clientIp: `198.51.${(i >> 8) & 255}.${i & 255}`,
    header: () => undefined,
    cookie: () => undefined,
  }));
}

/** Picks per second for one algorithm at one pool size. */
export function measure(algorithm: Algorithm, size: number): number {
  const picker = createPicker(algorithm, endpoints(size));
  const reqs = requests(1024);
  const healthy = new Set(picker.endpoints.map((e) => e.key));
  const opts = { isHealthy: (key: string) => healthy.has(key), panicThreshold: 0.5 };
  const run = (picks: number, deadline: number): number => {
    let done = 0;
    while (done < picks) {
      for (let k = 0; k < 1024 && done < picks; k++, done++) {
        const sel = selectEndpoint(picker, reqs[k], opts)!;
        const stats = sel.endpoint.stats;
        stats.inFlight++;
        stats.inFlight--;
      }
      if (performance.now() > deadline) break;
    }
    return done;
  };
  run(WARMUP_PICKS, performance.now() + MAX_MS);
  const start = performance.now();
  const done = run(MAX_PICKS, start + MAX_MS);
  const elapsed = performance.now() - start;
  return done / (elapsed / 1000);
}

function format(perSecond: number): string {
  return Math.round(perSecond).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** The results as a markdown table of picks/s. */
export function runBalancerBench(): Promise<string> {
  const lines = [
    `| algorithm | ${SIZES.join(" | ")} |`,
    `| --- | ${SIZES.map(() => "---:").join(" | ")} |`,
  ];
  for (const algorithm of ALGORITHMS) {
    lines.push(`| ${algorithm} | ${SIZES.map((n) => format(measure(algorithm, n))).join(" | ")} |`);
  }
  return Promise.resolve(lines.join("\n"));
}

if (import.meta.main) {
  console.log(`picks/s through selectEndpoint (backends: ${SIZES.join(", ")})\n`);
  console.log(await runBalancerBench());
}
