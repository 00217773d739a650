/**
 * The configs the benchmark writes for the origin and for each proxy under test. Equivalent
 * settings everywhere: `workers` processes/threads (1 by default: one pinned core), HTTP/1.1
 * keep-alive to the origin with up to 64 idle connections, no access logging, streamed request
 * bodies (no spooling to disk), X-Forwarded-For added, the same body cap (64 MiB), long client
 * keep-alive (the 10,000-idle-connection row must not be cut by an idle timeout).
 */

export const SMALL_BODY = "hello from the benchmark origin\n"; // 32 bytes
export const ONE_MIB = 1024 * 1024;
/** gRPC service and method of the gRPC scenario (scripts/bench_harness/grpc_origin.mjs). */
export const GRPC_PATH = "/eg.bench.Echo/Unary";
/** One gRPC message: uncompressed, length 7, protobuf Msg { text: "hello" } (field 1, length 5). */
export const GRPC_REQUEST = Uint8Array.of(0, 0, 0, 0, 7, 0x0a, 5, 0x68, 0x65, 0x6c, 0x6c, 0x6f);

export interface Ports {
  /** HTTP/1.1 cleartext (for the gateway and Caddy, also h2c prior knowledge). */
  h1: number;
  /** h2c prior knowledge (a dedicated port where the peer needs one). */
  h2c: number;
  /** TLS, ALPN h2 + http/1.1. */
  tls: number;
  /** The gateway's admin listener. */
  admin: number;
  /** UDP, HTTP/3 (the same number as tls: Caddy serves HTTP/3 on its HTTPS port). */
  h3: number;
  /** h2c prior knowledge in front of the gRPC origin. */
  grpc: number;
  /** HTTP/1.1 in front of the WebSocket origin. */
  ws: number;
}

export interface Setup {
  dir: string;
  originPort: number;
  workers: number;
  /** The CA that signed cert (h3load trusts only this). */
  ca: string;
  cert: string;
  key: string;
  /** cert + key in one file (HAProxy's crt). */
  pem: string;
  /** The gRPC origin's port (started only for the gRPC scenario). */
  grpcOriginPort: number;
  /** The WebSocket origin's port (started only for the WebSocket scenario). */
  wsOriginPort: number;
}

/** The origin: nginx, fixed answers, never the bottleneck (one worker, sendfile, no logs). */
export function originNginx(s: Setup): string {
  return `# benchmark origin (generated)
user root;
worker_processes 1;
pid ${s.dir}/origin.pid;
error_log ${s.dir}/origin.err warn;
worker_rlimit_nofile 20000;
events { worker_connections 8192; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 300s;
  keepalive_requests 100000000;
  client_body_temp_path ${s.dir}/origin_body;
  proxy_temp_path ${s.dir}/origin_proxy;
  fastcgi_temp_path ${s.dir}/origin_fastcgi;
  uwsgi_temp_path ${s.dir}/origin_uwsgi;
  scgi_temp_path ${s.dir}/origin_scgi;
  server {
    listen 127.0.0.1:${s.originPort} backlog=4096;
    location = /small { default_type text/plain; return 200 "${SMALL_BODY.replace("\n", "\\n")}"; }
    location = /1m { alias ${s.dir}/www/1m.bin; }
    location = /stream { alias ${s.dir}/www/stream.bin; }
    # The HTTP/3 download (written by scripts/bench_harness/h3.ts before that scenario runs).
    location = /big { alias ${s.dir}/www/big.bin; }
    # POST: read the whole body (mirror_request_body reads it before the content phase; in
    # memory, never a temp file) and only then answer, so no proxy sees an early response.
    location = /upload {
      client_max_body_size 64m;
      client_body_buffer_size 2m;
      mirror /_discard;
      mirror_request_body on;
      # The static handler refuses POST with 405 after the body was read; answer 200 instead.
      error_page 405 =200 @ok;
      alias ${s.dir}/www/ok.txt;
    }
    location = /_discard { internal; return 204; }
    location @ok { default_type text/plain; return 200 "ok\\n"; }
  }
}
`;
}

