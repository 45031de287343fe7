#!/usr/bin/env bash
# Tessera against panva's oidc-provider 9.13.3, side by side in one run, with h2load (Debian
# nghttp2-client) on the same machine (issue 16).
#
# Two servers run at once, each on a free port of 127.0.0.1:
#   tessera   the release `tessera serve` on a throwaway SQLite file (WAL, synchronous=NORMAL, as
#             it ships), loaded over gRPC (h2c, 8 connections x 8 streams) and over HTTP/1.1
#             (`--h1`, 64 connections: the Sharetribe endpoints /v1/auth/token and introspect)
#   peer      oidc-provider from npm (scripts/peer/oidc-provider, `npm ci` into the temp
#             directory), its built-in in-memory store (no durability), over HTTP/1.1
#             (64 connections)
# so every run has 64 requests in flight. Jobs:
#   health      the cheapest answer of each: gRPC grpc.health.v1.Health/Check, HTTP /healthz;
#               the peer's GET /jwks (it has no health endpoint; /jwks is a constant document,
#               cheaper than its discovery document in our trials)
#   introspect  RFC 7662 introspection of one hot token (Tessera: an anonymous token, the caller
#               an integration client's bearer; peer: its client's token, HTTP Basic)
#   cc-anon     client_credentials of Tessera's marketplace client (anonymous: no write)
#   cc-integ    client_credentials of Tessera's integration client (a session and a refresh
#               token written per call)
# The peer has one client_credentials grant: it runs in both cc jobs.
#
# Every run is h2load's duration mode (-D after --warm-up-time), so it takes the same time
# whatever the server's speed. Within a round the servers alternate (their order rotates from
# round to round); a first round of one-second runs warms every path up and is not counted.
# Every answer is verified, not just counted: one request of each kind is made with curl first
# and must succeed (HTTP 200, or grpc-status 0; an introspection must say active); h2load must
# report no failure and only 2xx codes; its data bytes must be a whole number of that first
# answer's size (in duration mode they cover the warm-up too, so they are not successes x size:
# an error answer or an inactive token has another size and breaks the count); and, for Tessera,
# its own metrics must show no answer other than OK / 2xx during the run.
# Reported per run: req/s; p50 and p99 latency (h2load --log-file); the server's CPU per answer
# (/proc/PID/stat user + system ticks around the run, over all its answers, warm-up included);
# the server's VmRSS right after the run (at rest before the first round). Then medians over the
# rounds, each job as a ratio to the same server's health run of the same round and to the peer.
#
# Usage: bash scripts/side-by-side.sh [rounds] [seconds-per-run] [warm-up-seconds]
#        (defaults 3 5 1: about 90 s per round)
# Needs: h2load, curl, python3, node and npm (and the npm registry, to install the peer).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
rounds="${1:-3}"
duration="${2:-5}"
warmup="${3:-1}"
for n in "$rounds" "$duration" "$warmup"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "side-by-side: rounds and seconds must be whole numbers above 0, not '$n'" >&2; exit 2; }
done

for tool in cargo h2load curl python3 node npm; do
    command -v "$tool" >/dev/null || { echo "side-by-side: $tool not found" >&2; exit 2; }
done
cargo build --release --quiet --bin tessera
bin="$repo_root/target/release/tessera"

source "$(dirname "${BASH_SOURCE[0]}")/lib/scratch-server.sh"
export RUST_LOG=warn
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
# The metrics on a port we know: they are read around every run to check the answers' codes.
metrics_addr="127.0.0.1:$(free_port)"
export TESSERA_METRICS_LISTEN="$metrics_addr"

peer_pid=""
stop_peer() {
    if [[ -n "$peer_pid" ]] && kill -0 "$peer_pid" 2>/dev/null; then
        kill "$peer_pid" 2>/dev/null || true
        wait "$peer_pid" 2>/dev/null || true
    fi
    cleanup
}
trap stop_peer EXIT

# --- the peer: installed from npm into the temp directory, never into the repository
mkdir "$tmp/peer"
cp scripts/peer/oidc-provider/{package.json,package-lock.json,server.mjs} "$tmp/peer/"
(cd "$tmp/peer" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >"$tmp/npm.log" 2>&1) \
    || { echo "side-by-side: npm ci of the peer failed (is the npm registry reachable?):" >&2; cat "$tmp/npm.log" >&2; exit 2; }
