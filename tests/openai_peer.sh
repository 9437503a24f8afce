#!/usr/bin/env bash
# Runs tests/openai_peer.py (the official `openai` package, in a throwaway venv under
# $KAIZEN_HOME) against a `kaizen serve` started here on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
KAIZEN_HOME="${KAIZEN_HOME:-$HOME/.cache/kaizen}"
venv="$KAIZEN_HOME/venv-openai"
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "openai>=1.50,<3"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
"${CARGO_TARGET_DIR:-target}/release/kaizen" serve --port "$port" >"$log" 2>&1 &
pid=$!
# The server is killed on exit; its status (143) must not become this script's.
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 120); do
  python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
"$venv/bin/python" tests/openai_peer.py "http://127.0.0.1:$port/v1"
