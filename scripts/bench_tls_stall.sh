#!/usr/bin/env bash
# The https Nagle stall, with and without TCP_NODELAY on the listener (src/net/tcp_nodelay.ts):
# the gateway (https, 2 workers) in front of an nginx origin, run once with its product flags and
# once with --allow-ffi removed (so nothing sets the option). Two clients each time:
#   - node http2 with its default 64 KiB windows downloading 20 MB (Nagle stalls once per window)
#   - curl, 20 sequential requests on one connection alternating 100 B and 200 KB responses
# Prints the times; nothing is asserted (timings belong here, not in tests). About 20 s.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_NAME=tls-stall
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
mkdir -p "$W/www"
chmod 755 "$W" "$W/www" # nginx workers run as an unprivileged user
head -c 20000000 /dev/urandom >"$W/www/20m"
head -c 200000 /dev/urandom >"$W/www/200k"
head -c 100 /dev/urandom >"$W/www/100b"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$W/k.pem" -out "$W/c.pem" 2>/dev/null
read -r OP GP AP < <(free_ports 3)
nginx_conf "$W/origin.conf" origin 1024 <<EOC
  sendfile on;
  server { listen 127.0.0.1:$OP; root $W/www; }
EOC
cat >"$W/gw.toml" <<EOC
[observability]
admin_bind = "127.0.0.1:$AP"
log_level = "warn"
access_log = false
[[listeners]]
name = "tls"
bind = "127.0.0.1:$GP"
protocol = "https"
tls = { cert = "$W/c.pem", key = "$W/k.pem" }
  [[listeners.routes]]
  pool = "origin"
[[pools]]
name = "origin"
  [[pools.backends]]
  address = "127.0.0.1:$OP"
EOC
cat >"$W/h2dl.mjs" <<EOC
import http2 from "node:http2";
const t0 = Date.now();
const s = http2.connect("https://127.0.0.1:$GP", { rejectUnauthorized: false });
const req = s.request({ ":path": "/20m" });
let n = 0;
req.on("data", (d) => (n += d.length));
req.on("end", () => { console.log("  node http2, 64 KiB windows, 20 MB: " + n + " bytes in " + ((Date.now() - t0) / 1000).toFixed(2) + " s"); s.close(); });
EOC
nginx -c "$W/origin.conf" -g 'daemon off;' & pids+=($!)
flags="$(gateway_flags "$W/gw.toml")"
for mode in with without; do
  f="$flags"
  [ "$mode" = without ] && f="${f// --allow-ffi/}"
  # shellcheck disable=SC2086 # the flags are separate words
  "$DENO" run --no-prompt $f main.ts "$W/gw.toml" >"$W/gw-$mode.log" 2>&1 &
  gpid=$!
  pids+=("$gpid")
  wait_ready "$AP"
  echo "$mode TCP_NODELAY on the listener$(grep -q 'TCP_NODELAY is not set' "$W/gw-$mode.log" && echo ' (the gateway warned at start)')"
  timeout 120 node "$W/h2dl.mjs"
  for v in 1.1 2; do
    urls=() outs=()
    for _ in $(seq 10); do
      urls+=("https://127.0.0.1:$GP/100b" "https://127.0.0.1:$GP/200k")
      outs+=(-o /dev/null -o /dev/null)
    done
    times="$(curl -sk "--http$v" "${outs[@]}" -w '%{time_total}\n' "${urls[@]}")"
    slow="$(awk '$1 > 0.030' <<<"$times" | wc -l)"
    max="$(sort -g <<<"$times" | tail -1)"
    echo "  curl --http$v, 20 sequential requests: $slow over 30 ms, slowest ${max} s"
  done
  kill -INT "$gpid"
  wait "$gpid" || true
done