peer_addr="127.0.0.1:$(free_port)"
peer_secret="$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
PEER_PORT="${peer_addr#*:}" PEER_CLIENT_SECRET="$peer_secret" node "$tmp/peer/server.mjs" >"$tmp/peer.log" 2>&1 &
peer_pid=$!

# --- Tessera: a marketplace client (anonymous tokens) and an integration client
"$bin" migrate >/dev/null 2>&1
market="$("$bin" client create --name side-web --kind marketplace --json | json_get 'd["client_id"]')"
integ_json="$("$bin" client create --name side-jobs --kind integration --json)"
integ_id="$(echo "$integ_json" | json_get 'd["client_id"]')"
integ_secret="$(echo "$integ_json" | json_get 'd["client_secret"]')"
"$bin" serve >"$tmp/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 100); do
    curl -fsS "http://$http_addr/readyz" >/dev/null 2>&1 && curl -fsS "http://$peer_addr/jwks" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS "http://$http_addr/readyz" >/dev/null || { echo "side-by-side: tessera serve did not start:" >&2; cat "$tmp/server.log" >&2; exit 1; }
curl -fsS "http://$peer_addr/jwks" >/dev/null || { echo "side-by-side: the peer did not start:" >&2; cat "$tmp/peer.log" >&2; exit 1; }

basic() { printf 'authorization: Basic %s' "$(printf '%s:%s' "$1" "$2" | base64 -w0)"; }
peer_auth="$(basic bench "$peer_secret")"
integ_auth="$(basic "$integ_id" "$integ_secret")"
grpc_headers=(-H "content-type: application/grpc" -H "te: trailers")
form="content-type: application/x-www-form-urlencoded"

# Request bodies. gRPC: a 5-byte frame header, then the message encoded by hand (IssueTokenRequest:
# client_id = 1, client_secret = 2, client_credentials = 10, an empty message;
# IntrospectTokenRequest: token = 1). Forms for HTTP.
python3 - "$tmp" "$market" "$integ_id" "$integ_secret" <<'PY'
import struct, sys
tmp, market, integ_id, integ_secret = sys.argv[1], *(a.encode() for a in sys.argv[2:])
def field(number, value):
    assert len(value) < 128
    return bytes([(number << 3) | 2, len(value)]) + value
def frame(message):
    return b"\x00" + struct.pack(">I", len(message)) + message
open(f"{tmp}/health.grpc", "wb").write(frame(b""))
open(f"{tmp}/anon.grpc", "wb").write(frame(field(1, market) + field(10, b"")))
open(f"{tmp}/integ.grpc", "wb").write(frame(field(1, integ_id) + field(2, integ_secret) + field(10, b"")))
open(f"{tmp}/anon.form", "w").write(f"grant_type=client_credentials&client_id={market.decode()}")
open(f"{tmp}/cc.form", "w").write("grant_type=client_credentials")
open(f"{tmp}/peer-cc.form", "w").write("grant_type=client_credentials&scope=api")
PY

