/**
 * The config schema: one declarative table that drives parsing, defaults, unknown-key errors
 * (with did-you-mean) and the docs test that keeps docs/CONFIG.md honest. Semantic checks that
 * span tables (routes → pools, files readable) live in validate.ts.
 */

export type FieldSpec =
  | {
    type: "string";
    doc: string;
    default?: string;
    required?: boolean;
    pattern?: RegExp;
    patternHint?: string;
  }
  | { type: "int"; doc: string; default?: number; required?: boolean; min?: number; max?: number }
  | { type: "int_or_auto"; doc: string; default: "auto" | number; min?: number; max?: number }
  | { type: "bool"; doc: string; default?: boolean }
  /** Milliseconds after parsing; `min`/`max` are in milliseconds too (max defaults to MAX_DURATION_MS). */
  | { type: "duration"; doc: string; default?: string; required?: boolean; min?: number; max?: number }
  /** Bytes after parsing; `min`/`max` are in bytes. */
  | { type: "size"; doc: string; default?: string; min?: number; max?: number }
  | { type: "enum"; doc: string; values: readonly string[]; default?: string; required?: boolean }
  | { type: "string_list"; doc: string; default?: string[]; required?: boolean }
  | { type: "table"; doc: string; fields: TableSpec; optional?: boolean }
  | { type: "tables"; doc: string; fields: TableSpec; required?: boolean };

export type TableSpec = Record<string, FieldSpec>;

export const LISTENER_PROTOCOLS = ["http", "https", "quic", "tcp", "udp"] as const;
export const BACKEND_PROTOCOLS = ["h1", "h2", "h2c", "h3"] as const;
export const ALGORITHMS = [
  "round_robin",
  "weighted_round_robin",
  "random",
  "weighted_random",
  "least_connections",
  "least_request",
  "p2c",
  "maglev",
  "ring_hash",
  "ewma",
  "session_affinity",
] as const;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const NAME_HINT = "letters, digits, '_', '-', '.', at most 63 characters";

const TLS_SERVER: TableSpec = {
  cert: { type: "string", required: true, doc: "PEM certificate chain file (the default certificate)." },
  key: { type: "string", required: true, doc: "PEM private key file; must not be group- or other-readable." },
  tls13_only: {
    type: "bool",
    default: false,
    doc: "Refuse TLS 1.2. Rejected at --check: Deno's TLS stack (rustls) exposes no version setting.",
  },
  certificates: {
    type: "tables",
    doc: "Extra certificates chosen by SNI (`server_names`, `cert`, `key`); the default serves the rest.",
    fields: {
      server_names: {
        type: "string_list",
        required: true,
        doc: 'Names this certificate answers for: exact ("api.example.com") or wildcard ("*.example.com").',
      },
      cert: { type: "string", required: true, doc: "PEM certificate chain for these names." },
      key: { type: "string", required: true, doc: "PEM private key for these names." },
    },
  },
};

const ROUTE: TableSpec = {
  host: {
    type: "string",
    doc: 'Match the request authority (port ignored): exact ("api.example.com") or "*.example.com".',
  },
  path_prefix: {
    type: "string",
    doc: 'Match paths starting with this prefix (e.g. "/v1/").',
    pattern: /^\//,
    patternHint: "must start with '/'",
  },
  pool: { type: "string", doc: "Pool that serves matching requests. Exactly one of pool / respond." },
  early_data: {
    type: "bool",
    doc:
      "true: forward requests that arrived as TLS 0-RTT early data (quic listeners) if their method is safe, " +
      "with Early-Data: 1 (RFC 8470). Absent or false: they get 425 Too Early.",
  },
  respond: {
    type: "table",
    optional: true,
    doc: "Answer directly from the gateway instead of a pool.",
    fields: {
      status: { type: "int", default: 200, min: 200, max: 599, doc: "Status code of the direct answer." },
      body: { type: "string", default: "", doc: "Body of the direct answer." },
      content_type: {
        type: "string",
        default: "text/plain; charset=utf-8",
        doc: "Content-Type of the direct answer.",
      },
    },
  },
};

