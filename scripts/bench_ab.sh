#!/usr/bin/env bash
# Is a change to the gateway faster? Runs two revisions side by side against one nginx origin and
# compares them in interleaved short slices: A (a git revision, checked out into a temporary
# worktree) and B (the working tree as it is now). Same load as the h1-small row of scripts/bench
# (wrk -t1 -c50 GET /small; wrk on CPU 0, origin and both gateways on CPU 1), or with --h2 as the
# h2-small row (h2load -c10 -m10, h2c prior knowledge). With --respond, the gateways answer every
# request themselves (a `respond` route with the origin's text): the cost of a front and a gateway
# answer, without the upstream leg. With --close, every HTTP/1.1 request asks for
# `Connection: close` (the h1-small-close row: a new client connection per request).
#
# Why slices: on this kind of machine the speed of the same process changes by up to 1.8x from
# one second to the next (measured: the bare relay of bench_floor.sh gave 32k to 59k req/s in
# consecutive 1-second runs), so two long runs one after the other compare the machine's moods,
# not the code. A and B alternate every SECONDS, and each pair of neighbouring slices gives one
# ratio; the median of those ratios (with the quartiles, to show the spread) is the answer.
# Nothing is asserted.
#   scripts/bench_ab.sh [--h2] [--respond] [--close] REV_A [SLICES] [SECONDS]   (defaults: 20 slices of 1 s each)
# Both sides run under the working tree's flags (scripts/flags.ts, deno.json). To compare a flag
# itself, give it to B alone: B_EXTRA="--v8-flags=--single-threaded-gc" scripts/bench_ab.sh HEAD.
set -euo pipefail
cd "$(dirname "$0")/.."
H2=0 ROUTE=pool CLOSE=()
while [ "${1:-}" = "--h2" ] || [ "${1:-}" = "--respond" ] || [ "${1:-}" = "--close" ]; do
  case "$1" in
    --h2) H2=1 ;;
    --respond) ROUTE=respond ;;
    --close) CLOSE=(-H "Connection: close") ;;
  esac
  shift
