#!/usr/bin/env bash
# What the garbage collector does to the gateway under load: one gateway (1 worker, no access log)
# proxies to an nginx origin with V8's --trace-gc-nvp on, under the h1-small load (wrk -t1 -c50
# GET /small), the h1-small-close load (--close: every request on a new connection) or the
# h2-small load (--h2: h2load -c10 -m10, h2c). wrk/h2load on CPU 0, origin and gateway on CPU 1.
# After a 2 s warm-up, prints the load's req/s (and p99 with wrk), then over the scavenges of the
# measured SECONDS: how many, mean MB allocated between two, mean MB that survived one and the
# survival rate, mean MB promoted, and the mean and largest pause. Full GCs are counted apart.
# Nothing is asserted. docs/benchmarks.md (stop 23) says what to look for.
#   scripts/bench_gc.sh [--close | --h2] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_NAME=gc
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
LOAD=h1
case "${1:-}" in
  --close) LOAD=close; shift ;;
  --h2) LOAD=h2; shift ;;
esac
SECS="${1:-5}"
read -r OP AP GP < <(free_ports 3)
origin_conf "$W/origin.conf" "$OP"
gateway_toml "$AP" "$GP" "$OP" 64 >"$W/gw.toml"
taskset -c 1 nginx -c "$W/origin.conf" -g 'daemon off;' & pids+=($!)
flags="$(gateway_flags "$W/gw.toml")"
# shellcheck disable=SC2086 # the flags are separate words
taskset -c 1 "$DENO" run --v8-flags=--trace-gc-nvp --no-prompt $flags main.ts "$W/gw.toml" >"$W/gw.log" 2>&1 &
pids+=($!)
wait_ready "$AP"
url="http://127.0.0.1:$GP/small"
printf 'wrk.headers["Connection"] = "close"\n' >"$W/close.lua"
load() { # $1 = seconds
  case $LOAD in
    h1) taskset -c 0 wrk -t1 -c50 "-d${1}s" --latency "$url" ;;
    close) taskset -c 0 wrk -t1 -c50 "-d${1}s" --latency -s "$W/close.lua" "$url" ;;
    h2) taskset -c 0 h2load -c10 -m10 "-D$1" "$url" ;;
  esac
}
load 2 >/dev/null
start="$(stat -c %s "$W/gw.log")"
out="$(load "$SECS")"
case $LOAD in
  h2) awk '/^finished in/ {print "load: h2load -c10 -m10 (h2c): " $4 " req/s"}' <<<"$out" ;;
  *) awk -v mode="$LOAD" '/Requests\/sec/ {r = $2} / 99%/ {p = $2}
       END {print "load: wrk -c50 (HTTP/1.1" (mode == "close" ? ", Connection: close" : "") "): " r " req/s, p99 " p}' <<<"$out" ;;
esac
tail -c "+$((start + 1))" "$W/gw.log" | tr -d '\0' | grep -a -o '{"pause".*' | "$DENO" eval '
const text = await new Response(Deno.stdin.readable).text();
const events = text.trim().split("\n").flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } });
const s = events.filter((e) => e.gc === "s");
if (s.length === 0) { console.log("no scavenges traced"); Deno.exit(1); }
const mean = (k) => s.reduce((a, e) => a + e[k], 0) / s.length;
const mb = (b) => (b / 1e6).toFixed(2);
console.log(`scavenges ${s.length}: allocated ${mb(mean("allocated"))} MB, survived ${mb(mean("new_space_survived"))} MB` +
  ` (${mean("new_space_survive_rate").toFixed(1)} %), promoted ${mb(mean("promoted"))} MB,` +
  ` pause mean ${mean("pause").toFixed(2)} ms, max ${Math.max(...s.map((e) => e.pause)).toFixed(2)} ms`);
console.log(`full GCs ${events.filter((e) => e.gc === "mc").length}`);
'
