/**
 * The balancer's building blocks: hashes (pinned vectors, so the C/XDP port has something to
 * compare against), the maglev table construction, request hash keys, the peak-EWMA update
 * and selectEndpoint's edge cases.
 */

import assert from "node:assert/strict";
import { fmix32, fnv1a32, hash32, hash64Hex, requestHashKey } from "../../../src/balancer/hash.ts";
import { isPrime, maglevTable } from "../../../src/balancer/maglev.ts";
import { ewmaEstimate, observeLatency, UNSAMPLED_EWMA_MS } from "../../../src/balancer/ewma.ts";
import { computePanic, createPicker, selectEndpoint } from "../../../src/balancer/index.ts";
import { type Endpoint, newEndpointStats, type Picker } from "../../../src/balancer/picker.ts";
import { ALWAYS_HEALTHY, makeEndpoints, mulberry32, request } from "./helpers.ts";

Deno.test("hash: FNV-1a 32/64 match the published test vectors", () => {
  assert.equal(fnv1a32(""), 0x811c9dc5);
  assert.equal(fnv1a32("a"), 0xe40c292c);
  assert.equal(fnv1a32("foobar"), 0xbf9cf968);
  assert.equal(hash64Hex(""), "cbf29ce484222325");
  assert.equal(hash64Hex("a"), "af63dc4c8601ec8c");
  assert.equal(hash64Hex("foobar"), "85944171f73967e8");
  // hash32 = fmix32(FNV-1a 32 with the seed XORed into the basis); values checked against the C in hash.ts.
  assert.equal(hash32("a"), 0x1a80b1b3);
  assert.equal(hash32("a", 0x9e3779b9), 0x493cefa9);
  assert.equal(hash32("a"), fmix32(fnv1a32("a")));
});

Deno.test("hash: the inline UTF-8 encoding equals TextEncoder's, surrogates included", () => {
  const reference = (s: string, seed: number) => {
    let h = (0x811c9dc5 ^ seed) | 0;
    for (const b of new TextEncoder().encode(s)) h = Math.imul(h ^ b, 0x01000193);
    return h >>> 0;
  };
  const rand = mulberry32(21);
  const samples = [
    "",
    "plain",
    "héllo",
    "日本語",
    "emoji 🎉 ok",
    "lone \ud800 high",
    "lone \udc00 low",
    "end \ud83d",
  ];
  for (let k = 0; k < 300; k++) {
    samples.push(String.fromCharCode(...[...Array(1 + (k % 12))].map(() => Math.floor(rand() * 0x10000))));
  }
  for (const s of samples) {
    for (const seed of [0, 0x9e3779b9]) assert.equal(fnv1a32(s, seed), reference(s, seed), JSON.stringify(s));
  }
});

Deno.test("maglev table: pinned small tables (the C reference in maglev.ts prints the same)", () => {
  assert.deepEqual([...maglevTable(["a", "b", "c"], [1, 1, 1], 7)], [0, 2, 0, 2, 1, 1, 0]);
  const keys = ["api/h1://10.0.0.1:8080", "api/h1://10.0.0.2:8080", "api/h1://10.0.0.3:8080"];
  assert.deepEqual([...maglevTable(keys, [1, 2, 3], 13)], [2, 1, 2, 1, 1, 0, 1, 2, 2, 2, 0, 2, 2]);
});

Deno.test("maglev table: every slot filled, each weight's share within n+1 slots", () => {
  const rand = mulberry32(22);
  for (const size of [251, 4099, 65537]) {
    const n = 1 + Math.floor(rand() * 40);
    const keys = [...Array(n)].map((_, i) => `pool/h1://192.0.2.${i}:80`);
    const weights = keys.map(() => 1 + Math.floor(rand() * 10));
    const table = maglevTable(keys, weights, size);
    const counts = new Array<number>(n).fill(0);
    for (const i of table) {
      assert.ok(i >= 0 && i < n);
      counts[i]++;
    }
    const total = weights.reduce((a, b) => a + b, 0);
    for (let i = 0; i < n; i++) {
      assert.ok(Math.abs(counts[i] - (size * weights[i]) / total) <= n + 1, `size ${size}, endpoint ${i}`);
    }
  }
  assert.deepEqual([...maglevTable([], [], 7)], [-1, -1, -1, -1, -1, -1, -1]);
  assert.throws(() => maglevTable(["a"], [1.5], 7), /positive integer/);
  assert.throws(() => maglevTable(["a"], [1], 9), /prime/);
});

Deno.test("isPrime", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 9, 25, 65536, 65537, 1.5].map(isPrime), [
    false,
    false,
    true,
    true,
    false,
    true,
    false,
    false,
    false,
    true,
    false,
  ]);
});

Deno.test("requestHashKey: header, cookie, client_ip, and the client IP when missing", () => {
  const req = request("203.0.113.9", { "x-user": "alice", "x-empty": "" }, { sid: "s-1", SID: "upper" });
  assert.equal(requestHashKey(req, "header:X-User"), "alice");
  assert.equal(requestHashKey(req, "header:x-missing"), "203.0.113.9");
  assert.equal(requestHashKey(req, "header:x-empty"), "203.0.113.9");
  assert.equal(requestHashKey(req, "cookie:sid"), "s-1");
  assert.equal(requestHashKey(req, "cookie:SID"), "upper", "cookie names are case-sensitive");
  assert.equal(requestHashKey(req, "cookie:none"), "203.0.113.9");
  assert.equal(requestHashKey(req, "client_ip"), "203.0.113.9");
  assert.equal(requestHashKey(req, undefined), "203.0.113.9");
  assert.throws(() => requestHashKey(req, "query:x"), /hash_key/);
  assert.throws(() => createPicker("maglev", makeEndpoints([1]), { hashKey: "header:" }), /hash_key/);
});

