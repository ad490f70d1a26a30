# Shared by the bench scripts: every Redis and SocketFleet process they measure is started
# and supervised by `socketfleet local` (the project's one harness; its /fleet.json lists
# each process's address and pid); these functions only drive it. The peers (Centrifugo,
# Socket.IO, ws) are started by bench.sh on the same Redis (`--redis-only`). Source it; it
# defines functions and stops every process it started on exit.

BIN=${BIN:-target/release}
LOCAL_PIDS=()
SF_PIDS=()
# One Redis password per run, for local mode, the peers and redis-cli, in the environment
# (never on a command line).
export SOCKETFLEET_REDIS_PASSWORD=${SOCKETFLEET_REDIS_PASSWORD:-$(openssl rand -hex 16)}
export REDIS_PASSWORD=$SOCKETFLEET_REDIS_PASSWORD REDISCLI_AUTH=$SOCKETFLEET_REDIS_PASSWORD
BENCH_WORK=$(mktemp -d /tmp/socketfleet-bench.XXXX)

bench_cleanup() {
  local p
  for p in "${SF_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${LOCAL_PIDS[@]}"; do stop_local "$p"; done
  rm -rf "$BENCH_WORK"
}
trap bench_cleanup EXIT

# fleet_yaml FILE SIDECARS [DURABLE]: the benchmark's fleet: a 6-node Redis Cluster (3
# primaries, 1 replica each), SIDECARS sidecars, no auth, the drain pacing the rolling
# scenario uses; DURABLE=true acknowledges a publish once a replica has it.
fleet_yaml() {
  cat > "$1" <<YAML
apiVersion: socketfleet.io/v1alpha1
kind: SocketFleet
metadata:
  name: bench
spec:
  gateway:
    replicas: { min: $2, max: $2 }
  redis:
    mode: cluster
    shards: 3
    replicasPerShard: 1
    durablePublish: ${3:-false}
  auth:
    mode: none
  drain:
    timeout: 15s
    reconnectSpread: 3s
YAML
}

# free_port: a free loopback port below the kernel's ephemeral range, as local mode picks
# its own (harness/src/ports.rs): a port inside that range can be taken by a client's
# outgoing connection while the instance that had it restarts.
free_port() {
  python3 - <<'PY'
import random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for port in [random.randrange(10000, lo) for _ in range(200)] if lo > 10000 else []:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
        print(port)
        break
    except OSError:
        pass
else:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
PY
}

# start_local FILE [ARGS...]: `socketfleet local FILE` on a free port until it says it runs
# (at most 120 s); sets LOCAL_URL and LOCAL_PID.
start_local() {
  local file=$1 log port; shift
  log=$BENCH_WORK/local-$RANDOM.log
  "$BIN/socketfleet" local "$file" --port 0 --www demo "$@" > "$log" 2>&1 < /dev/null &
  LOCAL_PID=$!; LOCAL_PIDS+=("$LOCAL_PID")
  for _ in $(seq 1 1200); do
    port=$(sed -n 's|^SocketFleet is running locally: *http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$log")
    [ -n "$port" ] && { LOCAL_URL=http://127.0.0.1:$port; return 0; }
    kill -0 "$LOCAL_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: socketfleet local $file did not start; its output:" >&2; cat "$log" >&2; return 1
}

# stop_local PID: SIGTERM twice (drain, then stop at once), as a person's Ctrl-C twice;
# SIGKILL after 30 s.
stop_local() {
  kill -0 "$1" 2>/dev/null || return 0
  kill -TERM "$1" 2>/dev/null || true; sleep 0.3; kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

# fleet EXPR [URL]: a Python expression over `f`, the fleet's /fleet.json, printed.
fleet() {
  curl -sf "${2:-$LOCAL_URL}/fleet.json" | python3 -c "import json,sys; f=json.load(sys.stdin); print($1)"
}

# The fleet's Redis Cluster nodes (host:port,...), its sidecars' WebSocket addresses and
# pids, its Redis pids.
redis_addrs() { fleet '",".join(n["addr"] for n in f["redis"])'; }
sidecar_addrs() { fleet '" ".join(s["ws"].removeprefix("ws://").removesuffix("/ws") for s in f["sidecars"])'; }
sidecar_pids() { fleet '" ".join(str(s["pid"]) for s in f["sidecars"])'; }
redis_pids() { fleet '",".join(str(n["pid"]) for n in f["redis"] if n["pid"])'; }
