/**
 * Every metric family the data plane and the control plane register, in one place so
 * docs/METRICS.md can be checked against it. Label cardinality is bounded by the config:
 * listeners, routes, pools and backends are operator-defined; status is a class (2xx…).
 */

import { type Counter, type Gauge, type Histogram, Registry } from "./metrics.ts";
import { registerHeapMetrics, registerProcessMetrics } from "./process_metrics.ts";

const P = "expressgateway_";

export class DataPlaneMetrics {
  readonly requests: Counter;
  readonly requestSeconds: Histogram;
  readonly upstreamSeconds: Histogram;
  readonly connectionsActive: Gauge;
  readonly connectionsTotal: Counter;
  readonly bytesReceived: Counter;
  readonly bytesSent: Counter;
  readonly guardRejections: Counter;
  readonly protocolEvents: Counter;
  readonly upstreamErrors: Counter;
  readonly retries: Counter;
  readonly inFlight: Gauge;
  readonly poolConnections: Gauge;
  readonly upstreamConnects: Counter;
  readonly upstreamProtocolEvents: Counter;
  readonly backendPicks: Counter;
  readonly backendInFlight: Gauge;
  readonly backendEwma: Gauge;
  readonly drainCutoff: Counter;
  readonly tunnelsTotal: Counter;
  readonly tunnelsActive: Gauge;
  readonly tunnelCloses: Counter;

  constructor(readonly registry: Registry = new Registry()) {
    const r = registry;
    registerHeapMetrics(r);
    this.requests = r.counter(
      `${P}requests_total`,
      "Requests answered, by listener, route, pool and status class.",
      [
        "listener",
        "route",
        "pool",
        "status",
      ],
    );
    this.requestSeconds = r.histogram(
      `${P}request_duration_seconds`,
      "Time from request head to response end, by listener.",
      [
        "listener",
      ],
    );
    this.upstreamSeconds = r.histogram(
      `${P}upstream_response_seconds`,
      "Time from forwarding to the upstream response head.",
      [
        "pool",
        "backend",
      ],
    );
    this.connectionsActive = r.gauge(`${P}connections_active`, "Open client connections, by listener.", [
      "listener",
    ]);
    this.connectionsTotal = r.counter(`${P}connections_total`, "Client connections accepted, by listener.", [
      "listener",
    ]);
    this.bytesReceived = r.counter(
      `${P}received_bytes_total`,
      "Bytes received from clients (heads and bodies), by listener.",
      [
        "listener",
      ],
    );
    this.bytesSent = r.counter(`${P}sent_bytes_total`, "Bytes sent to clients, by listener.", ["listener"]);
    this.guardRejections = r.counter(
      `${P}guard_rejections_total`,
      "Connections or requests refused by a guard (listener_cap, per_ip_cap, in_flight_cap).",
      ["listener", "reason"],
    );
    this.protocolEvents = r.counter(
      `${P}protocol_events_total`,
      "Timeouts and protocol errors on client connections (header_timeout, body_timeout, idle_timeout, parse_error, …).",
      ["listener", "event"],
    );
    this.upstreamErrors = r.counter(
      `${P}upstream_errors_total`,
      "Failed upstream exchanges, by pool, backend and kind.",
      [
        "pool",
        "backend",
        "kind",
      ],
    );
    this.retries = r.counter(`${P}upstream_retries_total`, "Requests retried on another backend, by pool.", [
      "pool",
    ]);
    this.inFlight = r.gauge(`${P}in_flight_requests`, "Requests in flight across all listeners.");
    this.poolConnections = r.gauge(
      `${P}upstream_connections`,
      "Upstream connections per backend, by state (open, idle).",
      [
        "pool",
        "backend",
        "state",
      ],
    );
    this.upstreamConnects = r.counter(
      `${P}upstream_connects_total`,
      "Upstream connections opened per backend (with backend_picks_total: how often a request found one to reuse).",
      ["pool", "backend"],
    );
    this.upstreamProtocolEvents = r.counter(
      `${P}upstream_protocol_events_total`,
      "Protocol errors of HTTP/2 and HTTP/3 backends (h2_*, h3_* events: what the backend sent that the gateway refused).",
      ["pool", "backend", "event"],
    );
    this.backendPicks = r.counter(`${P}backend_picks_total`, "Times the balancer picked each backend.", [
      "pool",
      "backend",
    ]);
    this.backendInFlight = r.gauge(`${P}backend_in_flight`, "Requests in flight per backend.", [
      "pool",
      "backend",
    ]);
    this.backendEwma = r.gauge(`${P}backend_ewma_seconds`, "Peak-EWMA of upstream latency per backend.", [
      "pool",
      "backend",
    ]);
    this.drainCutoff = r.counter(
      `${P}drain_cutoff_total`,
      "Connections still busy when the drain timeout ended them.",
    );
    this.tunnelsTotal = r.counter(
      `${P}tunnels_total`,
      "Tunnels opened (kind: websocket, connect), by listener.",
      ["listener", "kind"],
    );
    this.tunnelsActive = r.gauge(`${P}tunnels_active`, "Tunnels open now, by listener and kind.", [
      "listener",
      "kind",
    ]);
    this.tunnelCloses = r.counter(
      `${P}tunnel_closes_total`,
      "Tunnels ended, by listener, kind and reason (closed, error, idle_timeout, max_lifetime, drain, backend_removed).",
      ["listener", "kind", "reason"],
    );
  }
}