# A fresh hot token for each server before each introspection job: tokens live 10 minutes, and
# the peer's store keeps only its last 1000 entries (its cc runs issue far more).
fresh_tokens() {
    local bearer hot peer_hot
    bearer="$(curl -fsS "http://$http_addr/v1/auth/token" -H "$integ_auth" -d grant_type=client_credentials | json_get 'd["access_token"]')"
    hot="$(curl -fsS "http://$http_addr/v1/auth/token" -d grant_type=client_credentials -d "client_id=$market" | json_get 'd["access_token"]')"
    peer_hot="$(curl -fsS "http://$peer_addr/token" -H "$peer_auth" -d grant_type=client_credentials -d scope=api | json_get 'd["access_token"]')"
    tessera_bearer="authorization: Bearer $bearer"
    printf 'token=%s' "$hot" >"$tmp/introspect.form"
    printf 'token=%s' "$peer_hot" >"$tmp/peer-introspect.form"
    python3 - "$tmp" "$hot" <<'PY'
import struct, sys
token = sys.argv[2].encode()
assert len(token) < 16384
length = bytes([len(token) & 0x7F | 0x80, len(token) >> 7]) if len(token) >= 128 else bytes([len(token)])
message = b"\x0a" + length + token
open(f"{sys.argv[1]}/introspect.grpc", "wb").write(b"\x00" + struct.pack(">I", len(message)) + message)
PY
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
scrape() { if [[ "$1" != peer ]]; then curl -fsS "http://$metrics_addr/metrics"; fi; }

# run ROUND JOB SERVER: one h2load run of JOB against SERVER (peer, grpc or h1), verified and
# recorded as one JSON line in $tmp/results.jsonl.
run() {
    local round="$1" job="$2" server="$3" name="$2-$3"
    local url body="" pid headers=() h2load_args=()
    case "$server" in
        peer)
            pid="$peer_pid"
            h2load_args=(--h1 -c 64 -m 1)
            case "$job" in
                health) url="http://$peer_addr/jwks" ;;
                introspect) url="http://$peer_addr/token/introspection"; body="$tmp/peer-introspect.form"; headers=(-H "$form" -H "$peer_auth") ;;
                cc-anon|cc-integ) url="http://$peer_addr/token"; body="$tmp/peer-cc.form"; headers=(-H "$form" -H "$peer_auth") ;;
            esac
            ;;
        grpc)
            pid="$server_pid"
            h2load_args=(-c 8 -m 8)
            headers=("${grpc_headers[@]}")
            case "$job" in
                health) url="http://$addr/grpc.health.v1.Health/Check"; body="$tmp/health.grpc" ;;
                introspect) url="http://$addr/tessera.auth.v1.AuthService/IntrospectToken"; body="$tmp/introspect.grpc"; headers+=(-H "$tessera_bearer") ;;
                cc-anon) url="http://$addr/tessera.auth.v1.AuthService/IssueToken"; body="$tmp/anon.grpc" ;;
                cc-integ) url="http://$addr/tessera.auth.v1.AuthService/IssueToken"; body="$tmp/integ.grpc" ;;
            esac
            ;;
        h1)
            pid="$server_pid"
            h2load_args=(--h1 -c 64 -m 1)
            case "$job" in
                health) url="http://$http_addr/healthz" ;;
                introspect) url="http://$http_addr/v1/auth/introspect"; body="$tmp/introspect.form"; headers=(-H "$form" -H "$tessera_bearer") ;;
                cc-anon) url="http://$http_addr/v1/auth/token"; body="$tmp/anon.form"; headers=(-H "$form") ;;
                cc-integ) url="http://$http_addr/v1/auth/token"; body="$tmp/cc.form"; headers=(-H "$form" -H "$integ_auth") ;;
            esac
            ;;
    esac
    local curl_args=(-s "${headers[@]}" -D "$tmp/$name.headers" -o "$tmp/$name.out")
    if [[ -n "$body" ]]; then
        curl_args+=(--data-binary "@$body")
        h2load_args+=(-d "$body")
    fi
    if [[ "$server" == grpc ]]; then curl_args+=(--http2-prior-knowledge); fi
    curl "${curl_args[@]}" "$url" || { echo "side-by-side: $name: curl failed" >&2; exit 1; }
    if [[ "$server" == grpc ]]; then
        grep -qi '^grpc-status: 0' "$tmp/$name.headers" \
            || { echo "side-by-side: $name answered an error:" >&2; cat "$tmp/$name.headers" >&2; exit 1; }
    else
        head -n 1 "$tmp/$name.headers" | grep -q ' 200' \
            || { echo "side-by-side: $name answered $(head -n 1 "$tmp/$name.headers"): $(cat "$tmp/$name.out")" >&2; exit 1; }
    fi
    if [[ "$job" == introspect ]]; then
        # An inactive token is a 200 too: the first answer must say active (gRPC: field 1 = true).
        python3 -c 'import sys; b = open(sys.argv[1], "rb").read(); sys.exit(0 if (b[5:7] == b"\x08\x01" if sys.argv[2] == "grpc" else b"\"active\":true" in b) else 1)' \
            "$tmp/$name.out" "$server" || { echo "side-by-side: $name: the token is not active: $(cat "$tmp/$name.out")" >&2; exit 1; }
    fi
    local h2_headers=()
    for h in "${headers[@]}"; do [[ "$h" != -H ]] && h2_headers+=(-H "$h"); done
    local before after rss
    rm -f "$tmp/$name.log"
    scrape "$server" >"$tmp/$name.metrics-before"
    before="$(cpu_ticks "$pid")"
    h2load -t 1 -D "$run_seconds" --warm-up-time "$warmup" --log-file="$tmp/$name.log" \
        "${h2load_args[@]}" "${h2_headers[@]}" "$url" >"$tmp/$name.h2load" 2>&1 \
        || { echo "side-by-side: $name: h2load failed:" >&2; cat "$tmp/$name.h2load" >&2; exit 1; }
    after="$(cpu_ticks "$pid")"
    rss="$(rss_kib "$pid")"
    scrape "$server" >"$tmp/$name.metrics-after"
    python3 - "$round" "$job" "$server" "$tmp/$name" "$((after - before))" "$(getconf CLK_TCK)" "$rss" \
        "$tmp/results.jsonl" <<'PY'
