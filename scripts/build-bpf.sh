#!/usr/bin/env bash
# Compiles the XDP programs in bpf/ with Debian clang (BPF target, -g for BTF). Called by
# scripts/setup.sh, so CI always rebuilds the objects from source; bpf/*.o is gitignored and
# never trusted from the tree. Usage: bash scripts/build-bpf.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG="${CLANG:-clang}"
trap 'rm -f bpf/*.o.tmp.$$' EXIT
for src in bpf/xdp_lb.c bpf/xdp_pass.c; do
  obj="${src%.c}.o"
  # Write to a temporary name first: a failed build never leaves a stale or truncated object.
  "$CLANG" -O2 -g -Wall -Werror -target bpf -I/usr/include/x86_64-linux-gnu -c "$src" -o "$obj.tmp.$$"
  mv "$obj.tmp.$$" "$obj"
done
echo "build-bpf: ok ($(ls bpf/*.o | tr '\n' ' '))"
