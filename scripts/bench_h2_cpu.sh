#!/usr/bin/env bash
# Where the HTTP/2 gap to nghttpx goes: the h2-small load of scripts/bench (h2load -c10 -m10 -t1,
# h2c prior knowledge, GET /small, 32-byte answers; h2load on CPU 0, origin and proxy on CPU 1)
# against two proxies in alternating rounds, both HTTP/1.1 to the same nginx origin:
#   nghttpx  one worker thread, scripts/bench's settings in short
#   gateway  this gateway (1 worker, no access log)
# Prints median req/s, CPU µs per request of the proxy process (user+sys from /proc) and the user
# part of it, and the ratio. Both make about the same system calls per request (strace -c: 1.1
# sends and 1.1 receives, the client side batched over the streams of a read), so the system
# part is the socket work both pay alike and the user part is what each does on top. Nothing is
# asserted. About 40 seconds with the defaults.
#   scripts/bench_h2_cpu.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_NAME=h2cpu
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
ROUNDS="${1:-3}"
SECS="${2:-5}"
read -r OP NP GP AP < <(free_ports 4)
origin_conf "$W/origin.conf" "$OP"
cat >"$W/nghttpx.conf" <<EOC
frontend=127.0.0.1,$NP;no-tls
backend=127.0.0.1,$OP;;proto=http/1.1
workers=1
single-process=yes
no-ocsp=yes
pid-file=$W/nghttpx.pid
errorlog-file=$W/nghttpx.err
add-x-forwarded-for=yes
frontend-keep-alive-timeout=300s
frontend-http2-read-timeout=300s
backend-keep-alive-timeout=60s
backend-connections-per-frontend=0
EOC
gateway_toml "$AP" "$GP" "$OP" 64 >"$W/gw.toml"
taskset -c 1 nginx -c "$W/origin.conf" -g 'daemon off;' & pids+=($!)
taskset -c 1 nghttpx --conf="$W/nghttpx.conf" & pids+=($!)
nghttpx_pid=$!
flags="$(gateway_flags "$W/gw.toml")"
# shellcheck disable=SC2086 # the flags are separate words
taskset -c 1 "$DENO" run --no-prompt $flags main.ts "$W/gw.toml" >"$W/gw.log" 2>&1 & pids+=($!)
gw_pid=$!
wait_ready "$AP"
for _ in $(seq 50); do curl -sf --http2-prior-knowledge "http://127.0.0.1:$NP/small" >/dev/null && break; sleep 0.1; done
load() { taskset -c 0 h2load -c10 -m10 -t1 -D "$2" "http://127.0.0.1:$1/small"; }
for name in nghttpx gateway; do # warm-up, not recorded
  case $name in nghttpx) port=$NP ;; gateway) port=$GP ;; esac
  load "$port" 1 >/dev/null
done
for round in $(seq "$ROUNDS"); do
  for name in nghttpx gateway; do
    case $name in
      nghttpx) port=$NP pid=$nghttpx_pid ;;
      gateway) port=$GP pid=$gw_pid ;;
    esac
    a="$(ticks "$pid")" ua="$(uticks "$pid")"
    out="$(load "$port" "$SECS")"
    b="$(ticks "$pid")" ub="$(uticks "$pid")"
    reqs="$(awk '/^requests:/ {print $8}' <<<"$out")" # succeeded
    r="$(awk -v n="$reqs" -v s="$SECS" 'BEGIN {printf "%.0f", n / s}')"
    record "$name" "$r" "$reqs" $((b - a)) $((ub - ua)) "$round"
  done
done
cpu_table nghttpx gateway
x="$(median "${rps[nghttpx]}")" g="$(median "${rps[gateway]}")"
awk -v x="$x" -v g="$g" 'BEGIN {printf "gateway/nghttpx %.2f\n", g / x}'
