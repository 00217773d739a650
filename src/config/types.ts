/**
 * The immutable config snapshot. Keys keep the TOML spelling (snake_case) so the code, the
 * docs and the file share one vocabulary. Durations are milliseconds, sizes are bytes.
 */

import type { ALGORITHMS, BACKEND_PROTOCOLS, LISTENER_PROTOCOLS } from "./schema.ts";

export type ListenerProtocol = typeof LISTENER_PROTOCOLS[number];
export type BackendProtocol = typeof BACKEND_PROTOCOLS[number];
export type Algorithm = typeof ALGORITHMS[number];

export interface TlsCertificateConfig {
  server_names: readonly string[];
  cert: string;
  key: string;
}

export interface ServerTlsConfig {
  cert: string;
  key: string;
  tls13_only: boolean;
  certificates: readonly TlsCertificateConfig[];
}

export interface RespondConfig {
  status: number;
  body: string;
  content_type: string;
}

export interface RouteConfig {
  host?: string;
  path_prefix?: string;
  pool?: string;
  /** Forward safe requests received as 0-RTT early data (RFC 8470); else (absent/false) 425. */
  early_data?: boolean;
  respond?: RespondConfig;
}

/** `[listeners.http2]`: HTTP/2 settings and the DoS catalog's thresholds (src/http/h2/limits.ts). */
export interface Http2Config {
  max_concurrent_streams: number;
  initial_window_size: number;
  connection_window_size: number;
  max_header_block_size: number;
  max_continuation_frames: number;
  flood_window: number;
  rapid_reset_max: number;
  made_you_reset_max: number;
  settings_flood_max: number;
  ping_flood_max: number;
  empty_data_max: number;
  window_update_flood_max: number;
  noop_frame_max: number;
  stall_timeout: number;
}

/** Generic `CONNECT host:port` tunnelling on a listener (absent: CONNECT gets 405). */
export interface ConnectTunnelsConfig {
  /** Destinations allowed, exactly "host:port". */
  allow: readonly string[];
  connect_timeout: number;
  /** 0 = no idle timeout. */
  idle_timeout: number;
  /** 0 = no limit. */
  max_lifetime: number;
}

/** `[listeners.raw_proxy]`: QUIC Mode B, terminate and re-originate (src/quic/raw_proxy.ts). */
export interface RawProxyConfig {
  /** "host:port" of the QUIC server every connection is relayed to. */
  backend: string;
  /** ALPN protocols the listener offers. */
  alpn: readonly string[];
  /** SNI / verification name towards the backend (absent: the host of `backend`). */
  server_name?: string;
  /** PEM file of extra trusted roots for the backend. */
  ca?: string;
  connect_timeout: number;
  idle_timeout: number;
  /** What a RESET_STREAM received on one leg becomes on the other (Deno cannot send one). */
  stream_reset: "close" | "fin";
}

export interface ListenerConfig {
  name: string;
  bind: string;
  protocol: ListenerProtocol;
  tls?: ServerTlsConfig;
  max_connections: number;
  max_connections_per_ip: number;
  max_body_size: number;
  max_request_line: number;
  max_header_size: number;
  header_timeout: number;
  body_timeout: number;
  send_timeout: number;
  idle_timeout: number;
  proxy_protocol: "off" | "v2";
  alt_svc_h3?: string;
  /** udp listeners: each session's buffer for the backend's replies (bytes). */
  udp_max_datagram: number;
  /** quic listeners: concurrent request streams per connection. */
  quic_max_streams: number;
  /** quic listeners: SETTINGS_QPACK_MAX_TABLE_CAPACITY (0 = static table and literals only). */
  qpack_max_table_capacity: number;
  /** quic listeners: SETTINGS_QPACK_BLOCKED_STREAMS. */
  qpack_blocked_streams: number;
  http2: Http2Config;
  /** gRPC deadline cap (ms); absent: grpc-timeout passes unchanged. */
  grpc_max_timeout?: number;
  /** The gateway answers grpc.health.v1.Health/Check. */
  grpc_health: boolean;
  /** http/https listeners: generic CONNECT tunnels (absent: 405). */
  connect_tunnels?: ConnectTunnelsConfig;
  /** quic listeners: relay connections to one QUIC backend (Mode B); routes are then unused. */
  raw_proxy?: RawProxyConfig;
  routes: readonly RouteConfig[];
}

