#!/usr/bin/env bash
# `make bench`: measures SocketFleet on this machine, loopback only, and prints results.
#   1. memory per idle connection: RSS of one sidecar before and after N idle clients;
#   2. fan-out: a 6-node Redis Cluster, 3 sidecars, C clients over K channels, 100-byte
#      payloads, publishers as fast as acknowledgements allow.
# Release builds; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE=${IDLE:-10000}
FAN_CLIENTS=${FAN_CLIENTS:-2000}
FAN_CHANNELS=${FAN_CHANNELS:-20}
FAN_SECONDS=${FAN_SECONDS:-10}
BIN=target/release
WORK=$(mktemp -d /tmp/sf-bench.XXXX)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A port whose cluster bus port (+10000) is valid and free.
free_cluster_port() { python3 -c '
import socket
for _ in range(1000):
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]
    if p < 55000:
        try:
            socket.socket().bind(("127.0.0.1",p+10000)); print(p); break
        except OSError: pass'; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
wait_ready() { for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$1/ready" >/dev/null && return 0; sleep 0.1; done; echo "sidecar not ready" >&2; exit 1; }

start_sidecar() { # name redis-mode redis-addrs -> prints "ws_port pid"
  local ws admin api; ws=$(free_port); admin=$(free_port); api=$(free_port)
  SF_AUTH=none SF_REDIS_MODE=$2 SF_REDIS_ADDRS=$3 SF_NODE_NAME=$1 SF_LOG=warn \
  SF_WS_ADDR=127.0.0.1:$ws SF_ADMIN_ADDR=127.0.0.1:$admin SF_APP_API_ADDR=127.0.0.1:$api \
    "$BIN/socketfleet-sidecar" 2>"$WORK/$1.log" &
  local pid=$!; pids+=("$pid"); wait_ready "$admin"; echo "$ws $pid"
}

echo "== memory per idle connection ($IDLE connections, one sidecar, standalone Redis)"
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >/dev/null &
pids+=($!); sleep 0.3
read -r ws spid < <(start_sidecar idle standalone "127.0.0.1:$rport")
before=$(rss_kib "$spid")
"$BIN/socketfleet-bench" idle "ws://127.0.0.1:$ws/ws" "$IDLE" 8 > "$WORK/idle.out" &
bpid=$!; pids+=("$bpid")
for _ in $(seq 1 600); do grep -q ready "$WORK/idle.out" 2>/dev/null && break; sleep 0.1; done
sleep 2
after=$(rss_kib "$spid")
echo "$(cat "$WORK/idle.out")"
echo "sidecar RSS before: ${before} KiB, with $IDLE idle: ${after} KiB"
awk -v b="$before" -v a="$after" -v n="$IDLE" 'BEGIN { printf "RESULT idle_bytes_per_connection %.0f\n", (a-b)*1024/n }'
wait "$bpid" || true

echo "== fan-out ($FAN_CLIENTS clients, $FAN_CHANNELS channels, 3 sidecars, 6-node Redis Cluster, 100-byte payloads, ${FAN_SECONDS}s)"
ports=()
for _ in 1 2 3 4 5 6; do
  p=$(free_cluster_port); ports+=("127.0.0.1:$p"); mkdir -p "$WORK/r$p"
  (cd "$WORK/r$p" && exec redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no \
     --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 >/dev/null) &
  pids+=($!)
done
for a in "${ports[@]}"; do
  for _ in $(seq 1 100); do [ "$(redis-cli -p "${a#*:}" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
done
redis-cli --cluster create "${ports[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
for _ in $(seq 1 100); do redis-cli -p "${ports[0]#*:}" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
addrs=$(IFS=,; echo "${ports[*]}")
urls=()
for i in 0 1 2; do read -r ws _ < <(start_sidecar "fan$i" cluster "$addrs"); urls+=("ws://127.0.0.1:$ws/ws"); done
"$BIN/socketfleet-bench" fanout "$(IFS=,; echo "${urls[*]}")" "$FAN_CLIENTS" "$FAN_CHANNELS" "$FAN_SECONDS" 100 | sed 's/^/RESULT fanout /'
