#!/usr/bin/env bash
# The integration grant (client_credentials with a secret: a session and a refresh token written
# per call) under h2load over gRPC, 8 connections x 8 streams, against a release `tessera serve`
# on a throwaway SQLite file: req/s and latency, and what each call cost the server in CPU time
# and in bytes written (/proc/PID/io wchar: the log pages, the checkpoints, the answers).
#
# Usage: bash scripts/h2load-integration.sh [requests]   (default 40000, after 10000 of warm-up)
#   TESSERA_BIN=path   another build of tessera (to compare two releases, alternate runs)
#   PERF=1             also record a perf profile of the server to /tmp/perf-integration.data
# Needs: h2load (Debian nghttp2-client), python3.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
requests="${1:-40000}"
command -v h2load >/dev/null || { echo "h2load-integration: h2load not found" >&2; exit 2; }
if [[ -z "${TESSERA_BIN:-}" ]]; then
    cargo build --release --quiet --bin tessera
fi
bin="${TESSERA_BIN:-$repo_root/target/release/tessera}"

source "$(dirname "${BASH_SOURCE[0]}")/lib/scratch-server.sh"
export RUST_LOG=warn
"$bin" migrate >/dev/null 2>&1
integ_json="$("$bin" client create --name h2load-jobs --kind integration --json)"
integ_id="$(echo "$integ_json" | json_get 'd["client_id"]')"
integ_secret="$(echo "$integ_json" | json_get 'd["client_secret"]')"
"$bin" serve >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 50); do
    [[ -n "$(ss -ltn "sport = :$port" 2>/dev/null | tail -n +2)" ]] && break
    sleep 0.2
done
# IssueTokenRequest: client_id = 1, client_secret = 2, client_credentials (empty) = 10.
python3 - "$tmp" "$integ_id" "$integ_secret" <<'PY'
import struct, sys
tmp, client_id, secret = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
def field(number, value): return bytes([(number << 3) | 2, len(value)]) + value
def frame(message): return b"\x00" + struct.pack(">I", len(message)) + message
open(f"{tmp}/integ.grpc", "wb").write(frame(field(1, client_id) + field(2, secret) + field(10, b"")))
PY
url="http://$addr/tessera.auth.v1.AuthService/IssueToken"
load() {
    h2load -n "$1" -t 1 -c 8 -m 8 -d "$tmp/integ.grpc" \
        -H "content-type: application/grpc" -H "te: trailers" "$url"
}
load 10000 >/dev/null
if [[ "${PERF:-}" == 1 ]]; then
    perf record -F 999 -g -p "$server_pid" -o /tmp/perf-integration.data -- sleep 8 >/dev/null 2>&1 &
fi
written() { awk '/^wchar/ {print $2}' "/proc/$server_pid/io"; }
ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
w0="$(written)"; t0="$(ticks)"
load "$requests" | grep -E 'finished in|requests:|time for request'
w1="$(written)"; t1="$(ticks)"
echo "server per call: $(( (w1 - w0) / requests )) bytes written, $(( (t1 - t0) * 1000000 / $(getconf CLK_TCK) / requests )) us CPU"
wait_for_perf="$(jobs -p | grep -v "^$server_pid$" || true)"
[[ -n "$wait_for_perf" ]] && wait $wait_for_perf || true
