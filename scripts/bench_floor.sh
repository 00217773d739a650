#!/usr/bin/env bash
# How close can an HTTP/1.1 proxy on Deno's sockets get to nginx? Same load as the h1-small row of
# scripts/bench (wrk -t1 -c50 GET /small, 32-byte answers; wrk on CPU 0, origin and proxy on CPU 1)
# against three proxies in alternating rounds:
#   nginx    proxy_pass with upstream keepalive (scripts/bench's nginx config, in short)
#   floor    scripts/bench_floor_relay.ts: read → write → read → write per request, nothing else
#   gateway  this gateway (1 worker, no access log)
# Prints median req/s, CPU µs per request of the proxy process (user+sys from /proc) and the user
# part of it, and the ratios. The system part is the socket work every proxy pays alike (the same
# system calls per request); the user part is what each does on top. Nothing is asserted. About 1
# minute with the defaults.
#   scripts/bench_floor.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_NAME=floor
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
ROUNDS="${1:-3}"
SECS="${2:-5}"
read -r OP NP FP GP AP < <(free_ports 5)
origin_conf "$W/origin.conf" "$OP"
nginx_conf "$W/nginx.conf" nginx 8192 <<EOC
  keepalive_timeout 300s; keepalive_requests 100000000;
  upstream o { server 127.0.0.1:$OP; keepalive 64; }
  server { listen 127.0.0.1:$NP backlog=4096;
    location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection ""; } }
EOC
gateway_toml "$AP" "$GP" "$OP" 64 >"$W/gw.toml"
taskset -c 1 nginx -c "$W/origin.conf" -g 'daemon off;' & pids+=($!)
taskset -c 1 nginx -c "$W/nginx.conf" -g 'daemon off;' & pids+=($!)
nginx_master=$!
taskset -c 1 "$DENO" run --allow-net scripts/bench_floor_relay.ts "$FP" "$OP" & pids+=($!)
floor_pid=$!
flags="$(gateway_flags "$W/gw.toml")"
# shellcheck disable=SC2086 # the flags are separate words
taskset -c 1 "$DENO" run --no-prompt $flags main.ts "$W/gw.toml" >"$W/gw.log" 2>&1 & pids+=($!)
gw_pid=$!
wait_ready "$AP"
nginx_worker="$(pgrep -P "$nginx_master" | head -1)"
for name in nginx floor gateway; do # warm-up, not recorded
  case $name in nginx) port=$NP ;; floor) port=$FP ;; gateway) port=$GP ;; esac
  curl -sf "http://127.0.0.1:$port/small" >/dev/null
  taskset -c 0 wrk -t1 -c50 -d1s "http://127.0.0.1:$port/small" >/dev/null
done
for round in $(seq "$ROUNDS"); do
  for name in nginx floor gateway; do
    case $name in
      nginx) port=$NP pid=$nginx_worker ;;
      floor) port=$FP pid=$floor_pid ;;
      gateway) port=$GP pid=$gw_pid ;;
    esac
    a="$(ticks "$pid")" ua="$(uticks "$pid")"
    out="$(taskset -c 0 wrk -t1 -c50 "-d${SECS}s" "http://127.0.0.1:$port/small")"
    b="$(ticks "$pid")" ub="$(uticks "$pid")"
    reqs="$(awk '/requests in/ {print $1}' <<<"$out")"
    r="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    record "$name" "$r" "$reqs" $((b - a)) $((ub - ua)) "$round"
  done
done
cpu_table nginx floor gateway
n="$(median "${rps[nginx]}")" f="$(median "${rps[floor]}")" g="$(median "${rps[gateway]}")"
awk -v n="$n" -v f="$f" -v g="$g" 'BEGIN {printf "floor/nginx %.2f   gateway/nginx %.2f   gateway/floor %.2f\n", f / n, g / n, g / f}'
