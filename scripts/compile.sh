#!/usr/bin/env bash
# Builds the one binary, `expressgateway`, with `deno compile` and the product's permission flags:
#   - the base list kept once in deno.json ("expressgateway".permissions; scripts/flags.ts reads the same list)
#   - --allow-read limited to the paths given with --read (default: /etc/expressgateway): the config
#     file's directory and every directory holding a TLS cert, key or CA the config names
#   - --allow-write limited to the paths given with --write (none by default): the directory of
#     control.cache_file when the config comes from etcd (the cache is rewritten by rename)
#   - --allow-ffi unless --no-ffi: libc's setsockopt(TCP_NODELAY) on https listeners
#     (src/net/tcp_nodelay.ts; without it responses stall up to 40 ms behind delayed ACKs) and
#     libbpf for XDP, both through Deno FFI
#   - --no-prompt (a daemon never prompts: a missing permission is an error, reported as such)
#   - --frozen: deno.lock must already pin every import
#   - --include src/runtime/worker.ts: data-plane workers are loaded by URL at run time, so the
#     module graph does not see them (under `deno run` they are read from src/ instead)
# The binary takes the same CLI as main.ts (expressgateway [--check] CONFIG, --version, --help).
#
# Usage: scripts/compile.sh [--read ABS_PATH]... [--write ABS_PATH]... [--xdp | --no-ffi] [--output PATH]
#                           [--target TRIPLE] [--print-flags] [--download]
#   --read PATH       allow reading PATH (absolute; repeat for each config/cert directory, and for
#                     the directory of xdp.object_path in an XDP build)
#   --write PATH      allow writing PATH (absolute; the etcd cache_file's directory)
#   --xdp             XDP build (needs FFI, which the default build has; refused with --no-ffi)
#   --no-ffi          no --allow-ffi: no XDP, and https listeners log that TCP_NODELAY is not set
#   --output PATH     where to write the binary (default: ./expressgateway)
#   --target TRIPLE   deno compile --target (default: this machine's)
#   --print-flags     print the flags and exit without compiling
#   --download        let deno download the denort runtime when none is found (needs network)
#
# deno compile embeds the program into `denort`, Deno's slim runtime, which it normally downloads.
# This machine cannot reach that download, and the npm `deno` package ships only the `deno` CLI,
# so an offline build needs DENORT_BIN=/path/to/denort (the denort of the SAME Deno version as
# the deno that compiles, 2.9.6 here, from denort-<target>.zip of that release). Without
# DENORT_BIN the script uses a denort already cached in DENO_DIR/dl or next to the deno binary,
# and otherwise stops with a message saying to set DENORT_BIN (unless --download).
set -euo pipefail
export DENO_NO_PACKAGE_JSON=1
cd "$(dirname "$0")/.."

die() {
  echo "compile.sh: $*" >&2
  exit 2
}

reads=()
writes=()
xdp=0
ffi=1
output="./expressgateway"
target=""
print_only=0
download=0
# Test-only: accept the deno CLI as DENORT_BIN. The result then runs as the deno CLI, not as the
# gateway; tests/integration/permissions.test.ts uses it only to inspect the flags embedded.
cli_runtime_ok=0
while [ $# -gt 0 ]; do
  case "$1" in
    --read)
      [ $# -ge 2 ] || die "--read needs a path"
      reads+=("$2")
      shift 2
      ;;
    --read=*) reads+=("${1#--read=}"); shift ;;
    --write)
      [ $# -ge 2 ] || die "--write needs a path"
      writes+=("$2")
      shift 2
      ;;
    --write=*) writes+=("${1#--write=}"); shift ;;
    --xdp) xdp=1; shift ;;
    --no-ffi) ffi=0; shift ;;
    --output | -o)
      [ $# -ge 2 ] || die "$1 needs a path"
      output="$2"
      shift 2
      ;;
    --output=*) output="${1#--output=}"; shift ;;
    --target)
      [ $# -ge 2 ] || die "--target needs a target triple"
      target="$2"
      shift 2
      ;;
    --print-flags) print_only=1; shift ;;
    --download) download=1; shift ;;
    --allow-cli-runtime-for-tests) cli_runtime_ok=1; shift ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$1' (see scripts/compile.sh --help)" ;;
  esac