/** nginx as the proxy under test. */
export function nginxProxy(s: Setup, p: Ports): string {
  return `# nginx under test (generated)
user root;
worker_processes ${s.workers};
pid ${s.dir}/nginx.pid;
error_log ${s.dir}/nginx.err warn;
worker_rlimit_nofile 20000;
events { worker_connections 19000; }
http {
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 100000000;
  client_max_body_size 64m;
  client_body_temp_path ${s.dir}/nginx_body;
  proxy_temp_path ${s.dir}/nginx_proxy;
  fastcgi_temp_path ${s.dir}/nginx_fastcgi;
  uwsgi_temp_path ${s.dir}/nginx_uwsgi;
  scgi_temp_path ${s.dir}/nginx_scgi;
  upstream origin {
    server 127.0.0.1:${s.originPort};
    keepalive 64;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
  }
  upstream grpc_origin {
    server 127.0.0.1:${s.grpcOriginPort};
    keepalive 64;
  }
  upstream ws_origin {
    server 127.0.0.1:${s.wsOriginPort};
  }
  server {
    listen 127.0.0.1:${p.ws} backlog=4096;
    location / {
      proxy_pass http://ws_origin;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 300s;
      # The upgraded connection is relayed through proxy_buffer_size buffers: 64 KiB, as elsewhere.
      proxy_buffer_size 64k;
      proxy_buffers 8 64k;
      proxy_busy_buffers_size 128k;
    }
  }
  server {
    listen 127.0.0.1:${p.grpc} http2;
    location / {
      grpc_pass grpc://grpc_origin;
      grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
  server {
    # More than one worker: one listening socket per worker (SO_REUSEPORT), as the gateway does.
    listen 127.0.0.1:${p.h1} backlog=4096${s.workers > 1 ? " reuseport" : ""};
    listen 127.0.0.1:${p.h2c} http2;
    listen 127.0.0.1:${p.tls} ssl http2;
    ssl_certificate ${s.cert};
    ssl_certificate_key ${s.key};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      # Stream request bodies like the other proxies; buffer responses in memory only.
      proxy_request_buffering off;
      proxy_max_temp_file_size 0;
      # 64 KiB I/O buffers, as the gateway's (nginx's defaults are 4-8 KiB).
      client_body_buffer_size 64k;
      proxy_buffer_size 64k;
      proxy_buffers 8 64k;
      proxy_busy_buffers_size 128k;
    }
  }
}
`;
}

/** HAProxy as the proxy under test. */
export function haproxy(s: Setup, p: Ports): string {
  return `# HAProxy under test (generated)
global
  nbthread ${s.workers}
  maxconn 10500
  # 10,500 connections want ~21,000 fds; the hard limit here may be 20,000, and idle client
  # connections need no server-side fd: warn instead of refusing to start.
  no strict-limits
  # 64 KiB buffers, as the gateway's (HAProxy's default is 16 KiB).
  tune.bufsize 65536
  tune.ssl.default-dh-param 2048

defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 60s
  timeout http-keep-alive 300s
  timeout http-request 10s
  http-reuse always
  option forwardfor

frontend fe
  bind 127.0.0.1:${p.h1} backlog 4096
  bind 127.0.0.1:${p.h2c} proto h2
  bind 127.0.0.1:${p.tls} ssl crt ${s.pem} alpn h2,http/1.1
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  default_backend origin

backend origin
  server o1 127.0.0.1:${s.originPort} pool-max-conn 64

frontend fe_grpc
  bind 127.0.0.1:${p.grpc} proto h2
  default_backend grpc

frontend fe_ws
  bind 127.0.0.1:${p.ws} backlog 4096
  default_backend ws

backend ws
  timeout tunnel 300s
  server w1 127.0.0.1:${s.wsOriginPort}

backend grpc
  server g1 127.0.0.1:${s.grpcOriginPort} proto h2 pool-max-conn 64
`;
}

/** Caddy as the proxy under test (GOMAXPROCS = workers is set in its environment). */
export function caddyfile(s: Setup, p: Ports): string {
  const site = `  bind 127.0.0.1
  reverse_proxy 127.0.0.1:${s.originPort} {
    transport http {
      keepalive 60s
      keepalive_idle_conns 64
      keepalive_idle_conns_per_host 64
    }
  }`;
  return `# Caddy under test (generated)
{
  admin off
  auto_https disable_redirects
  grace_period 1s
  servers {
    protocols h1 h2 h2c h3
    timeouts {
      idle 300s
    }
  }
}

http://127.0.0.1:${p.h1} {
${site}
}

# HTTP/3 is served on the same port over UDP (protocols … h3).
https://127.0.0.1:${p.tls} {
  tls ${s.cert} ${s.key}
${site}
}

http://127.0.0.1:${p.ws} {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:${s.wsOriginPort}
}

http://127.0.0.1:${p.grpc} {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:${s.grpcOriginPort} {
    transport http {
      versions h2c
      keepalive 60s
    }
  }
}
`;
}

