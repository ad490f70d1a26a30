# Shared by scripts/bench.sh: start real Redis and sidecar processes on
# loopback, and stop every one of them on exit. Source it; it defines functions only.

SF_PIDS=()
SF_WORK=$(mktemp -d /tmp/socketfleet.XXXX)
BIN=${BIN:-target/release}

sf_cleanup() {
  for p in "${SF_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${SF_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$SF_WORK"
}
trap sf_cleanup EXIT

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

# measure_idle PID ADDR N: holds N idle WebSocket clients on ADDR (host:port; the plain
# `ws` protocol, which sends nothing after the upgrade) and sets IDLE_BYTES to the RSS growth
# of process PID divided by N.
measure_idle() {
  local out
  out=$("$BIN/socketfleet-bench" idle --system wsredis --addrs "$2" --clients "$3" --pid "$1" --hold 2)
  echo "$out"
  IDLE_BYTES=$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["bytes_per_connection"]))' "$out")
}

wait_redis() { for _ in $(seq 1 100); do [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ] && return 0; sleep 0.1; done; echo "redis on $1 did not start" >&2; return 1; }

# start_redis PORT [ARGS...]: one redis-server in its own directory.
start_redis() {
  local port=$1; shift
  mkdir -p "$SF_WORK/redis-$port"
  (cd "$SF_WORK/redis-$port" && exec redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no "$@" >/dev/null) &
  SF_PIDS+=($!)
  wait_redis "$port"
}

# start_cluster: six nodes, three primaries with a replica each; sets SF_CLUSTER_ADDRS.
start_cluster() {
  local ports=() p out attempt
  # Up to three attempts on fresh ports: a failed create (once, in a long benchmark, with
  # no output to say why) must not end the whole run.
  for attempt in 1 2 3; do
    ports=()
    for _ in 1 2 3 4 5 6; do
      p=$(free_cluster_port); ports+=("127.0.0.1:$p")
      start_redis "$p" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000
    done
    SF_CLUSTER_ADDRS=$(IFS=,; echo "${ports[*]}")
    if out=$(redis-cli --cluster create "${ports[@]}" --cluster-replicas 1 --cluster-yes 2>&1) && cluster_ok; then return 0; fi
    echo "start_cluster: attempt $attempt failed on ${ports[*]}:" >&2; echo "$out" | tail -5 >&2
    for p in "${ports[@]}"; do redis-cli -p "${p#*:}" shutdown nosave >/dev/null 2>&1 || true; done
  done
  return 1
}

# Every node, not just the first, must see the cluster as ok before clients arrive (10 s).
cluster_ok() {
  local p
  for p in ${SF_CLUSTER_ADDRS//,/ }; do
    for _ in $(seq 1 100); do redis-cli -p "${p#*:}" cluster info 2>/dev/null | grep -q cluster_state:ok && continue 2; sleep 0.1; done
    return 1
  done
}

# start_sidecar NAME MODE ADDRS: sets SC_WS, SC_ADMIN, SC_API, SC_PID.
start_sidecar() {
  SC_WS=$(free_port); SC_ADMIN=$(free_port); SC_API=$(free_port)
  SF_AUTH=${SF_AUTH:-none} SF_REDIS_MODE=$2 SF_REDIS_ADDRS=$3 SF_NODE_NAME=$1 SF_LOG=${SF_LOG:-warn} \
  SF_WS_ADDR=127.0.0.1:$SC_WS SF_ADMIN_ADDR=127.0.0.1:$SC_ADMIN SF_APP_API_ADDR=127.0.0.1:$SC_API \
    "$BIN/socketfleet-sidecar" 2>>"$SF_WORK/$1.log" &
  SC_PID=$!; SF_PIDS+=("$SC_PID")
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$SC_ADMIN/ready" >/dev/null && return 0; sleep 0.1; done
  echo "sidecar $1 did not become ready; its log:" >&2; cat "$SF_WORK/$1.log" >&2; return 1
}
