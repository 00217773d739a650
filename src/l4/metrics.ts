/** Metric families of the L4 (TCP and UDP) listeners, registered on the data-plane registry. */

import type { Counter, Gauge, Registry } from "../observability/metrics.ts";

const P = "expressgateway_l4_";

export interface L4Metrics {
  sessionsActive: Gauge;
  bytesUp: Counter;
  bytesDown: Counter;
  failures: Counter;
  idleTimeouts: Counter;
  datagramsUp: Counter;
  datagramsDown: Counter;
  udpDrops: Counter;
}

export function l4Metrics(r: Registry): L4Metrics {
  return {
    sessionsActive: r.gauge(`${P}sessions_active`, "Open TCP relays or UDP sessions, by listener.", [
      "listener",
    ]),
    bytesUp: r.counter(`${P}client_to_backend_bytes_total`, "Bytes relayed from clients to backends.", [
      "listener",
    ]),
    bytesDown: r.counter(`${P}backend_to_client_bytes_total`, "Bytes relayed from backends to clients.", [
      "listener",
    ]),
    failures: r.counter(
      `${P}failures_total`,
      "TCP relay failures: connect (per failed connect attempt), no_pool, no_backend.",
      [
        "listener",
        "reason",
      ],
    ),
    idleTimeouts: r.counter(`${P}idle_timeouts_total`, "Sessions closed by the idle timeout.", ["listener"]),
    datagramsUp: r.counter(`${P}datagrams_to_backend_total`, "UDP datagrams relayed to backends.", [
      "listener",
    ]),
    datagramsDown: r.counter(`${P}datagrams_to_client_total`, "UDP datagrams relayed back to clients.", [
      "listener",
    ]),
    udpDrops: r.counter(
      `${P}udp_drops_total`,
      "UDP datagrams dropped (session_cap, no_backend, send_failed, oversize).",
      [
        "listener",
        "reason",
      ],
    ),
  };
}
