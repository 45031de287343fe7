#!/usr/bin/env bash
# Token issuance over HTTP next to the same grants over gRPC, with h2load (Debian nghttp2-client),
# against one release `tessera serve` (throwaway SQLite database): the anonymous grant (a
# marketplace client's client_credentials, no database write) and the integration grant
# (client_credentials with the secret: a session and a refresh token written per call).
#
# For each grant, three runs with 64 requests in flight:
#   grpc   IssueToken over HTTP/2 (8 connections x 8 streams)
#   h2c    POST /v1/auth/token over HTTP/2 without TLS (8 connections x 8 streams)
#   h1     POST /v1/auth/token over HTTP/1.1 (64 connections, one request at a time each)
# Every answer is verified, not just counted: one request of each kind is made with curl first
# (grpc-status 0, or HTTP 200), and h2load's data bytes divided by its successes must equal that
# answer's size (every token answer of a kind has the same size; an error answer differs).
# After a short warm-up of each kind, the runs alternate (grpc, h2c, h1, then again for the next
# round) so that a slow moment of a shared machine does not fall on one protocol only.
#
# Usage: bash scripts/h2load-http.sh [anonymous-requests] [integration-requests] [rounds]
#        (defaults 100000 20000 2)
# Needs: h2load, curl, python3.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
anon_requests="${1:-100000}"
integ_requests="${2:-20000}"
rounds="${3:-2}"

for tool in h2load curl python3; do
    command -v "$tool" >/dev/null || { echo "h2load-http: $tool not found" >&2; exit 2; }
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
    curl -fsS "http://$http_addr/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done

# gRPC bodies: a 5-byte frame header, then IssueTokenRequest encoded by hand (client_id = 1,
# client_secret = 2, client_credentials = 10, an empty message). Form bodies for HTTP.
python3 - "$tmp" "$market" "$integ_id" "$integ_secret" <<'PY'
import struct, sys
from urllib.parse import urlencode
tmp, market, integ_id, integ_secret = sys.argv[1], *(a.encode() for a in sys.argv[2:])
def field(number, value):
    assert len(value) < 128
    return bytes([(number << 3) | 2, len(value)]) + value
def frame(message):
    return b"\x00" + struct.pack(">I", len(message)) + message
open(f"{tmp}/anon.grpc", "wb").write(frame(field(1, market) + field(10, b"")))
open(f"{tmp}/integ.grpc", "wb").write(
    frame(field(1, integ_id) + field(2, integ_secret) + field(10, b"")))
open(f"{tmp}/anon.form", "w").write(
    urlencode({"grant_type": "client_credentials", "client_id": market.decode()}))
open(f"{tmp}/integ.form", "w").write(urlencode({
    "grant_type": "client_credentials", "client_id": integ_id.decode(),
    "client_secret": integ_secret.decode()}))
PY

# The server's CPU time so far (user + system, in clock ticks): what a request costs it, whatever
# else the machine's cores are doing (req/s on a shared machine swings by tens of percent).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }

grpc_headers=(-H "content-type: application/grpc" -H "te: trailers")
form_headers=(-H "content-type: application/x-www-form-urlencoded")

run() { # grant protocol requests
    local grant="$1" protocol="$2" requests="$3" name="$1-$2"
    local url body expected h2load_args=()
    case "$protocol" in
        grpc)
            url="http://$addr/tessera.auth.v1.AuthService/IssueToken"
            body="$tmp/$grant.grpc"
            curl -s --http2-prior-knowledge "${grpc_headers[@]}" --data-binary "@$body" \
                -D "$tmp/$name.headers" -o "$tmp/$name.out" "$url"
            grep -qi '^grpc-status: 0' "$tmp/$name.headers" \
                || { echo "h2load-http: $name answered an error" >&2; cat "$tmp/$name.headers" >&2; exit 1; }
            h2load_args=(-c 8 -m 8 -H "content-type: application/grpc" -H "te: trailers")
            ;;
        h2c|h1)
            url="http://$http_addr/v1/auth/token"
            body="$tmp/$grant.form"
            local code
            code="$(curl -s "${form_headers[@]}" --data-binary "@$body" -o "$tmp/$name.out" \
                -w '%{http_code}' "$url")"
            [[ "$code" == 200 ]] \
                || { echo "h2load-http: $name answered $code: $(cat "$tmp/$name.out")" >&2; exit 1; }
            if [[ "$protocol" == h2c ]]; then
                h2load_args=(-c 8 -m 8)
            else
                h2load_args=(--h1 -c 64 -m 1)
            fi
            h2load_args+=(-H "content-type: application/x-www-form-urlencoded")
            ;;
    esac
    expected="$(stat -c %s "$tmp/$name.out")"
    local before after
    before="$(cpu_ticks)"
    h2load -n "$requests" -t 1 -d "$body" "${h2load_args[@]}" "$url" >"$tmp/$name.h2load"
    after="$(cpu_ticks)"
    python3 - "$name" "$expected" "$tmp/$name.h2load" "$((after - before))" "$(getconf CLK_TCK)" <<'PY'