export interface BackendTlsConfig {
  verify: boolean;
  ca?: string;
  server_name?: string;
}

export interface BackendConfig {
  address: string;
  protocol: BackendProtocol;
  weight: number;
  tls?: BackendTlsConfig;
  host_header?: string;
}

export interface HealthConfig {
  kind: "http" | "tcp" | "grpc";
  path: string;
  method: "GET" | "HEAD" | "OPTIONS";
  host?: string;
  expected_status: string;
  body_contains?: string;
  grpc_service: string;
  interval: number;
  jitter: number;
  timeout: number;
  rise: number;
  fall: number;
}

export interface OutlierConfig {
  consecutive_5xx: number;
  consecutive_failures: number;
  base_ejection_time: number;
  max_ejection_time: number;
  max_ejection_percent: number;
}

export interface PoolConfig {
  name: string;
  algorithm: Algorithm;
  hash_key?: string;
  connect_timeout: number;
  response_timeout: number;
  max_idle_per_backend: number;
  max_connections_per_backend: number;
  idle_timeout: number;
  maglev_table_size: number;
  ring_virtual_nodes: number;
  ewma_decay: number;
  affinity_cookie: string;
  panic_threshold: number;
  /** WebSocket upgrades (H1 Upgrade, H2 extended CONNECT) to this pool's backends. */
  websocket: boolean;
  /** 0 = no idle timeout. */
  tunnel_idle_timeout: number;
  /** 0 = no limit. */
  tunnel_max_lifetime: number;
  health?: HealthConfig;
  outlier?: OutlierConfig;
  backends: readonly BackendConfig[];
}

export interface ControlConfig {
  source: "file" | "etcd";
  watch_file: boolean;
  endpoints: readonly string[];
  prefix: string;
  cache_file?: string;
  cert_dirs: readonly string[];
  instance_id?: string;
  username?: string;
  password?: string;
  tls?: { ca?: string; cert?: string; key?: string };
  lease_ttl: number;
  request_timeout: number;
  boot_timeout: number;
}

export interface XdpConfig {
  interfaces: readonly string[];
  mode: "native" | "generic";
  fallback_to_generic: boolean;
  vip: string;
  port: number;
  protocol: "tcp" | "udp" | "tcp+udp";
  pool: string;
  table_size: number;
  new_flows_per_second: number;
  new_flows_burst: number;
  flow_table_size: number;
  object_path?: string;
}

/** `[passthrough]`: QUIC Mode A, routed by Connection ID (src/quic/passthrough.ts). */
export interface PassthroughConfig {
  bind: string;
  pool: string;
  server_cid_length: number;
  idle_timeout: number;
  max_flows: number;
}

export interface GatewayConfig {
  runtime: { drain_timeout: number; xdp_enabled: boolean; max_in_flight: number; workers: "auto" | number };
  observability: {
    admin_bind: string;
    log_format: "json" | "text";
    log_level: "debug" | "info" | "warn" | "error";
    access_log: boolean;
  };
  admin: { api_token_hash?: string };
  control: ControlConfig;
  xdp?: XdpConfig;
  passthrough?: PassthroughConfig;
  listeners: readonly ListenerConfig[];
  pools: readonly PoolConfig[];
}

/** A validated config plus where it came from. Frozen: a reload builds a new one. */
export interface ConfigSnapshot {
  readonly config: GatewayConfig;
  readonly source: string;
  /** Monotonic per process; bumps on every applied reload. */
  readonly generation: number;
  /** sha256 of the source text, for logs and fleet views. */
  readonly digest: string;
  readonly loadedAt: number;
}

/** Identity of a backend across reloads: per-backend state is keyed by this. */
export function backendKey(pool: string, b: Pick<BackendConfig, "address" | "protocol">): string {
  return `${pool}/${b.protocol}://${b.address}`;
}