done
REV_A="${1:?usage: scripts/bench_ab.sh [--h2] [--respond] [--close] REV_A [SLICES] [SECONDS]}"
SLICES="${2:-20}"
SECS="${3:-1}"
BENCH_NAME=ab
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
ROOT="$PWD"
# The worktree is removed with W (bench_common's EXIT trap), and unregistered here.
trap 'git -C "$ROOT" worktree remove --force "$W/a" >/dev/null 2>&1 || true; bench_cleanup' EXIT
git worktree add --detach "$W/a" "$REV_A" >/dev/null 2>&1 || {
  echo "bench_ab: cannot check out $REV_A" >&2
  exit 2
}
ln -s "$ROOT/node_modules" "$W/a/node_modules"
read -r OP AAP BAP AP BP < <(free_ports 5)
origin_conf "$W/origin.conf" "$OP"
gateway_toml "$AAP" "$AP" "$OP" 128 "$ROUTE" >"$W/a.toml"
gateway_toml "$BAP" "$BP" "$OP" 128 "$ROUTE" >"$W/b.toml"
taskset -c 1 nginx -c "$W/origin.conf" -g 'daemon off;' & pids+=($!)
# The two configs differ in their ports only: one set of flags for both.
flags="$(gateway_flags "$W/a.toml")"
# shellcheck disable=SC2086 # the flags are separate words
(cd "$W/a" && exec taskset -c 1 "$DENO" run --no-prompt $flags main.ts "$W/a.toml") >"$W/a.log" 2>&1 & pids+=($!)
a_pid=$!
# shellcheck disable=SC2086
taskset -c 1 "$DENO" run --no-prompt $flags ${B_EXTRA:-} main.ts "$W/b.toml" >"$W/b.log" 2>&1 & pids+=($!)
b_pid=$!
wait_ready "$AAP" && wait_ready "$BAP" || {
  cat "$W/a.log" "$W/b.log" >&2
  exit 1
}
hz="$(getconf CLK_TCK)"
# One slice of load against a port; prints "<requests> <req/s> <p99 µs>" (p99 from wrk only: h2load
# reports no percentiles, so "-" for h2c).
load() {
  if [ "$H2" = 1 ]; then
    taskset -c 0 h2load -t1 -c10 -m10 "-D$2" "http://127.0.0.1:$1/small" |
      awk '/^finished in/ {gsub(",", ""); r = $4} /^requests:/ {n = $8} END {print n, r, "-"}'
  else
    taskset -c 0 wrk --latency -t1 -c50 "-d${2}s" "${CLOSE[@]}" "http://127.0.0.1:$1/small" |
      awk 'function us(x) { return x ~ /us$/ ? x + 0 : (x ~ /ms$/ ? x * 1000 : x * 1e6) }
        /requests in/ {n = $1} /Requests\/sec/ {r = $2} $1 == "99%" {p = us($2)} END {print n, r, p}'
  fi
}
load "$AP" 1 >/dev/null # warm-up, not recorded
load "$BP" 1 >/dev/null
ratios_rps="" ratios_cpu="" ratios_p99="" rps_a="" rps_b=""
for i in $(seq "$SLICES"); do
  declare -A r c p
  # Alternate which goes first, so neither always follows the other.
  if [ $((i % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for side in $order; do
    if [ "$side" = A ]; then port=$AP pid=$a_pid; else port=$BP pid=$b_pid; fi
    t0="$(ticks "$pid")"
    read -r n rate p99 < <(load "$port" "$SECS")
    t1="$(ticks "$pid")"
    r[$side]="$rate" p[$side]="$p99"
    c[$side]="$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$n" 'BEGIN {printf "%.2f", (n > 0 ? t / hz * 1e6 / n : 0)}')"
  done
  echo "slice $i: A ${r[A]} req/s ${c[A]} µs/req p99 ${p[A]} µs   B ${r[B]} req/s ${c[B]} µs/req p99 ${p[B]} µs"
  [ "$H2" = 1 ] || ratios_p99+="$(awk -v a="${p[A]}" -v b="${p[B]}" 'BEGIN {printf "%.4f", (a > 0 ? b / a : 1)}') "
  rps_a+="${r[A]} " rps_b+="${r[B]} "
  ratios_rps+="$(awk -v a="${r[A]}" -v b="${r[B]}" 'BEGIN {printf "%.4f", b / a}') "
  ratios_cpu+="$(awk -v a="${c[A]}" -v b="${c[B]}" 'BEGIN {printf "%.4f", (a > 0 ? b / a : 1)}') "
done
# median (q1–q3) of a list of numbers
summary() {
  tr ' ' '\n' <<<"$1" | grep . | sort -g |
    awk '{a[NR] = $1} END {printf "%.3f (q1 %.3f, q3 %.3f)", a[int((NR + 1) / 2)], a[int(NR / 4) + 1], a[int(3 * NR / 4) + (NR < 4 ? 1 : 0)]}'
}
echo
echo "A = $REV_A ($(git rev-parse --short "$REV_A")), B = the working tree; load: $([ "$H2" = 1 ] && echo "h2load -c10 -m10 (h2c)" || echo "wrk -c50 (HTTP/1.1${CLOSE:+, Connection: close})"), route: $ROUTE"
echo "A req/s median $(summary "$rps_a")"
echo "B req/s median $(summary "$rps_b")"
echo "B/A req/s, paired: $(summary "$ratios_rps")   (> 1: B is faster)"
echo "B/A CPU per request, paired: $(summary "$ratios_cpu")   (< 1: B is cheaper)"
[ "$H2" = 1 ] || echo "B/A p99 latency, paired: $(summary "$ratios_p99")   (< 1: B's tail is shorter)"