/** HTTP/2 on http (h2c) and https (ALPN h2) listeners: what we advertise, and the DoS catalog. */
const HTTP2: TableSpec = {
  max_concurrent_streams: {
    type: "int",
    default: 100,
    min: 1,
    max: 10000,
    doc:
      "SETTINGS_MAX_CONCURRENT_STREAMS; more streams (running exchanges of reset streams included) are refused.",
  },
  initial_window_size: {
    type: "size",
    default: "1MiB",
    min: 65536,
    max: 1024 * 1024 * 1024,
    doc: "Per-stream receive window we advertise: the request-body bytes buffered per stream.",
  },
  connection_window_size: {
    type: "size",
    default: "4MiB",
    min: 65536,
    max: 1024 * 1024 * 1024,
    doc: "Connection receive window: request-body bytes buffered for all streams of a connection.",
  },
  max_header_block_size: {
    type: "size",
    default: "256KiB",
    min: 1024,
    max: 16 * 1024 * 1024,
    doc: "Encoded field block cap (HEADERS + CONTINUATION); larger → GOAWAY(ENHANCE_YOUR_CALM).",
  },
  max_continuation_frames: {
    type: "int",
    default: 64,
    min: 0,
    doc: "CONTINUATION frames in one field block (CVE-2024-27316); more → GOAWAY(ENHANCE_YOUR_CALM).",
  },
  flood_window: {
    type: "duration",
    default: "10s",
    min: 100,
    doc: "The window every *_max threshold below counts in.",
  },
  rapid_reset_max: {
    type: "int",
    default: 1000,
    min: 0,
    doc:
      "Client RST_STREAMs on streams still in progress per flood_window (Rapid Reset, CVE-2023-44487); 0 = off.",
  },
  made_you_reset_max: {
    type: "int",
    default: 200,
    min: 0,
    doc:
      "RST_STREAMs the client's own frames make us send per flood_window (MadeYouReset, CVE-2025-8671); 0 = off.",
  },
  settings_flood_max: {
    type: "int",
    default: 100,
    min: 0,
    doc: "SETTINGS frames per flood_window; 0 = off.",
  },
  ping_flood_max: {
    type: "int",
    default: 200,
    min: 0,
    doc:
      "PING frames per flood_window, not counting one per burst of our HEADERS/DATA (BDP probes); 0 = off.",
  },
  empty_data_max: {
    type: "int",
    default: 100,
    min: 0,
    doc: "DATA frames with neither payload nor END_STREAM per flood_window; 0 = off.",
  },
  window_update_flood_max: {
    type: "int",
    default: 1000,
    min: 0,
    doc: "WINDOW_UPDATE frames per flood_window beyond two per DATA frame sent; 0 = off.",
  },
  noop_frame_max: {
    type: "int",
    default: 1000,
    min: 0,
    doc: "Frames that do nothing (PRIORITY, unknown types, unsolicited ACKs) per flood_window; 0 = off.",
  },
  stall_timeout: {
    type: "duration",
    default: "30s",
    min: 1,
    doc:
      "A response stream unable to send (zero window, unread socket) this long is reset; a whole stalled connection is closed.",
  },
};

const CONNECT_TUNNELS: TableSpec = {
  allow: {
    type: "string_list",
    required: true,
    doc: 'Destinations a CONNECT may reach, exactly "host:port" (no wildcards); others get 403.',
  },
  connect_timeout: {
    type: "duration",
    default: "5s",
    min: 1,
    doc: "TCP connect timeout to the destination.",
  },
  idle_timeout: {
    type: "duration",
    default: "10m",
    doc: "A tunnel with no byte either way for this long is closed (0s: never).",
  },
  max_lifetime: {
    type: "duration",
    default: "0s",
    doc: "A tunnel is closed this long after it opened, busy or not (0s: no limit).",
  },
};

/**
 * QUIC Mode B on a quic listener (src/quic/raw_proxy.ts): each client connection is terminated
 * here and relayed, stream by stream and datagram by datagram, to a fresh QUIC connection to
 * one backend. No HTTP/3 is spoken by the gateway, so routes play no part.
 */
