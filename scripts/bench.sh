#!/usr/bin/env bash
# `make bench`: measures SocketFleet on this machine, loopback only, and prints results.
#   1. memory per idle connection: RSS of one sidecar before and after N idle clients;
#   2. fan-out: a 6-node Redis Cluster, 3 sidecars, C clients over K channels, 100-byte
#      payloads, publishers as fast as acknowledgements allow.
# Release builds; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/local-lib.sh
IDLE=${IDLE:-10000}
FAN_CLIENTS=${FAN_CLIENTS:-2000}
FAN_CHANNELS=${FAN_CHANNELS:-20}
FAN_SECONDS=${FAN_SECONDS:-10}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== memory per idle connection ($IDLE connections, one sidecar, standalone Redis)"
rport=$(free_port)
start_redis "$rport"
start_sidecar idle standalone "127.0.0.1:$rport"
measure_idle "$SC_PID" "ws://127.0.0.1:$SC_WS/ws" "$IDLE"
echo "RESULT idle_bytes_per_connection $IDLE_BYTES"

echo "== fan-out ($FAN_CLIENTS clients, $FAN_CHANNELS channels, 3 sidecars, 6-node Redis Cluster, 100-byte payloads, ${FAN_SECONDS}s)"
start_cluster
urls=()
for i in 0 1 2; do start_sidecar "fan$i" cluster "$SF_CLUSTER_ADDRS"; urls+=("ws://127.0.0.1:$SC_WS/ws"); done
"$BIN/socketfleet-bench" fanout "$(IFS=,; echo "${urls[*]}")" "$FAN_CLIENTS" "$FAN_CHANNELS" "$FAN_SECONDS" 100 | sed 's/^/RESULT fanout /'
