# Shared by the small benchmark scripts (scripts/bench_floor.sh, bench_h2_cpu.sh, bench_tls_stall.sh, bench_ab.sh):
# sourced, not run. Sets W to a fresh work directory, tracks the processes a script starts in
# `pids`, and on any exit kills them and removes W. free_ports N prints N free loopback ports.
# shellcheck shell=bash
export DENO_NO_PACKAGE_JSON=1
DENO=node_modules/.bin/deno
W="$(mktemp -d -t "eg-${BENCH_NAME:-bench}.XXXXXX")"
pids=()
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap bench_cleanup EXIT
# So the EXIT trap runs on a signal or a closed stdout (otherwise leftovers could keep running).
trap 'exit 129' HUP INT TERM PIPE

free_ports() {
  node -e 'const n = require("net"), want = Number(process.argv[1]), ps = [];
    for (let i = 0; i < want; i++) {
      const s = n.createServer().listen(0, "127.0.0.1", () => {
        ps.push(s.address().port);
        if (ps.length === want) { console.log(ps.join(" ")); process.exit(0); }
      });
    }' "$1"
}

# An nginx config for a foreground instance NAME: one worker, its pid file, error log and temp
# paths in W, and the contents of its http block (after `access_log off;`) from stdin.
#   nginx_conf FILE NAME WORKER_CONNECTIONS <<EOC ... EOC
nginx_conf() {
  {
    cat <<EOC
worker_processes 1;
pid $W/$2.pid;
error_log $W/$2.err warn;
events { worker_connections $3; }
http {
  access_log off;
  client_body_temp_path $W/t1; proxy_temp_path $W/t2; fastcgi_temp_path $W/t3; uwsgi_temp_path $W/t4; scgi_temp_path $W/t5;
EOC
    cat
    echo "}"
  } >"$1"
}

# The h1-small origin: nginx answering GET /small with 32 bytes, keep-alive without limits.
#   origin_conf FILE PORT
origin_conf() {
  nginx_conf "$1" origin 8192 <<EOC
  keepalive_timeout 300s; keepalive_requests 100000000;
  server { listen 127.0.0.1:$2 backlog=4096;
    location = /small { default_type text/plain; return 200 "hello from the benchmark origin\n"; } }
EOC
}

# A one-worker gateway without access log, one http listener routing everything to one origin
# (or, with ROUTE "respond", answering every request itself with the origin's /small text).
#   gateway_toml ADMIN_PORT LISTEN_PORT ORIGIN_PORT MAX_IDLE_PER_BACKEND [ROUTE]
gateway_toml() {
  local route='pool = "origin"'
  [ "${5:-}" = respond ] && route='respond = { status = 200, body = "hello from the benchmark origin\n" }'
  cat <<EOC
[runtime]
workers = 1
[observability]
admin_bind = "127.0.0.1:$1"
log_level = "warn"
access_log = false
[[listeners]]
name = "h1"
bind = "127.0.0.1:$2"
protocol = "http"
idle_timeout = "300s"
  [[listeners.routes]]
  $route
[[pools]]
name = "origin"
max_idle_per_backend = $4
  [[pools.backends]]
  address = "127.0.0.1:$3"
EOC
}

# The permission flags the gateway needs for a config (scripts/flags.ts, as the test suite uses).
#   gateway_flags TOML
gateway_flags() {
  "$DENO" run --allow-read --allow-env --allow-run scripts/flags.ts --print -- main.ts "$1"
}

# Waits (at most 15 s) until the gateway with this admin port answers /readyz; fails otherwise.
#   wait_ready ADMIN_PORT
wait_ready() {
  for _ in $(seq 150); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "the gateway with admin port $1 did not become ready" >&2
  return 1
}

# CPU per request, split (bench_floor.sh, bench_h2_cpu.sh). ticks / uticks PID: the CPU ticks of a
# process and all its threads, user+sys and user alone (proc(5) fields 14 and 15).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
uticks() { awk '{print $14}' "/proc/$1/stat"; }
# The rounds of each proxy, by name: req/s, CPU µs per request, user µs per request.
declare -A rps cpu user
# record NAME REQS_PER_SEC REQUESTS TICKS USER_TICKS ROUND: keeps one round and prints it.
record() {
  local c u
  c="$(awk -v t="$4" -v hz="$(getconf CLK_TCK)" -v n="$3" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')"
  u="$(awk -v t="$5" -v hz="$(getconf CLK_TCK)" -v n="$3" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')"
  rps[$1]+="$2 " cpu[$1]+="$c " user[$1]+="$u "
  echo "round $6 $1: $2 req/s, $c µs CPU per request ($u µs user)"
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# cpu_table NAME...: the medians of what record() kept, a row per proxy.
cpu_table() {
  echo
  printf '%-8s %12s %18s %18s\n' proxy "req/s" "CPU µs/request" "user µs/request"
  for name in "$@"; do
    printf '%-8s %12s %18s %18s\n' "$name" "$(median "${rps[$name]}")" "$(median "${cpu[$name]}")" \
      "$(median "${user[$name]}")"
  done
}
