#!/usr/bin/env bash
# Installs everything the tests and the benchmark need, every time it is run (fast when all is
# present). Debian packages: the real peers the tests talk to. npm packages: the toolchain
# (deno) and node-side test peers. Needs root for apt-get (CI and the dev machines run as root).
set -euo pipefail
# Deno resolves its imports from deno.json + deno.lock only; package.json is for npm (toolchain, node peers).
export DENO_NO_PACKAGE_JSON=1
cd "$(dirname "$0")/.."

PACKAGES=(curl openssl procps iproute2 nginx libnginx-mod-stream haproxy caddy ngtcp2-client ngtcp2-server nghttp2-client nghttp2-proxy wrk
  etcd-server prometheus clang llvm libbpf-dev bpftool ethtool)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts some of these as system services on install; tests start their own
  # instances. Stop only those system services (by their pid files), never anything by name.
  for svc in nginx haproxy caddy nghttpx etcd; do
    if [ -s "/run/$svc.pid" ]; then kill "$(cat "/run/$svc.pid")" 2>/dev/null || true; fi
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl stop "$svc" >/dev/null 2>&1 || true
    fi
  done
fi

if [ ! -x node_modules/.bin/deno ]; then npm ci --no-audit --no-fund; fi
# Warm Deno's cache of the pinned npm imports (deno.lock) so tests start fast.
node_modules/.bin/deno install --frozen >/dev/null
bash scripts/build-bpf.sh
echo "setup: ok ($(node_modules/.bin/deno --version | head -1))"
