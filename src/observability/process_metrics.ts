/**
 * The process and V8 heap families, read when /metrics is scraped (a collect hook: nothing runs
 * between scrapes). The `process_*` names are the ones every Prometheus client library exports,
 * so the usual dashboards and alerts (memory, CPU saturation, restarts by start time) work
 * unchanged. No permission is needed: Deno.memoryUsage() and process.cpuUsage() (getrusage of
 * the whole process, every thread and worker included) are runtime calls, not file reads.
 *
 * Two owners, so nothing is counted twice when the workers' registries are summed:
 * registerProcessMetrics() goes in the control registry (one per process), and
 * registerHeapMetrics() in each data-plane registry (one per isolate that carries traffic;
 * summed over workers, and with one worker that isolate is the main one, control included).
 */

import process from "node:process";
import type { Registry } from "./metrics.ts";

const P = "expressgateway_";

export function registerProcessMetrics(r: Registry): void {
  const rss = r.gauge(
    "process_resident_memory_bytes",
    "Resident memory of the whole process (all isolates).",
  );
  const cpu = r.counter(
    "process_cpu_seconds_total",
    "User and system CPU time of the whole process (every thread).",
  );
  const start = r.gauge("process_start_time_seconds", "When the process started (Unix time).");
  start.set(Math.round(performance.timeOrigin) / 1000);
  const cpuSeries = cpu.with();
  r.onCollect(() => {
    rss.set(Deno.memoryUsage().rss);
    const u = process.cpuUsage();
    // The process's own total, not a delta: a second registration on this registry (it returns
    // the same family) cannot add it twice, and the series never goes down.
    cpuSeries.value = Math.max(cpuSeries.value, (u.user + u.system) / 1e6);
  });
}

export function registerHeapMetrics(r: Registry): void {
  const used = r.gauge(`${P}heap_used_bytes`, "V8 heap in use, summed over the data-plane isolates.");
  const size = r.gauge(`${P}heap_size_bytes`, "V8 heap reserved, summed over the data-plane isolates.");
  const external = r.gauge(
    `${P}heap_external_bytes`,
    "Memory outside the V8 heap held by its objects (buffers), summed over the data-plane isolates.",
  );
  r.onCollect(() => {
    const m = Deno.memoryUsage();
    used.set(m.heapUsed);
    size.set(m.heapTotal);
    external.set(m.external);
  });
}
