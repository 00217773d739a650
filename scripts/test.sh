#!/usr/bin/env bash
# The whole test suite: setup, static checks, then every test under tests/ against real peers.
#   npm test            (what .ci/run runs)
set -euo pipefail
# Deno resolves its imports from deno.json + deno.lock only; package.json is for npm (toolchain, node peers).
export DENO_NO_PACKAGE_JSON=1
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DENO=node_modules/.bin/deno
echo "== fmt"; $DENO fmt --check
echo "== lint"; $DENO lint
# tests/fixtures/*.mjs are node programs (npm peers such as ws and grpc-js): not type-checked by Deno.
echo "== type check"; $DENO check main.ts src/ scripts/ $(find tests -name '*.ts' | sort)
echo "== tests"
# -A: tests start real peers (node, curl, nginx, …); the gateway itself always runs as a child
# process under its own scoped flags (tests/helpers/gateway.ts → scripts/flags.ts).
$DENO test -A --no-prompt tests/ "$@"
