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
  before=$(rss_kib "$pid")
  "$BIN/socketfleet-bench" idle "ws://127.0.0.1:$port/ws" "$N" 6 > "$SF_WORK/$lib.out" & b=$!; SF_PIDS+=("$b")
  for _ in $(seq 1 600); do grep -q ready "$SF_WORK/$lib.out" 2>/dev/null && break; sleep 0.1; done
  sleep 2
  after=$(rss_kib "$pid")
  awk -v l="$lib" -v b="$before" -v a="$after" -v n="$N" 'BEGIN { printf "RESULT ws_lib %s idle_bytes_per_connection %.0f\n", l, (a-b)*1024/n }'
  wait "$b" || true
  kill "$pid" 2>/dev/null || true
done
