# Shared by the small benchmark scripts (scripts/bench_floor.sh, scripts/bench_tls_stall.sh):
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
