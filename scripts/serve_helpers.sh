# Sourced by scripts that start `kaizen serve` processes on loopback (tests/openai_peer.sh,
# bench/load_serve.sh): `free_port`, and `start PORT ARGS…`, which starts a server in the
# background and waits for its /health. Servers are killed, and the scratch dir `$tmp`
# removed, when the sourcing script exits. Needs `$k`, the kaizen binary.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
tmp=$(mktemp -d)
pids=()
# Their exit status (143) must not become the script's.
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; wait $p 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
start() {
  local port=$1; shift
  "$k" serve --port "$port" "$@" >"$tmp/serve-$port.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 120); do
    python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$tmp/serve-$port.log"; exit 1; }
    sleep 0.5
  done
  echo "server on $port did not start"; exit 1
}
