# Sourced by the scripts that start a throw-away `tessera serve`: a temp directory removed at
# exit (with the server, once its pid is in `server_pid`), a free port in `addr`, the server's
# settings exported (a fresh SQLite file and master key), and `json_get EXPR` reading stdin.
tmp="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
addr="127.0.0.1:$port"
export TESSERA_LISTEN="$addr"
# A second free port for the HTTP listener (never the default 8080: scripts run side by side).
http_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
http_addr="127.0.0.1:$http_port"
export TESSERA_HTTP_LISTEN="$http_addr"
# Metrics on a port of the system's choosing (never the default 9464, for the same reason).
export TESSERA_METRICS_LISTEN="127.0.0.1:0"
export TESSERA_DATABASE_URL="sqlite://$tmp/t.db?mode=rwc"
export TESSERA_MASTER_KEY="$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"

# A JSON field from stdin, by a Python expression on `d`.
json_get() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
