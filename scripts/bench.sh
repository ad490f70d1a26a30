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
before=$(rss_kib "$SC_PID")
"$BIN/socketfleet-bench" idle "ws://127.0.0.1:$SC_WS/ws" "$IDLE" 8 > "$SF_WORK/idle.out" &
bpid=$!; SF_PIDS+=("$bpid")
for _ in $(seq 1 600); do grep -q ready "$SF_WORK/idle.out" 2>/dev/null && break; sleep 0.1; done
sleep 2
after=$(rss_kib "$SC_PID")
cat "$SF_WORK/idle.out"
echo "sidecar RSS before: ${before} KiB, with $IDLE idle: ${after} KiB"
awk -v b="$before" -v a="$after" -v n="$IDLE" 'BEGIN { printf "RESULT idle_bytes_per_connection %.0f\n", (a-b)*1024/n }'
wait "$bpid" || true

echo "== fan-out ($FAN_CLIENTS clients, $FAN_CHANNELS channels, 3 sidecars, 6-node Redis Cluster, 100-byte payloads, ${FAN_SECONDS}s)"
start_cluster
urls=()
for i in 0 1 2; do start_sidecar "fan$i" cluster "$SF_CLUSTER_ADDRS"; urls+=("ws://127.0.0.1:$SC_WS/ws"); done
"$BIN/socketfleet-bench" fanout "$(IFS=,; echo "${urls[*]}")" "$FAN_CLIENTS" "$FAN_CHANNELS" "$FAN_SECONDS" 100 | sed 's/^/RESULT fanout /'