import json, re, sys
round_, job, server, base = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
ticks, hz, rss, results = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
name = f"{job}-{server}"
size = len(open(base + ".out", "rb").read())
text = open(base + ".h2load").read()
def fail(why):
    print(f"side-by-side: {name}: {why}", file=sys.stderr)
    print(text, file=sys.stderr)
    sys.exit(1)
rps = float(re.search(r"finished in [^,]+, ([\d.]+) req/s", text).group(1))
succeeded = int(re.search(r"requests: .*?(\d+) succeeded", text).group(1))
failed = int(re.search(r"requests: .*? (\d+) failed", text).group(1))
errored = int(re.search(r"requests: .*? (\d+) errored", text).group(1))
codes = [int(c) for c in re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text).groups()]
data = int(re.search(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?, .*?\((\d+)\) data", text).group(3))
# Its 2xx count is taken when a response's headers come, its successes when the response ends:
# at either switch of phase (warm-up to measured, measured to stop) the two differ by requests in
# flight, at most 64. The log (one row per measured request) has status 0 for those whose
# headers came in the warm-up.
if failed or errored or codes[1:] != [0, 0, 0] or abs(succeeded - codes[0]) > 64 or succeeded == 0:
    fail(f"{succeeded} succeeded, {failed} failed, {errored} errored, status codes {codes}")
# Duration mode counts the warm-up's bytes too: every answer has the first answer's size, so the
# bytes must be a whole number of answers, at least as many as the measured ones.
answers, rest = divmod(data, size)
if rest or answers < succeeded:
    fail(f"{data} data bytes are not a whole number of {size}-byte answers (>= {succeeded}): some answers differ")
rows = [line.split("\t") for line in open(base + ".log") if line.strip()]
statuses = {status: sum(row[1] == status for row in rows) for status in {row[1] for row in rows}}
if len(rows) != succeeded or set(statuses) - {"200", "0"} or statuses.get("0", 0) > 64:
    fail(f"the log has {len(rows)} requests (h2load counted {succeeded}), statuses {statuses}")
latencies = sorted(int(row[2]) for row in rows)
def metric_deltas():
    series = {}
    for kind, path in (("before", base + ".metrics-before"), ("after", base + ".metrics-after")):
        for line in open(path):
            if line.startswith(("grpc_server_handled_total{", "http_server_requests_total{")):
                key, value = line.rsplit(" ", 1)
                series.setdefault(key, {})[kind] = float(value)
    return {k: v.get("after", 0) - v.get("before", 0) for k, v in series.items()}
cut = 0
if server == "grpc" or server == "h1" and job != "health":  # /healthz records no series
    # When h2load stops, it drops the calls still in flight (at most 64): the gRPC edge counts
    # those as Canceled or Unknown (a body that could not be sent). Any other code is a failure.
    deltas = {k: d for k, d in metric_deltas().items() if d}
    good = sum(d for k, d in deltas.items() if 'grpc_code="OK"' in k or re.search(r'status="2\d\d"', k))
    cut = sum(d for k, d in deltas.items() if re.search(r'grpc_code="(Canceled|Unknown)"', k))
    bad = {k: d for k, d in deltas.items() if d and not ('grpc_code="OK"' in k or re.search(r'status="2\d\d"', k)
                                                          or re.search(r'grpc_code="(Canceled|Unknown)"', k))}
    if bad or good < answers or cut > 64:
        fail(f"the server's metrics: {good:.0f} OK answers against h2load's {answers}, {cut:.0f} cut off; other codes: {bad}")
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
row = {
    "round": int(round_), "job": job, "server": server, "rps": rps, "ok": succeeded, "answers": answers,
    "size": size, "p50_us": pick(0.50), "p99_us": pick(0.99), "cpu_us": ticks / hz * 1e6 / answers,
    "rss_kib": rss,
}
open(results, "a").write(json.dumps(row) + "\n")
label = {"peer": "oidc-provider h1", "grpc": "Tessera gRPC", "h1": "Tessera HTTP/1.1"}[server]
print(f"  {job:10} {label:17} {rps:8.0f} req/s  p50 {row['p50_us'] / 1000:6.2f} ms  p99 {row['p99_us'] / 1000:6.2f} ms"
      f"  CPU {row['cpu_us']:6.1f} us/answer  RSS {rss / 1024:6.1f} MiB  {succeeded} ok; {answers} x {size} B"
      + (f", {cut:.0f} cut off at the stop" if cut else "") + ": every answer OK")
PY
}

servers=(peer grpc h1)
jobs=(health introspect cc-anon cc-integ)
echo "side-by-side: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $(node --version) oidc-provider $(node -p "require('$tmp/peer/node_modules/oidc-provider/package.json').version")"
echo "  tessera serve (release, SQLite) gRPC $addr, HTTP $http_addr; oidc-provider (in memory) $peer_addr"
echo "  $rounds rounds of ${duration} s runs after ${warmup} s of warm-up each; 64 requests in flight"
echo "  RSS at rest: Tessera $(($(rss_kib "$server_pid") / 1024)) MiB, oidc-provider (node) $(($(rss_kib "$peer_pid") / 1024)) MiB"
echo "-- warm-up round (1 s runs, not counted)"
run_seconds=1
for job in "${jobs[@]}"; do
    if [[ "$job" == introspect ]]; then fresh_tokens; fi
    for server in "${servers[@]}"; do run 0 "$job" "$server" >/dev/null; done
done
echo "  RSS after warm-up: Tessera $(($(rss_kib "$server_pid") / 1024)) MiB, oidc-provider (node) $(($(rss_kib "$peer_pid") / 1024)) MiB"
run_seconds="$duration"
for round in $(seq 1 "$rounds"); do
    echo "-- round $round"
    # The servers' order rotates by one each round.
    shift_by=$(((round - 1) % ${#servers[@]}))
    order=("${servers[@]:shift_by}" "${servers[@]:0:shift_by}")
    for job in "${jobs[@]}"; do
        if [[ "$job" == introspect ]]; then fresh_tokens; fi
        for server in "${order[@]}"; do run "$round" "$job" "$server"; done
    done
done
echo "  load average $(cut -d' ' -f1-3 /proc/loadavg) at end"

python3 - "$tmp/results.jsonl" "$rounds" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
rounds = int(sys.argv[2])
at = {(r["round"], r["job"], r["server"]): r for r in rows}
jobs = ["health", "introspect", "cc-anon", "cc-integ"]
servers = ["peer", "grpc", "h1"]
label = {"peer": "oidc-provider h1", "grpc": "Tessera gRPC", "h1": "Tessera HTTP/1.1"}
med = statistics.median
rs = range(1, rounds + 1)
print(f"-- medians of {rounds} rounds (x health: against the same server's health run of the same round)")
for job in jobs:
    for s in servers:
        get = lambda key: med(at[(r, job, s)][key] for r in rs)
        health = med(at[(r, job, s)]["rps"] / at[(r, "health", s)]["rps"] for r in rs)
        vs_peer = "" if s == "peer" else f"  {med(at[(r, job, s)]['rps'] / at[(r, job, 'peer')]['rps'] for r in rs):5.2f}x peer"
        print(f"  {job:10} {label[s]:17} {get('rps'):8.0f} req/s  p50 {get('p50_us')/1000:6.2f} ms  p99 {get('p99_us')/1000:6.2f} ms"
              f"  CPU {get('cpu_us'):6.1f} us/answer  RSS after {max(at[(r, job, s)]['rss_kib'] for r in rs)/1024:6.1f} MiB (max)"
              f"  {health:4.2f}x health{vs_peer}")
print("-- the table (req/s: medians; ratios: medians of the rounds' ratios; goal: 5x the peer)")
print("| job | peer req/s | Tessera gRPC req/s | Tessera HTTP req/s | ratio gRPC/peer | ratio HTTP/peer | goal 5x met? |")
print("|---|---|---|---|---|---|---|")
for job in jobs:
    rps = {s: med(at[(r, job, s)]["rps"] for r in rs) for s in servers}
    ratio = {s: med(at[(r, job, s)]["rps"] / at[(r, job, "peer")]["rps"] for r in rs) for s in ("grpc", "h1")}
    goal = "—" if job == "health" else (
        "yes" if min(ratio.values()) >= 5 else "no" if max(ratio.values()) < 5
        else "gRPC only" if ratio["grpc"] >= 5 else "HTTP only")
    print(f"| {job} | {rps['peer']:,.0f} | {rps['grpc']:,.0f} | {rps['h1']:,.0f} | {ratio['grpc']:.1f}x | {ratio['h1']:.1f}x | {goal} |")
PY