Deno.test("observeLatency: peaks replace at once, lower samples decay in by elapsed time", () => {
  const s = newEndpointStats();
  assert.equal(ewmaEstimate(s, 0), UNSAMPLED_EWMA_MS);
  observeLatency(s, 20, 1000, 10_000);
  assert.equal(s.ewmaMs, 20);
  assert.equal(s.ewmaAt, 1000);
  observeLatency(s, 100, 1001, 10_000); // peak
  assert.equal(s.ewmaMs, 100);
  observeLatency(s, 10, 1001, 10_000); // no time elapsed: alpha = 0
  assert.equal(s.ewmaMs, 100);
  observeLatency(s, 10, 11_001, 10_000); // one decay constant: 1 - 1/e of the way down
  assert.ok(Math.abs(s.ewmaMs - (100 - 90 * (1 - Math.exp(-1)))) < 1e-9, String(s.ewmaMs));
  const settled = s.ewmaMs;
  observeLatency(s, Number.NaN, 20_000);
  observeLatency(s, -1, 20_000);
  assert.equal(s.ewmaMs, settled, "invalid samples are ignored");
  // Read-time decay towards 0 without samples, without writing.
  assert.ok(Math.abs(ewmaEstimate(s, 21_001, 10_000) - settled * Math.exp(-1)) < 1e-9);
  assert.equal(s.ewmaMs, settled);
  assert.throws(() => createPicker("ewma", makeEndpoints([1]), { ewmaDecayMs: 0 }), /decay/);
});

Deno.test("computePanic: strictly below the threshold fraction", () => {
  const picker = createPicker("round_robin", makeEndpoints(new Array(10).fill(1)));
  const keys = picker.endpoints.map((e) => e.key);
  const upTo = (k: number) => (key: string) => keys.indexOf(key) < k;
  assert.equal(computePanic(picker, upTo(5), 0.5), false, "5/10 is not below 50%");
  assert.equal(computePanic(picker, upTo(4), 0.5), true);
  assert.equal(computePanic(picker, upTo(3), 0.3), false, "3/10 is not below 30% (no float slip)");
  assert.equal(computePanic(picker, upTo(0), 0), false, "threshold 0 never panics");
  assert.equal(computePanic(picker, upTo(9), 1), true, "threshold 1 panics unless all are healthy");
  assert.equal(computePanic(picker, upTo(10), 1), false);
  assert.equal(computePanic(createPicker("random", []), () => false, 0.5), false);
});

Deno.test("selectEndpoint: empty pool, no usable endpoint, panic with everything excluded", () => {
  assert.equal(selectEndpoint(createPicker("p2c", []), request("x"), ALWAYS_HEALTHY), undefined);
  const picker = createPicker("least_request", makeEndpoints([1, 1, 1]));
  const none = selectEndpoint(picker, request("x"), { isHealthy: () => false, panicThreshold: 0 });
  assert.equal(none, undefined);
  assert.equal(
    picker.endpoints.reduce((sum, e) => sum + e.stats.picks, 0),
    0,
    "nothing picked, nothing counted",
  );
  const all = new Set(picker.endpoints.map((e) => e.key));
  assert.equal(
    selectEndpoint(picker, request("x"), { isHealthy: () => true, exclude: all, panicThreshold: 0.5 }),
    undefined,
  );
  const panic = selectEndpoint(picker, request("x"), {
    isHealthy: () => false,
    exclude: all,
    panicThreshold: 0.5,
  });
  assert.ok(panic && panic.panic, "panic ignores exclusions only when they leave nothing");
});

Deno.test("selectEndpoint: counts picks once, only for the chosen endpoint", () => {
  const picker = createPicker("weighted_random", makeEndpoints([1, 2, 3]), { random: mulberry32(23) });
  for (let k = 0; k < 5; k++) [...picker.rank(request("x"))];
  assert.equal(picker.endpoints.reduce((sum, e) => sum + e.stats.picks, 0), 0, "rank() alone counts nothing");
  const chosen = new Map<string, number>();
  for (let k = 0; k < 60; k++) {
    const key = selectEndpoint(picker, request("x"), ALWAYS_HEALTHY)!.endpoint.key;
    chosen.set(key, (chosen.get(key) ?? 0) + 1);
  }
  for (const e of picker.endpoints) assert.equal(e.stats.picks, chosen.get(e.key) ?? 0);
});

Deno.test("selectEndpoint: a partial ranking falls back to a scan, and the ranking is closed", () => {
  const endpoints = makeEndpoints([1, 1, 1]);
  let closed = 0;
  const partial: Picker = {
    algorithm: "round_robin",
    endpoints,
    *rank(): Generator<Endpoint> {
      try {
        yield endpoints[0];
      } finally {
        closed++;
      }
    },
  };
  const sel = selectEndpoint(partial, request("x"), {
    isHealthy: (k) => k === endpoints[2].key,
    panicThreshold: 0,
  });
  assert.equal(sel?.endpoint, endpoints[2]);
  assert.equal(closed, 1);
  // Stopping at the first candidate also closes the ranking.
  assert.equal(selectEndpoint(partial, request("x"), ALWAYS_HEALTHY)?.endpoint, endpoints[0]);
  assert.equal(closed, 2);
});