import re, sys
name, size, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ticks, hz = int(sys.argv[4]), int(sys.argv[5])
text = open(path).read()
rps = float(re.search(r"finished in [^,]+, ([\d.]+) req/s", text).group(1))
succeeded = int(re.search(r"requests: .*?(\d+) succeeded", text).group(1))
failed = int(re.search(r"requests: .*? (\d+) failed", text).group(1))
data = int(re.search(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?, .*?\((\d+)\) data", text).group(3))
lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text)
per = data / max(succeeded, 1)
ok = failed == 0 and abs(per - size) < 1e-9
cpu_us = ticks / hz * 1e6 / max(succeeded + failed, 1)
print(f"{name:12} {rps:7.0f} req/s  server CPU {cpu_us:5.1f} us/req  latency mean {lat.group(3)} (max {lat.group(2)})"
      f"  {succeeded} ok, {failed} failed; {per:.0f} B/answer = {size}: {'every answer OK' if ok else 'MISMATCH'}")
open(path + ".rps", "w").write(f"{rps}\n")
open(path + ".cpu", "w").write(f"{cpu_us}\n")
sys.exit(0 if ok else 1)
PY
}

echo "h2load-http: $(nproc) CPUs, tessera serve (release, SQLite): gRPC on $addr, HTTP on $http_addr; $rounds rounds; 64 in flight"
echo "-- warm-up (not counted)"
for protocol in grpc h2c h1; do
    run anon "$protocol" 5000 >/dev/null
done
for round in $(seq 1 "$rounds"); do
    echo "-- round $round"
    for grant in anon integ; do
        requests="$anon_requests"; [[ "$grant" == integ ]] && requests="$integ_requests"
        for protocol in grpc h2c h1; do
            run "$grant" "$protocol" "$requests"
            cp "$tmp/$grant-$protocol.h2load.rps" "$tmp/$grant-$protocol.$round.rps"
            cp "$tmp/$grant-$protocol.h2load.cpu" "$tmp/$grant-$protocol.$round.cpu"
        done
    done
done

echo "-- HTTP against gRPC (1.00 = as fast; the target: HTTP within 15% of gRPC)"
python3 - "$tmp" "$rounds" <<'PY'
import statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
read = lambda n, kind: float(open(f"{tmp}/{n}.{kind}").read())
for grant in ("anon", "integ"):
    for r in range(1, rounds + 1):
        grpc, grpc_cpu = read(f"{grant}-grpc.{r}", "rps"), read(f"{grant}-grpc.{r}", "cpu")
        parts = [f"{p} {read(f'{grant}-{p}.{r}', 'rps') / grpc:.2f}x req/s, "
                 f"{read(f'{grant}-{p}.{r}', 'cpu') / grpc_cpu:.2f}x CPU/req" for p in ("h2c", "h1")]
        print(f"{grant:5} round {r}: grpc {grpc:.0f} req/s, {grpc_cpu:.1f} us/req; " + "; ".join(parts))
    for p in ("h2c", "h1"):
        rps = statistics.median(read(f"{grant}-{p}.{r}", "rps") / read(f"{grant}-grpc.{r}", "rps")
                                for r in range(1, rounds + 1))
        cpu = statistics.median(read(f"{grant}-{p}.{r}", "cpu") / read(f"{grant}-grpc.{r}", "cpu")
                                for r in range(1, rounds + 1))
        print(f"{grant:5} {p:3} median of {rounds} rounds: {rps:.2f}x gRPC's req/s, {cpu:.2f}x its CPU per request")
PY