/**
 * The gateway: one HTTP listener (HTTP/1.1, plus h2c when the h2 front is built), one HTTPS
 * listener unless tls is false, one QUIC (HTTP/3) listener unless quic is false, an h2c
 * listener in front of the gRPC origin, logs at warn with no access log.
 */
export function gatewayToml(
  s: Setup,
  p: Ports,
  opts: { tls: boolean; quic: boolean; workersKey: boolean },
): string {
  const limits = `max_connections = 20000
max_connections_per_ip = 20000
max_body_size = "64MiB"
idle_timeout = "300s"`;
  return `# gateway under test (generated)
[runtime]
drain_timeout = "1s"
max_in_flight = 20000
${opts.workersKey ? `workers = ${s.workers}` : ""}

[observability]
admin_bind = "127.0.0.1:${p.admin}"
log_level = "warn"
access_log = false

[[listeners]]
name = "h1"
bind = "127.0.0.1:${p.h1}"
protocol = "http"
${limits}
  [[listeners.routes]]
  pool = "origin"
${
    opts.tls
      ? `
[[listeners]]
name = "tls"
bind = "127.0.0.1:${p.tls}"
protocol = "https"
tls = { cert = "${s.cert}", key = "${s.key}" }
${limits}
  [[listeners.routes]]
  pool = "origin"
`
      : ""
  }${
    opts.quic
      ? `
[[listeners]]
name = "h3"
bind = "127.0.0.1:${p.h3}"
protocol = "quic"
tls = { cert = "${s.cert}", key = "${s.key}" }
${limits}
  [[listeners.routes]]
  pool = "origin"
`
      : ""
  }
[[listeners]]
name = "grpc"
bind = "127.0.0.1:${p.grpc}"
protocol = "http"
${limits}
  [[listeners.routes]]
  pool = "grpc"

[[listeners]]
name = "ws"
bind = "127.0.0.1:${p.ws}"
protocol = "http"
${limits}
  [[listeners.routes]]
  pool = "ws"

[[pools]]
name = "origin"
algorithm = "round_robin"
max_idle_per_backend = 64
idle_timeout = "60s"

  [[pools.backends]]
  address = "127.0.0.1:${s.originPort}"

[[pools]]
name = "grpc"
max_idle_per_backend = 64
idle_timeout = "60s"

  [[pools.backends]]
  address = "127.0.0.1:${s.grpcOriginPort}"
  protocol = "h2c"

[[pools]]
name = "ws"
tunnel_idle_timeout = "300s"

  [[pools.backends]]
  address = "127.0.0.1:${s.wsOriginPort}"
`;
}

/**
 * nghttpx (nghttp2's reverse proxy) as the proxy under test for the HTTP/2 scenarios: a
 * cleartext front (HTTP/1.1 and h2c prior knowledge) and a TLS front (ALPN h2), HTTP/1.1 to the
 * origin, the gRPC path routed to the gRPC origin over h2c. No access log (nghttpx logs none
 * unless told), OCSP off (nothing to fetch), X-Forwarded-For added (X-Forwarded-Proto and Via
 * are on by default).
 */
export function nghttpxConf(s: Setup, p: Ports): string {
  return `# nghttpx under test (generated)
frontend=127.0.0.1,${p.h2c};no-tls
frontend=127.0.0.1,${p.tls}
backend=127.0.0.1,${s.originPort};;proto=http/1.1
backend=127.0.0.1,${s.grpcOriginPort};${GRPC_PATH.slice(0, GRPC_PATH.lastIndexOf("/") + 1)};proto=h2
private-key-file=${s.key}
certificate-file=${s.cert}
workers=${s.workers}
# One process (workers are threads): the default master + worker pair leaves the worker an
# orphan for a moment when the master exits, and the harness must see everything it started gone.
single-process=yes
no-ocsp=yes
pid-file=${s.dir}/nghttpx.pid
errorlog-file=${s.dir}/nghttpx.err
backlog=4096
rlimit-nofile=20000
add-x-forwarded-for=yes
frontend-keep-alive-timeout=300s
frontend-http2-read-timeout=300s
backend-keep-alive-timeout=60s
backend-connections-per-frontend=0
backend-response-buffer=64K
`;
}

/** wrk's script: optional POST body from a file, optional Connection: close, JSON summary. */
export const WRK_LUA = `-- generated by scripts/bench
local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/octet-stream"
end
if os.getenv("BENCH_CONN_CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
`;
