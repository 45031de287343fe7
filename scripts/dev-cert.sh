#!/usr/bin/env bash
# Makes a DEVELOPMENT certificate authority and the certificates it issues, for trying TLS and
# mTLS locally and in the compose stack (docker-compose.tls.yml). Never use them for anything
# real: the CA's key sits beside them.
#
#   ca.pem, ca.key          the CA (trust ca.pem: tessera health --tls-ca, grpcurl -cacert,
#                           curl --cacert; it is also the client CA for mTLS)
#   server.pem, server.key  Tessera's certificate: localhost, the compose service name
#                           (tessera), 127.0.0.1 and ::1
#   client.pem, client.key  a client certificate (mTLS callers, Prometheus, the health check)
#
# Usage: bash scripts/dev-cert.sh [DIR] [DAYS]   (defaults deploy/dev-certs, 365)
# Needs: openssl. Run it again for new certificates: a running Tessera picks them up by itself
# (each file is written under a temporary name and renamed into place, keys first).
#
# Keys are 0600 (made under umask 077, never readable by others even for a moment). The
# compose stack's container runs as uid 10001, which cannot read a 0600 key your user owns
# through a bind mount: for it, run with DEV_CERT_KEY_MODE=0644 (development only; Tessera
# warns about a key file others can read).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$repo_root/deploy/dev-certs}"
days="${2:-365}"
key_mode="${DEV_CERT_KEY_MODE:-0600}"
command -v openssl >/dev/null || { echo "dev-cert: openssl not found" >&2; exit 2; }
mkdir -p "$dir"
cd "$dir"
# Beside the destination, so that the renames are atomic.
work="$(umask 077 && mktemp -d "$dir/.dev-cert.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# ECDSA P-256 keys (PKCS#8), X.509 v3 with the extensions rustls's verifier (webpki) checks.
newkey() { (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null); }

newkey "$work/ca.key"
openssl req -x509 -new -key "$work/ca.key" -out "$work/ca.pem" -days "$days" \
    -subj "/CN=Tessera development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

issue() { # name subject extensions
    newkey "$work/$1.key"
    openssl req -new -key "$work/$1.key" -out "$work/$1.csr" -subj "$2"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" "$3" >"$work/$1.ext"
    openssl x509 -req -in "$work/$1.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
        -CAserial "$work/ca.srl" -days "$days" -extfile "$work/$1.ext" -out "$work/$1.pem" 2>/dev/null
}
issue server "/CN=tessera" \
    "extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:tessera,IP:127.0.0.1,IP:::1"
issue client "/CN=tessera-dev-client" "extendedKeyUsage=clientAuth"
openssl verify -CAfile "$work/ca.pem" "$work/server.pem" "$work/client.pem" >/dev/null

chmod 0644 "$work"/*.pem
chmod "$key_mode" "$work/server.key" "$work/client.key"
chmod 0600 "$work/ca.key"
# Keys first, then certificates: a reader between two renames sees a pair that does not
# match yet and keeps the one in use (Tessera refuses a mismatched pair with a warning).
for name in ca.key server.key client.key ca.pem server.pem client.pem; do
    mv -f "$work/$name" "$name"
done
echo "dev-cert: a development CA and certificates in $dir (valid $days days)"
