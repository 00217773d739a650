/**
 * The process and heap families read live values at each collect: resident memory and heap
 * sizes are this process's, CPU seconds only go up (and do go up when CPU is spent), and the
 * start time is when this process began.
 */

import assert from "node:assert/strict";
import process from "node:process";
import { type CollectedFamily, Registry } from "../../../src/observability/metrics.ts";
import { registerHeapMetrics, registerProcessMetrics } from "../../../src/observability/process_metrics.ts";

function value(families: CollectedFamily[], name: string): number {
  const fam = families.find((f) => f.name === name);
  assert.ok(fam, `${name} registered`);
  assert.equal(fam.series.length, 1, `${name}: one unlabelled series`);
  return fam.series[0].value;
}

Deno.test("process metrics: RSS, CPU seconds that grow with work, start time", () => {
  const r = new Registry();
  registerProcessMetrics(r);
  const first = r.collect();
  const rss = value(first, "process_resident_memory_bytes");
  assert.ok(rss > 10 * 1024 * 1024 && rss < 64 * 1024 ** 3, `RSS ${rss} is a process's`);
  const cpu0 = value(first, "process_cpu_seconds_total");
  assert.ok(cpu0 > 0, "a running Deno has spent some CPU");
  // Burn 20 ms of CPU as the process itself counts it (bounded: 10 s of wall time on a busy
  // machine), then the counter must show it.
  const cpuNow = () => (process.cpuUsage().user + process.cpuUsage().system) / 1e6;
  const from = cpuNow(), until = performance.now() + 10_000;
  let x = 0;
  while (cpuNow() < from + 0.02 && performance.now() < until) {
    for (let i = 0; i < 10_000; i++) x += Math.sqrt(x + i);
  }
  assert.ok(x > 0);
  const cpu1 = value(r.collect(), "process_cpu_seconds_total");
  assert.ok(cpu1 >= cpu0 + 0.02, `CPU seconds ${cpu0} → ${cpu1} after 20 ms of work`);
  // Registering again on the same registry (same family) does not count the CPU twice.
  registerProcessMetrics(r);
  const cpu2 = value(r.collect(), "process_cpu_seconds_total");
  assert.ok(
    cpu2 >= cpu1 && cpu2 < cpuNow() + 0.001,
    `CPU seconds ${cpu2} not above the process's ${cpuNow()}`,
  );
  const start = value(first, "process_start_time_seconds");
  const now = Date.now() / 1000;
  assert.ok(start <= now && start > now - 600, `start ${start} is this process's (now ${now})`);
  assert.equal(value(r.collect(), "process_start_time_seconds"), start, "the start time does not move");
});

Deno.test("heap metrics: used ≤ reserved, and allocation shows in heap used", () => {
  const r = new Registry();
  registerHeapMetrics(r);
  const before = r.collect();
  const used0 = value(before, "expressgateway_heap_used_bytes");
  assert.ok(used0 > 0 && used0 <= value(before, "expressgateway_heap_size_bytes"));
  assert.ok(value(before, "expressgateway_heap_external_bytes") >= 0);
  // ~25 MB of live objects: more than the garbage a collection meanwhile could take from `used0`.
  const keep = Array.from({ length: 1_000_000 }, (_, i) => ({ i }));
  const used1 = value(r.collect(), "expressgateway_heap_used_bytes");
  assert.ok(
    used1 > used0 + 8 * 1024 * 1024,
    `heap used ${used0} → ${used1} with ${keep.length} objects live`,
  );
});
