#!/usr/bin/env bash
# Compares memory per idle connection of the two candidate WebSocket libraries, each in the
# smallest hyper 1 server it allows (bench/src/bin/ws-idle-probe.rs), with the same client.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/local-lib.sh
N=${IDLE:-10000}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
for lib in tungstenite fastwebsockets; do
  port=$(free_port)
  "$BIN/ws-idle-probe" "$lib" "127.0.0.1:$port" & pid=$!; SF_PIDS+=("$pid")
  sleep 0.5
  measure_idle "$pid" "127.0.0.1:$port" "$N"
  echo "RESULT ws_lib $lib idle_bytes_per_connection $IDLE_BYTES"
  kill "$pid" 2>/dev/null || true
done
