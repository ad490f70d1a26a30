#!/usr/bin/env bash
# Compares memory per idle connection of the two candidate WebSocket libraries, each in the
# smallest hyper 1 server it allows (bench/src/bin/ws-idle-probe.rs), with the same client.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
N=${IDLE:-10000}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
out=$(mktemp)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -f "$out"' EXIT
for lib in tungstenite fastwebsockets; do
  # The probe binds a free port itself and prints `listening 127.0.0.1:<port>`.
  "$BIN/ws-idle-probe" "$lib" 127.0.0.1:0 > "$out" & pid=$!
  for _ in $(seq 1 100); do addr=$(sed -n 's/^listening //p' "$out"); [ -n "$addr" ] && break; sleep 0.05; done
  # The plain `ws` protocol sends nothing after the upgrade: idle clients.
  report=$("$BIN/socketfleet-bench" idle --system wsredis --addrs "$addr" --clients "$N" --pid "$pid" --hold 2)
  echo "$report"
  bytes=$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["bytes_per_connection"]))' "$report")
  echo "RESULT ws_lib $lib idle_bytes_per_connection $bytes"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
done