const RAW_PROXY: TableSpec = {
  backend: {
    type: "string",
    required: true,
    doc: 'QUIC server every connection is relayed to, "host:port" or "[v6]:port".',
  },
  alpn: {
    type: "string_list",
    default: ["h3"],
    doc: "ALPN protocols the listener offers; the backend is offered the one the client chose.",
  },
  server_name: {
    type: "string",
    doc: "SNI and certificate name checked towards the backend (default: the host of backend).",
  },
  ca: {
    type: "string",
    doc:
      "PEM file of extra trusted roots for the backend's certificate (always verified; system roots otherwise).",
  },
  connect_timeout: {
    type: "duration",
    default: "5s",
    min: 1,
    doc: "Longest wait for the backend's QUIC handshake; then the client connection is closed (0x102).",
  },
  idle_timeout: {
    type: "duration",
    default: "60s",
    min: 1,
    doc:
      "QUIC idle timeout of the client leg; the backend leg is kept alive with PINGs while the client leg lives.",
  },
  stream_reset: {
    type: "enum",
    values: ["close", "fin"],
    default: "close",
    doc:
      "A RESET_STREAM from one leg cannot be relayed (Deno sends none): close both connections (close), or end the stream with FIN (fin).",
  },
};

const LISTENER: TableSpec = {
  name: {
    type: "string",
    required: true,
    pattern: NAME,
    patternHint: NAME_HINT,
    doc: "Unique listener name (labels, logs).",
  },
  bind: { type: "string", required: true, doc: 'Address to bind, "host:port" or "[v6]:port".' },
  protocol: {
    type: "enum",
    required: true,
    values: LISTENER_PROTOCOLS,
    doc: "http (HTTP/1.1), https (TLS + ALPN), quic (HTTP/3, or a QUIC relay with raw_proxy), tcp, udp.",
  },
  tls: { type: "table", optional: true, fields: TLS_SERVER, doc: "Server TLS; required for https." },
  max_connections: {
    type: "int",
    default: 10000,
    min: 1,
    doc: "Open connections on this listener; more are closed at accept.",
  },
  max_connections_per_ip: { type: "int", default: 256, min: 1, doc: "Open connections from one client IP." },
  max_body_size: {
    type: "size",
    default: "64MiB",
    doc: "Request body cap: 413 when Content-Length says more, stream cut past it.",
  },
  max_request_line: { type: "size", default: "8KiB", min: 64, doc: "Longest request line; longer → 414." },
  max_header_size: {
    type: "size",
    default: "32KiB",
    min: 256,
    doc: "Largest request header block; larger → 431.",
  },
  header_timeout: {
    type: "duration",
    default: "10s",
    min: 1,
    doc: "Time to receive a whole request head (slowloris → 408 and close).",
  },
  body_timeout: {
    type: "duration",
    default: "30s",
    min: 1,
    doc: "Longest wait for the next piece of a request body (slow POST → 408).",
  },
  send_timeout: {
    type: "duration",
    default: "60s",
    min: 1,
    doc:
      "HTTP/1.1 and HTTP/3: a response whose writes make no progress this long (a client that stopped reading) is cut.",
  },
  idle_timeout: {
    type: "duration",
    default: "60s",
    min: 1,
    doc: "Keep-alive idle time between requests before the connection is closed.",
  },
  proxy_protocol: {
    type: "enum",
    values: ["off", "v2"],
    default: "off",
    doc: "tcp listeners: send a PROXY protocol v2 header to the backend first (client address).",
  },
  alt_svc_h3: { type: "string", doc: "Name of a quic listener to advertise in Alt-Svc." },
  udp_max_datagram: {
    type: "int",
    default: 65535,
    min: 512,
    max: 65535,
    doc:
      "udp listeners: largest backend reply relayed (bytes; each session's receive buffer); a longer one is dropped (oversize).",
  },
  quic_max_streams: {
    type: "int",
    default: 100,
    min: 1,
    max: 10000,
    doc: "quic listeners: concurrent request streams a client may open per connection.",
  },
  qpack_max_table_capacity: {
    type: "int",
    default: 4096,
    min: 0,
    max: 65536,
    doc:
      "quic listeners: QPACK dynamic table capacity offered to clients (0: static table and literals only).",
  },
  qpack_blocked_streams: {
    type: "int",
    default: 16,
    min: 0,
    max: 1000,
    doc: "quic listeners: request streams that may wait for QPACK encoder-stream inserts at once.",
  },
  http2: {
    type: "table",
    fields: HTTP2,
    doc:
      "http / https listeners: HTTP/2 settings and DoS thresholds (each crossing is counted in protocol_events_total).",
  },
  grpc_max_timeout: {
    type: "duration",
    min: 1,
    doc:
      "gRPC calls get at most this deadline: a longer or absent grpc-timeout is rewritten, and the gateway ends the call with DEADLINE_EXCEEDED.",
  },
  grpc_health: {
    type: "bool",
    default: false,
    doc: "Answer grpc.health.v1.Health/Check itself, from the health of the pools this listener routes to.",
  },
  connect_tunnels: {
    type: "table",
    optional: true,
    fields: CONNECT_TUNNELS,
    doc: "http/https listeners: allow `CONNECT host:port` tunnels to the destinations listed (absent: 405).",
  },
  raw_proxy: {
    type: "table",
    optional: true,
    fields: RAW_PROXY,
    doc:
      "quic listeners: relay every QUIC connection to one backend (Mode B) instead of serving HTTP/3; no routes.",
  },
  routes: {
    type: "tables",
    fields: ROUTE,
    doc: "Routing rules, first match wins; no match → 404 from the gateway.",
  },
};