export class ControlMetrics {
  readonly reloads: Counter;
  readonly reloadFailures: Counter;
  readonly configGeneration: Gauge;
  readonly configLoadedAt: Gauge;
  readonly certReloads: Counter;
  readonly certExpiry: Gauge;
  readonly info: Gauge;
  /** Config sources (src/control): the etcd revision in use and the ones refused. */
  readonly configRevisionApplied: Gauge;
  readonly configRevisionRejected: Counter;
  readonly controlSourceUp: Gauge;
  readonly controlWatchRestarts: Counter;

  constructor(readonly registry: Registry) {
    const r = registry;
    registerProcessMetrics(r);
    this.reloads = r.counter(`${P}config_reloads_total`, "Config reloads applied.");
    this.reloadFailures = r.counter(
      `${P}config_reload_failures_total`,
      "Config reloads rejected (the old snapshot kept serving).",
    );
    this.configGeneration = r.gauge(`${P}config_generation`, "Generation of the config snapshot in use.");
    this.configLoadedAt = r.gauge(
      `${P}config_loaded_timestamp_seconds`,
      "When the config in use was loaded (Unix time).",
    );
    this.certReloads = r.counter(`${P}tls_certificate_reloads_total`, "TLS certificate reloads, by result.", [
      "result",
    ]);
    this.certExpiry = r.gauge(
      `${P}tls_certificate_expiry_timestamp_seconds`,
      "notAfter (Unix time) of the leaf certificate in each certificate file a TLS listener serves.",
      ["listener", "file"],
    );
    this.info = r.gauge(`${P}build_info`, "Build information; value is always 1.", ["version"]);
    this.configRevisionApplied = r.gauge(
      `${P}config_revision_applied`,
      "etcd mod_revision of the config document in use (0 with the file source).",
    );
    this.configRevisionRejected = r.counter(
      `${P}config_revision_rejected_total`,
      "etcd config revisions not applied (invalid, or failed while applying); the last good one kept serving.",
    );
    this.controlSourceUp = r.gauge(
      `${P}control_source_up`,
      "1 while the config source (etcd) answers and the watch is established, else 0.",
    );
    this.controlWatchRestarts = r.counter(
      `${P}control_watch_restarts_total`,
      "Times the etcd watch was re-established (etcd restart, network error, compaction).",
    );
  }
}
