#!/usr/bin/env bash
# What metrics cost a call, in instructions (valgrind's callgrind counts instructions, not
# seconds: the same on a busy machine as on a quiet one). For each RPC and each setting
# (TESSERA_METRICS_LISTEN off, then on), `tessera serve` runs under callgrind twice, taking 500
# and then 2,500 calls from h2load; the difference of the two totals over 2,000 is what one call
# costs, start-up and the background jobs cancelled out.
#
# Usage: bash scripts/callgrind-metrics.sh        (RPCS="health issue" by default)
# Needs: valgrind, h2load (Debian nghttp2-client), python3; a release build.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
for tool in valgrind h2load python3; do
    command -v "$tool" >/dev/null || { echo "callgrind-metrics: $tool not found" >&2; exit 2; }
done
cargo build --release --quiet --bin tessera
bin="$repo_root/target/release/tessera"
source "$(dirname "${BASH_SOURCE[0]}")/lib/scratch-server.sh"
export RUST_LOG=warn TESSERA_HTTP_LISTEN=off
"$bin" migrate >/dev/null 2>&1
market="$("$bin" client create --name w --kind marketplace --json | json_get 'd["client_id"]')"
python3 - "$tmp" "$market" <<'PY'
import struct, sys
tmp, market = sys.argv[1], sys.argv[2].encode()
def field(n, v): return bytes([(n << 3) | 2, len(v)]) + v
def frame(m): return b"\x00" + struct.pack(">I", len(m)) + m
open(f"{tmp}/health.bin", "wb").write(frame(b""))
open(f"{tmp}/issue.bin", "wb").write(frame(field(1, market) + field(10, b"")))
PY
measure() { # metrics rpc n
    local m="$1" rpc="$2" n="$3" path
    [[ "$rpc" == health ]] && path=/grpc.health.v1.Health/Check || path=/tessera.auth.v1.AuthService/IssueToken
    local env_m=off; [[ "$m" == on ]] && env_m=127.0.0.1:0
    TESSERA_METRICS_LISTEN=$env_m valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$m.$rpc.$n" "$bin" serve >"$tmp/s.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do
        h2load -n 1 -c 1 -d "$tmp/health.bin" -H "content-type: application/grpc" -H "te: trailers" "http://$addr/grpc.health.v1.Health/Check" 2>/dev/null | grep -q '1 succeeded' && break
        sleep 0.5
    done
    h2load -n "$n" -c 4 -m 4 -t 1 -d "$tmp/$rpc.bin" -H "content-type: application/grpc" -H "te: trailers" "http://$addr$path" | grep -E 'succeeded' >/dev/null
    kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
    grep -E '^(summary|totals):' "$tmp/cg.$m.$rpc.$n" | awk '{print $2}' | head -1
}
echo "callgrind-metrics: instructions per call, metrics off and on (tessera serve, release)"
for rpc in ${RPCS:-health issue}; do
  for m in off on; do
    a=$(measure $m $rpc 500); b=$(measure $m $rpc 2500)
    echo "$rpc metrics $m: $(( (b - a) / 2000 )) instructions per request"
  done
done