done
[ "$xdp" = 1 ] && [ "$ffi" = 0 ] && die "--xdp needs FFI (libbpf): drop --no-ffi"
[ ${#reads[@]} -gt 0 ] || reads=(/etc/expressgateway)
for p in "${reads[@]}" ${writes[@]+"${writes[@]}"}; do
  # A relative path would be resolved against the build machine's working directory and baked in.
  case "$p" in
    /*) ;;
    *) die "'$p' must be an absolute path (it is fixed in the binary at build time)" ;;
  esac
  case "$p" in
    *,*) die "'$p' contains a comma, which --allow-read/--allow-write use as their separator" ;;
  esac
done

# The deno that compiles: the repo's pinned one (npm ci), else $DENO, else deno on PATH.
if [ -n "${DENO:-}" ]; then
  deno="$DENO"
elif [ -x node_modules/.bin/deno ]; then
  deno="node_modules/.bin/deno"
else
  deno="$(command -v deno || true)"
fi
[ -n "$deno" ] && [ -x "$deno" ] || die "no deno found: run 'npm ci' (pins deno in node_modules/.bin) or set DENO"

# The base list, read from deno.json by deno itself (no jq needed).
mapfile -t base < <("$deno" eval --quiet \
  'for (const f of JSON.parse(Deno.readTextFileSync("deno.json")).expressgateway.permissions) console.log(f)')
[ ${#base[@]} -gt 0 ] || die "deno.json has no \"expressgateway\".permissions list"

flags=("${base[@]}" "--allow-read=$(IFS=,; echo "${reads[*]}")")
[ ${#writes[@]} -gt 0 ] && flags+=("--allow-write=$(IFS=,; echo "${writes[*]}")")
[ "$ffi" = 1 ] && flags+=(--allow-ffi)
flags+=(--no-prompt)

compile_args=(compile --frozen "${flags[@]}" --include src/runtime/worker.ts --output "$output")
[ -n "$target" ] && compile_args+=(--target "$target")
compile_args+=(main.ts)

echo "compile.sh: permission flags: ${flags[*]}"
if [ "$print_only" = 1 ]; then
  exit 0
fi

# Find the denort runtime before deno tries (and, offline, fails) to download it.
version="$("$deno" --version | head -1 | awk '{print $2}')"
if [ -z "${DENORT_BIN:-}" ]; then
  triple="$target"
  [ -n "$triple" ] || triple="$("$deno" eval --quiet 'console.log(Deno.build.target)')"
  deno_dir="$("$deno" eval --quiet 'console.log(Deno.env.get("DENO_DIR") ?? "")')"
  [ -n "$deno_dir" ] || deno_dir="${XDG_CACHE_HOME:-$HOME/.cache}/deno"
  cached="$deno_dir/dl/release/v$version/denort-$triple.zip"
  beside="$(dirname "$(readlink -f "$deno")")/denort"
  if [ -f "$cached" ]; then
    echo "compile.sh: using the cached runtime $cached"
  elif [ -x "$beside" ]; then
    export DENORT_BIN="$beside"
  elif [ "$download" = 1 ]; then
    echo "compile.sh: no denort found; deno will download denort-$triple.zip (v$version)"
  else
    die "no denort runtime: set DENORT_BIN=/path/to/denort (Deno v$version, target $triple; the denort
binary from denort-$triple.zip of that Deno release). Looked for $cached and $beside.
The npm 'deno' package ships only the deno CLI, and this machine cannot download denort.
(With network access, pass --download to let deno fetch it.)"
  fi
fi
if [ -n "${DENORT_BIN:-}" ]; then
  [ -f "$DENORT_BIN" ] || die "DENORT_BIN=$DENORT_BIN does not exist"
  [ -x "$DENORT_BIN" ] || die "DENORT_BIN=$DENORT_BIN is not executable"
  # The deno CLI answers `fmt --help`; denort has no tooling subcommands. A binary built on the
  # CLI ignores the embedded program and runs as deno, so refuse it.
  if [ "$cli_runtime_ok" != 1 ] && "$DENORT_BIN" fmt --help >/dev/null 2>&1; then
    die "DENORT_BIN=$DENORT_BIN is the deno CLI, not denort: the binary would run as deno, not as the gateway"
  fi
  echo "compile.sh: runtime DENORT_BIN=$DENORT_BIN (must be denort v$version)"
fi

echo "compile.sh: $deno ${compile_args[*]}"
"$deno" "${compile_args[@]}"
echo "compile.sh: wrote $output"