const BACKEND_TLS: TableSpec = {
  verify: {
    type: "bool",
    default: true,
    doc: "false skips only the name check; Deno always verifies the chain (system roots + ca).",
  },
  ca: { type: "string", doc: "PEM CA bundle for verification (system roots when absent)." },
  server_name: { type: "string", doc: "SNI and verification name (default: host part of address)." },
};

const BACKEND: TableSpec = {
  address: { type: "string", required: true, doc: 'Backend "host:port".' },
  protocol: {
    type: "enum",
    values: BACKEND_PROTOCOLS,
    default: "h1",
    doc: "h1 | h2 (TLS, ALPN) | h2c | h3.",
  },
  weight: {
    type: "int",
    default: 1,
    min: 0,
    max: 10000,
    doc: "Relative share for weighted algorithms; 0 takes no new traffic.",
  },
  tls: { type: "table", optional: true, fields: BACKEND_TLS, doc: "Upstream TLS (h1 over TLS, h2, h3)." },
  host_header: { type: "string", doc: "Host header to send instead of the client's." },
};

const HEALTH: TableSpec = {
  kind: {
    type: "enum",
    values: ["http", "tcp", "grpc"],
    default: "http",
    doc: "Probe type: http request, tcp connect, or grpc.health.v1.",
  },
  path: {
    type: "string",
    default: "/healthz",
    pattern: /^\//,
    patternHint: "must start with '/'",
    doc: "HTTP probe path.",
  },
  method: { type: "enum", values: ["GET", "HEAD", "OPTIONS"], default: "GET", doc: "HTTP probe method." },
  host: { type: "string", doc: "Host header of HTTP probes (default: the backend address)." },
  expected_status: {
    type: "string",
    default: "200-399",
    pattern: /^\s*\d{3}(\s*-\s*\d{3})?(\s*,\s*\d{3}(\s*-\s*\d{3})?)*\s*$/,
    patternHint: 'status ranges such as "200-399" or "200,204"',
    doc: "Status codes that count as healthy.",
  },
  body_contains: { type: "string", doc: "HTTP probe passes only if the body (first 64 KiB) contains this." },
  grpc_service: {
    type: "string",
    default: "",
    doc: 'grpc probe: the service name sent in HealthCheckRequest ("" = the server as a whole).',
  },
  interval: { type: "duration", default: "2s", min: 10, doc: "Time between probes of one backend." },
  jitter: {
    type: "duration",
    default: "200ms",
    doc: "Random extra delay (0..jitter) per probe, so probes don't align.",
  },
  timeout: { type: "duration", default: "1s", min: 1, doc: "A probe slower than this fails." },
  rise: { type: "int", default: 2, min: 1, doc: "Consecutive passes that mark a down backend up." },
  fall: { type: "int", default: 3, min: 1, doc: "Consecutive failures that mark an up backend down." },
};

