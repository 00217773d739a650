/**
 * Entry point of a data-plane worker (a Deno Worker: its own isolate and event loop, on its
 * own thread). It runs one DataPlane on the snapshots the control isolate sends, binds the
 * TCP/TLS listeners with reusePort next to the other workers, reads health verdicts from
 * messages and reports passive results, metrics and drain results back.
 */

/// <reference lib="deno.worker" />

import { BindError } from "../net/listener.ts";
import { flushLogs, log } from "../observability/log.ts";
import { DataPlane } from "./dataplane.ts";
import type { FromWorker, ToWorker } from "./messages.ts";
import { SharedCounters } from "./shared_counters.ts";

let plane: DataPlane | undefined;
const verdicts = new Map<string, boolean>();
let passive: Array<[string, number]> = [];
let flushTimer: ReturnType<typeof setTimeout> | undefined;

function send(m: FromWorker): void {
  self.postMessage(m);
}

/**
 * Passive results are batched (one message per 50 ms at most) while they are successes; a
 * failure goes at once, with the successes before it, so outlier ejection is not delayed by
 * the batching.
 */
function observe(key: string, status: number): void {
  passive.push([key, status]);
  if (status === 0 || status >= 500) {
    if (flushTimer !== undefined) clearTimeout(flushTimer);
    flushTimer = undefined;
    const events = passive;
    passive = [];
    send({ t: "passive", events });
    return;
  }
  if (flushTimer === undefined) {
    flushTimer = setTimeout(() => {
      flushTimer = undefined;
      const events = passive;
      passive = [];
      send({ t: "passive", events });
    }, 50);
  }
}

self.onmessage = async (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  try {
    switch (m.t) {
      case "init": {
        for (const [k, up] of m.health) verdicts.set(k, up);
        const o = m.snapshot.config.observability;
        log.configure(o.log_level, o.log_format);
        plane = new DataPlane(
          log.child({ worker: m.id }),
          undefined,
          new SharedCounters(m.counters, m.id),
          m.id,
        );
        plane.ctx.health = { isHealthy: (k) => verdicts.get(k) ?? true, observe };
        try {
          await plane.start(m.snapshot, { ports: m.ports, skipDatagram: !m.datagram });
          send({ t: "started", ports: plane.ports() });
        } catch (err) {
          send({
            t: "failed",
            error: err instanceof Error ? err.message : String(err),
            bind: err instanceof BindError,
          });
        }
        break;
      }
      case "apply": {
        const o = m.snapshot.config.observability;
        log.configure(o.log_level, o.log_format);
        await plane?.apply(m.snapshot);
        send({ t: "applied" });
        break;
      }
      case "health":
        verdicts.set(m.key, m.up);
        break;
      case "rotate":
        send({ t: "rotated", seq: m.seq, failures: plane ? await plane.rotateCertificates() : [] });
        break;
      case "collect":
        send({ t: "collected", seq: m.seq, families: plane ? plane.metrics.registry.collect() : [] });
        break;
      case "drain": {
        const cut = plane ? await plane.drain(m.timeoutMs) : 0;
        flushLogs(); // the control isolate terminates this worker next: nothing may stay buffered
        send({ t: "drained", cut });
        break;
      }
    }
  } catch (err) {
    log.error("worker message failed", {
      message: m.t,
      error: err instanceof Error ? err.message : String(err),
    });
  }
};

// The last net for this isolate, as in main.ts: a bug in one connection's path is logged.
globalThis.addEventListener("unhandledrejection", (e) => {
  e.preventDefault();
  log.error("unhandled rejection in worker (bug: please report)", {
    error: String(e.reason?.stack ?? e.reason),
  });
});
