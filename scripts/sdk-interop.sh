#!/usr/bin/env bash
# Drives the official Sharetribe SDKs (sharetribe-flex-sdk, sharetribe-flex-integration-sdk), a
# gRPC-Web client (@connectrpc/connect-web) and CORS preflights against a real `tessera serve`:
# interop/sharetribe-sdk/check.mjs, with the packages pinned in its package-lock.json.
#
# Starts `tessera serve` on two free local ports (gRPC, HTTP) with a throwaway SQLite database
# and TESSERA_CORS_ORIGINS set to one origin, registers a marketplace client with a secret, an
# integration client and a user, then runs the Node script against it.
#
# Usage: bash scripts/sdk-interop.sh
#   TESSERA_BIN  the tessera binary (default target/debug/tessera; this script builds nothing:
#                run `cargo build --bin tessera` first)
# Needs: node (20 or later) and npm (installs the pinned packages with `npm ci` when they are
# missing or older than the lock file), curl, python3.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

bin="${TESSERA_BIN:-target/debug/tessera}"
if [[ ! -x "$bin" ]]; then
    echo "sdk-interop: no tessera binary at $bin (run \`cargo build --bin tessera\` or set TESSERA_BIN)" >&2
    exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
for tool in node npm curl python3; do
    command -v "$tool" >/dev/null || { echo "sdk-interop: $tool not found" >&2; exit 2; }
done

interop="$repo_root/interop/sharetribe-sdk"
if [[ ! -f "$interop/node_modules/.package-lock.json" \
    || "$interop/package-lock.json" -nt "$interop/node_modules/.package-lock.json" ]]; then
    echo "sdk-interop: installing the pinned SDKs (npm ci)" >&2
    (cd "$interop" && npm ci --silent --no-audit --no-fund)
fi

source "$(dirname "${BASH_SOURCE[0]}")/lib/scratch-server.sh"
allowed_origin="http://app.example.test"
export TESSERA_CORS_ORIGINS="$allowed_origin"

"$bin" migrate >/dev/null 2>&1
market_json="$("$bin" client create --name sdk-web --kind marketplace --with-secret --json)"
integ_json="$("$bin" client create --name sdk-jobs --kind integration --json)"
username="sdk-user@example.com"
password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
printf '%s\n' "$password" | "$bin" user create --username "$username" >/dev/null

echo "sdk-interop: $bin serve on $addr (gRPC, gRPC-Web) and $http_addr (HTTP); data in $tmp"
"$bin" serve >"$tmp/server.log" 2>&1 &
server_pid=$!
ready=""
for _ in $(seq 1 60); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "sdk-interop: tessera serve exited early; its log:" >&2
        cat "$tmp/server.log" >&2
        exit 1
    fi
    if curl -fsS "http://$http_addr/readyz" >/dev/null 2>&1; then
        ready=yes
        break
    fi
    sleep 0.25
done
if [[ -z "$ready" ]]; then
    echo "sdk-interop: http://$http_addr/readyz did not answer within 15 s; server log:" >&2
    cat "$tmp/server.log" >&2
    exit 1
fi

status=0
TESSERA_HTTP_URL="http://$http_addr" \
TESSERA_GRPC_URL="http://$addr" \
MARKETPLACE_ID="$(json_get 'd["client_id"]' <<<"$market_json")" \
MARKETPLACE_SECRET="$(json_get 'd["client_secret"]' <<<"$market_json")" \
INTEGRATION_ID="$(json_get 'd["client_id"]' <<<"$integ_json")" \
INTEGRATION_SECRET="$(json_get 'd["client_secret"]' <<<"$integ_json")" \
USERNAME="$username" PASSWORD="$password" ALLOWED_ORIGIN="$allowed_origin" \
    node "$interop/check.mjs" || status=$?
if [[ "$status" -ne 0 ]]; then
    echo "sdk-interop: FAILED; server log:" >&2
    tail -n 40 "$tmp/server.log" >&2
    exit "$status"
fi
# Nothing secret in the server's log (SPEC §4): the password and the client secrets.
for secret in "$password" "$(json_get 'd["client_secret"]' <<<"$market_json")" \
    "$(json_get 'd["client_secret"]' <<<"$integ_json")"; do
    if grep -qF -- "$secret" "$tmp/server.log"; then
        echo "sdk-interop: a secret appears in the server log" >&2
        exit 1
    fi
done