const OUTLIER: TableSpec = {
  consecutive_5xx: { type: "int", default: 5, min: 1, doc: "Consecutive 5xx answers that eject a backend." },
  consecutive_failures: {
    type: "int",
    default: 5,
    min: 1,
    doc: "Consecutive connect failures or timeouts that eject a backend.",
  },
  base_ejection_time: {
    type: "duration",
    default: "30s",
    min: 1,
    doc: "First ejection length; the n-th lasts n × this.",
  },
  max_ejection_time: { type: "duration", default: "300s", min: 1, doc: "Longest ejection." },
  max_ejection_percent: {
    type: "int",
    default: 50,
    min: 0,
    max: 100,
    doc: "At most this percent of a pool is ejected at once.",
  },
};

const POOL: TableSpec = {
  name: { type: "string", required: true, pattern: NAME, patternHint: NAME_HINT, doc: "Unique pool name." },
  algorithm: { type: "enum", values: ALGORITHMS, default: "round_robin", doc: "Load-balancing algorithm." },
  hash_key: {
    type: "string",
    pattern: /^(header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|cookie:[!#$%&'*+.^_`|~0-9A-Za-z-]+|client_ip)$/,
    patternHint: "header:NAME | cookie:NAME | client_ip",
    doc: "Key for maglev / ring_hash / session_affinity: header:NAME | cookie:NAME | client_ip.",
  },
  connect_timeout: { type: "duration", default: "5s", min: 1, doc: "TCP/TLS connect timeout to a backend." },
  response_timeout: {
    type: "duration",
    default: "60s",
    min: 1,
    doc: "Longest wait for the backend's response head, and between body reads.",
  },
  max_idle_per_backend: {
    type: "int",
    default: 64,
    min: 0,
    doc:
      "Idle keep-alive connections kept per backend (a surplus released during a burst lingers 1 s for reuse).",
  },
  max_connections_per_backend: {
    type: "int",
    default: 1024,
    min: 1,
    doc: "Open connections per backend; requests wait for one when full.",
  },
  idle_timeout: {
    type: "duration",
    default: "60s",
    min: 1,
    doc: "Idle upstream connections are closed after this.",
  },
  maglev_table_size: {
    type: "int",
    default: 65537,
    min: 7,
    max: 1_000_003,
    doc: "maglev: lookup-table size; must be prime and should be ≥ 100 × the number of backends.",
  },
  ring_virtual_nodes: {
    type: "int",
    default: 160,
    min: 1,
    max: 10000,
    doc: "ring_hash: points on the ring per unit of weight.",
  },
  ewma_decay: {
    type: "duration",
    default: "10s",
    min: 1,
    doc: "ewma: time constant of the latency average's decay.",
  },
  affinity_cookie: {
    type: "string",
    default: "eg_affinity",
    pattern: /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/,
    patternHint: "a cookie name (token characters)",
    doc: "session_affinity: name of the sticky cookie the gateway sets.",
  },
  panic_threshold: {
    type: "int",
    default: 50,
    min: 0,
    max: 100,
    doc: "Percent of healthy backends below which the pool ignores health and picks among all (0 = never).",
  },
  websocket: {
    type: "bool",
    default: true,
    doc: "Allow WebSocket upgrades (HTTP/1.1 Upgrade, HTTP/2 extended CONNECT) to this pool; false: 403.",
  },
  tunnel_idle_timeout: {
    type: "duration",
    default: "10m",
    doc: "A WebSocket with no byte either way for this long is closed with 1001 (0s: never).",
  },
  tunnel_max_lifetime: {
    type: "duration",
    default: "0s",
    doc: "A WebSocket is closed with 1001 this long after it opened, busy or not (0s: no limit).",
  },
  health: { type: "table", optional: true, fields: HEALTH, doc: "Active health checks (absent: none)." },
  outlier: {
    type: "table",
    optional: true,
    fields: OUTLIER,
    doc: "Passive outlier detection from live traffic (absent: none).",
  },
  backends: { type: "tables", required: true, fields: BACKEND, doc: "The pool's backends." },
};

const CONTROL: TableSpec = {
  source: {
    type: "enum",
    values: ["file", "etcd"],
    default: "file",
    doc: 'file: this file (SIGHUP reloads it); etcd: the document at "<prefix>/config" in etcd, watched.',
  },
  watch_file: {
    type: "bool",
    default: false,
    doc: "source = file: reload when the config file changes on disk (as if sent SIGHUP).",
  },
  endpoints: {
    type: "string_list",
    default: ["http://127.0.0.1:2379"],
    doc: "etcd client URLs (http:// or https://), tried in order.",
  },
  prefix: {
    type: "string",
    default: "/expressgateway",
    pattern: /^\/[A-Za-z0-9_.\/-]*[A-Za-z0-9_.-]$/,
    patternHint: "an absolute key path such as \"/expressgateway\", no trailing '/'",
    doc: "Key prefix: the config is at <prefix>/config, instances register under <prefix>/instances/.",
  },
  cache_file: {
    type: "string",
    doc: "Last applied etcd document, rewritten atomically after each apply; used at boot when etcd is down.",
  },
  cert_dirs: {
    type: "string_list",
    default: [],
    doc:
      "source = etcd: directories holding the TLS files the etcd document names; scripts/flags.ts grants reading them.",
  },
  instance_id: {
    type: "string",
    pattern: NAME,
    patternHint: NAME_HINT,
    doc: "Name of this gateway in the fleet list. Unset: <hostname>-<pid>.",
  },
  username: { type: "string", doc: "etcd user (auth enabled on the cluster); needs password." },
  password: { type: "string", doc: "Password of username. Keep this file mode 600." },
  tls: {
    type: "table",
    optional: true,
    doc: "TLS to etcd (https:// endpoints): CA and optional client certificate.",
    fields: {
      ca: {
        type: "string",
        doc: "PEM CA bundle that signed the etcd server certificate (system roots when absent).",
      },
      cert: { type: "string", doc: "PEM client certificate (etcd --client-cert-auth); needs key." },
      key: { type: "string", doc: "PEM private key of cert." },
    },
  },
  lease_ttl: {
    type: "duration",
    default: "10s",
    min: 2000,
    max: 300_000,
    doc: "TTL of this instance's registration; it vanishes this long after the gateway stops renewing it.",
  },
  request_timeout: {
    type: "duration",
    default: "2s",
    min: 100,
    doc: "Timeout of one etcd request (range, put, txn, lease).",
  },
  boot_timeout: {
    type: "duration",
    default: "5s",
    doc: "At boot, how long to keep trying etcd before starting from cache_file (or failing).",
  },
};

const XDP: TableSpec = {
  interfaces: {
    type: "string_list",
    required: true,
    doc: "Interfaces where VIP traffic and backend replies arrive (the program runs on each).",
  },
  mode: { type: "enum", values: ["native", "generic"], default: "native", doc: "XDP attach mode." },
  fallback_to_generic: {
    type: "bool",
    default: false,
    doc: "Attach generic when a driver refuses native mode.",
  },
  vip: { type: "string", required: true, doc: "The IPv4 virtual address the fast path balances." },
  port: { type: "int", required: true, min: 1, max: 65535, doc: "The VIP port." },
  protocol: {
    type: "enum",
    values: ["tcp", "udp", "tcp+udp"],
    default: "tcp+udp",
    doc: "Transport(s) balanced at the VIP.",
  },
  pool: {
    type: "string",
    required: true,
    doc: "Pool whose backends (IPv4 host:port, weights) fill the Maglev table.",
  },
  table_size: { type: "int", default: 65537, min: 7, max: 1_000_003, doc: "Maglev table size (prime)." },
  new_flows_per_second: {
    type: "int",
    default: 0,
    min: 0,
    doc: "New flows admitted per second per CPU; 0 = unlimited.",
  },
  new_flows_burst: {
    type: "int",
    default: 0,
    min: 0,
    doc: "Token-bucket depth in flows; 0 = new_flows_per_second.",
  },
  flow_table_size: {
    type: "int",
    default: 65536,
    min: 1024,
    doc: "Entries of each LRU flow table (forward and reply).",
  },
  object_path: {
    type: "string",
    doc: "Compiled XDP object (default: bpf/xdp_lb.o next to the source tree).",
  },
};

/** Mode A QUIC passthrough (src/quic/passthrough.ts): route by Connection ID, no decryption. */
const PASSTHROUGH: TableSpec = {
  bind: {
    type: "string",
    required: true,
    doc: 'UDP address the passthrough listens on, "host:port" or "[v6]:port" (its own socket).',
  },
  pool: {
    type: "string",
    required: true,
    doc:
      "Pool of QUIC servers (host:port, weights); new connections are spread by Maglev on their Destination CID.",
  },
  server_cid_length: {
    type: "int",
    default: 8,
    min: 0,
    max: 20,
    doc: "Length of the connection IDs the backends choose (short headers do not carry it).",
  },
  idle_timeout: {
    type: "duration",
    default: "60s",
    min: 1,
    doc: "A flow with no datagram either way for this long is forgotten (its CIDs and addresses too).",
  },
  max_flows: {
    type: "int",
    default: 10000,
    min: 1,
    doc: "Flows (QUIC connections) tracked at once; new connections past it are dropped and counted.",
  },
};

export const SCHEMA: TableSpec = {
  runtime: {
    type: "table",
    doc: "Process lifecycle.",
    fields: {
      drain_timeout: {
        type: "duration",
        default: "10s",
        doc: "SIGTERM: readyz 503 → stop accepting → finish in-flight up to this → exit.",
      },
      xdp_enabled: {
        type: "bool",
        default: false,
        doc: "Load the XDP fast path (needs --allow-ffi and CAP_BPF/CAP_NET_ADMIN).",
      },
      workers: {
        type: "int_or_auto",
        default: "auto",
        min: 1,
        max: 256,
        doc:
          'Data-plane workers: "auto" (one per core) or a count; 1 runs the data plane in the main isolate.',
      },
      max_in_flight: {
        type: "int",
        default: 10000,
        min: 1,
        doc: "Requests in flight across all listeners; more get 503 with Retry-After.",
      },
    },
  },
  observability: {
    type: "table",
    doc: "Logs and the admin listener.",
    fields: {
      admin_bind: {
        type: "string",
        default: "127.0.0.1:9090",
        doc: "Admin listener: /metrics /livez /healthz /readyz /startupz.",
      },
      log_format: {
        type: "enum",
        values: ["json", "text"],
        default: "json",
        doc: "Log line format; LB_LOG_FORMAT overrides.",
      },
      log_level: {
        type: "enum",
        values: ["debug", "info", "warn", "error"],
        default: "info",
        doc: "Lowest level logged; LB_LOG_LEVEL overrides.",
      },
      access_log: { type: "bool", default: true, doc: "One log line per request." },
    },
  },
  admin: {
    type: "table",
    doc: "Admin listener access control.",
    fields: {
      api_token_hash: {
        type: "string",
        pattern: /^sha256:[0-9a-f]{64}$/,
        patternHint: "sha256:<64 lowercase hex digits>",
        doc: "sha256 of the bearer token that /metrics requires; mandatory when admin_bind is not loopback.",
      },
    },
  },
  control: {
    type: "table",
    doc: "Where the config comes from: this file, or etcd (docs/CONTROL_PLANE.md).",
    fields: CONTROL,
  },
  xdp: {
    type: "table",
    optional: true,
    fields: XDP,
    doc: "The XDP/eBPF L4 fast path (used when runtime.xdp_enabled).",
  },
  passthrough: {
    type: "table",
    optional: true,
    fields: PASSTHROUGH,
    doc: "QUIC Mode A passthrough: relay QUIC datagrams to a pool by Connection ID, without decrypting.",
  },
  listeners: { type: "tables", required: true, fields: LISTENER, doc: "Where clients connect." },
  pools: { type: "tables", fields: POOL, doc: "Groups of backends." },
};

/** Every documented key as a dotted path (`listeners.routes.pool`), for the docs test. */
export function schemaKeyPaths(spec: TableSpec = SCHEMA, prefix = ""): string[] {
  const out: string[] = [];
  for (const [key, field] of Object.entries(spec)) {
    const path = prefix ? `${prefix}.${key}` : key;
    out.push(path);
    if (field.type === "table" || field.type === "tables") out.push(...schemaKeyPaths(field.fields, path));
  }
  return out;
}
