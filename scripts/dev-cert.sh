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
# Needs: openssl. Run it again for new certificates: a running Tessera picks them up by itself.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$repo_root/deploy/dev-certs}"
days="${2:-365}"
command -v openssl >/dev/null || { echo "dev-cert: openssl not found" >&2; exit 2; }
mkdir -p "$dir"
cd "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# ECDSA P-256 keys (PKCS#8), X.509 v3 with the extensions rustls's verifier (webpki) checks.
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

newkey ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days "$days" -subj "/CN=Tessera development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

issue() { # name subject extensions
    newkey "$1.key"
    openssl req -new -key "$1.key" -out "$work/$1.csr" -subj "$2"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" "$3" >"$work/$1.ext"
    openssl x509 -req -in "$work/$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -CAserial "$work/ca.srl" -days "$days" -extfile "$work/$1.ext" -out "$1.pem" 2>/dev/null
}
issue server "/CN=tessera" \
    "extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:tessera,IP:127.0.0.1,IP:::1"
issue client "/CN=tessera-dev-client" "extendedKeyUsage=clientAuth"

# Readable by the container's user (uid 10001) through a bind mount: development only. A real
# key belongs to the service's user alone (0400).
chmod 0644 ./*.pem server.key client.key
chmod 0600 ca.key
openssl verify -CAfile ca.pem server.pem client.pem >/dev/null
echo "dev-cert: a development CA and certificates in $dir (valid $days days)"
