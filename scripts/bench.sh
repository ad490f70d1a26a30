#!/usr/bin/env bash
# `make bench`: SocketFleet and its peers side by side, in one run, on this machine,
# loopback only. For every run (RUNS, default 3) and every system (SYSTEMS), on a fresh
# 6-node Redis Cluster (3 primaries, 1 replica each) with INSTANCES gateway instances, all
# of it started by `socketfleet local` (scripts/bench-fleet.sh; the peers on its
# `--redis-only` Redis, with the same password):
#   1. fan-out: CLIENTS subscribers over CHANNELS channels, 100-byte payloads, the publish
#      rate ramped (RAMP start:factor:seconds:steps) until the system stops keeping up;
#   2. latency at a fixed rate: LATENCY_FRACTION of SocketFleet's sustained publish rate
#      in the same run (SocketFleet goes first), the same rate for every system;
#   3. memory per idle connection at each of IDLE_COUNTS, one instance;
#   4. rolling replacement of every instance under that fixed load (FIXED_RATE overrides
#      it for scenarios 4 and 5; without a SocketFleet fan-out in the run it is 500);
#   5. a Redis primary killed (SIGKILL) under that fixed load, which local mode starts
#      again RESTART_AFTER seconds later, as a StatefulSet would; with DURABLE=1 (default)
#      also SocketFleet with SF_DURABLE_PUBLISH=true ("socketfleet-durable"), whose
#      publishes are acknowledged once a replica has them;
#   6. a reconnect storm under that fixed load: every client connection reset at once
#      (`ss -K`), the clients coming back as their libraries do;
#   7. LOSS_PERCENT% of the clients' packets dropped either way for LOSS_SECONDS;
#   8. a BLACKHOLE_SECONDS blackhole on the clients' path (every packet dropped, no RST).
# Scenarios 6 to 8 change firewall rules and kill sockets (scripts/bench-net.sh): they need
# root, and the whole run then moves into a private network namespace with its own
# loopback, so nothing touches the host's network.
# Plus the machine's loopback limit for 100-byte frames. Raw JSON reports go to
# target/bench/<stamp>/; scripts/bench-report.py turns them into bench/RESULTS.md's tables.
# CPU pinning (taskset): this script and everything it starts (Redis, the servers under
# test) run on CPU 0; the load generator runs on CPU 1. The systems under test get one
# core each way and never compete with the generator for it.
# Every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIOS=${SCENARIOS:-fanout idle rolling failover storm loss blackhole}
eval "$(scripts/bench-peers.sh)"
if [[ " $SCENARIOS " =~ \ (storm|loss|blackhole)\  && ${SF_BENCH_NETNS:-} != 1 ]]; then
  if [[ $(id -u) != 0 ]]; then
    echo "bench: the storm, loss and blackhole scenarios need root (a private network namespace); run as root or set SCENARIOS without them" >&2
    exit 1
  fi
  export SCENARIOS CENTRIFUGE_PEER SF_BENCH_NETNS=1
  exec unshare --net bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
source scripts/bench-fleet.sh
RUNS=${RUNS:-3}
SYSTEMS=${SYSTEMS:-socketfleet centrifugo socketio wsredis}
INSTANCES=${INSTANCES:-3}
CLIENTS=${CLIENTS:-10000}
CHANNELS=${CHANNELS:-100}
RAMP=${RAMP:-100:1.2:4:24}
LATENCY_FRACTION=${LATENCY_FRACTION:-0.2}
LATENCY_SECONDS=${LATENCY_SECONDS:-15}
IDLE_COUNTS=${IDLE_COUNTS:-10000 50000}
ROLLING_SECONDS=${ROLLING_SECONDS:-35}
FAILOVER_SECONDS=${FAILOVER_SECONDS:-25}
DURABLE=${DURABLE:-1}
NET_SECONDS=${NET_SECONDS:-25}
LOSS_PERCENT=${LOSS_PERCENT:-2}
LOSS_SECONDS=${LOSS_SECONDS:-10}
BLACKHOLE_SECONDS=${BLACKHOLE_SECONDS:-2}
RESTART_AFTER=${RESTART_AFTER:-5}
OUT=${OUT:-target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
# Raise the soft limit to the hard one (20,000 on this machine: one process cannot hold
# 50,000 sockets, so idle memory at 50,000 spreads over the instances and generators).
ulimit -n "$(ulimit -Hn)"
taskset -cp 0 $$ >/dev/null
GEN=(taskset -c 1 "$BIN/socketfleet-bench")

# INSTANCES instances of SYSTEM on a fresh Redis Cluster: SocketFleet's are local mode's
# sidecars; a peer's run on local mode's Redis only, each from a command in INST_DIR (kept
# in OUT: <i>.cmd, <i>.pid, <i>.log, <i>.ready; scripts/bench-replace.sh restarts them from
# there). Sets SF_CLUSTER_ADDRS, INST_ADDRS, INST_PIDS; INST_DIR/local holds local mode's URL.
start_instances() {
  local system=$1 count=$2 i port durable=false
  INST_DIR=$OUT/instances/$system-$RANDOM; mkdir -p "$INST_DIR"
  INST_ADDRS=(); INST_PIDS=()
  [ "$system" = socketfleet-durable ] && durable=true
  fleet_yaml "$INST_DIR/fleet.yaml" "$count" "$durable"
  case $system in
    socketfleet | socketfleet-durable)
      start_local "$INST_DIR/fleet.yaml" --restart-after "${RESTART_AFTER}s"
      echo "$LOCAL_URL" > "$INST_DIR/local"
      SF_CLUSTER_ADDRS=$(redis_addrs)
      read -ra INST_ADDRS <<< "$(sidecar_addrs)"; read -ra INST_PIDS <<< "$(sidecar_pids)"
      return 0 ;;
  esac
  start_local "$INST_DIR/fleet.yaml" --redis-only --restart-after "${RESTART_AFTER}s"
  SF_CLUSTER_ADDRS=$(redis_addrs)
  for i in $(seq 1 "$count"); do
    port=$(free_port)
    echo "http://127.0.0.1:$port/ready" > "$INST_DIR/$i.ready"
    case $system in
      centrifugo)
        printf 'ulimit -n $(ulimit -Hn)\nexec %s -addr 127.0.0.1:%s -redis %s -cluster %s\n' "$CENTRIFUGE_PEER" "$port" "$SF_CLUSTER_ADDRS" "${CENTRIFUGE_FLAGS:-}" > "$INST_DIR/$i.cmd" ;;
      socketio | wsredis)
        local script=socketio-server.mjs; [ "$system" = wsredis ] && script=ws-server.mjs
        printf 'ulimit -n $(ulimit -Hn)\nexec node --max-old-space-size=8192 %s/bench/peers/node/%s --port %s --redis %s --cluster\n' \
          "$PWD" "$script" "$port" "$SF_CLUSTER_ADDRS" > "$INST_DIR/$i.cmd" ;;
    esac
    bash "$INST_DIR/$i.cmd" >>"$INST_DIR/$i.log" 2>&1 < /dev/null &
    echo $! > "$INST_DIR/$i.pid"; SF_PIDS+=($!)
    INST_ADDRS+=("127.0.0.1:$port"); INST_PIDS+=($!)
  done
  for i in $(seq 1 "$count"); do
    for _ in $(seq 1 300); do curl -sf "$(cat "$INST_DIR/$i.ready")" >/dev/null 2>&1 && continue 2; sleep 0.1; done
    echo "bench: $system instance $i did not become ready; its log:" >&2; cat "$INST_DIR/$i.log" >&2; return 1
  done
}

# The measurement is over: no drain to wait for (local mode's second SIGTERM stops at once).
stop_instances() {
  local f
  for f in "$INST_DIR"/*.pid; do [ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true; done
  for f in "$INST_DIR"/*.pid; do [ -e "$f" ] && wait "$(cat "$f")" 2>/dev/null || true; done
  stop_local "$LOCAL_PID"
}

# The failover event: SIGKILL a primary; local mode starts it again on its address and
# cluster config RESTART_AFTER seconds later (it rejoins as a replica of the node that
# replaced it; until then that shard has no replica).
kill_primary_event() {
  local seed=${SF_CLUSTER_ADDRS%%,*} port pid
  port=$(redis-cli --no-auth-warning -p "${seed#*:}" cluster nodes | awk '/master/ && !/fail/ {split($2, a, "[:@]"); print a[2]; exit}')
  pid=$(redis-cli --no-auth-warning -p "$port" info server | awk -F: '/^process_id/ {print $2}' | tr -d '\r')
  echo "kill -9 $pid"
}

addrs() { (IFS=,; echo "${INST_ADDRS[*]}"); }
procs() { echo "servers=$(IFS=,; echo "${INST_PIDS[*]}");redis=$(redis_pids)"; }

replace_event() { echo "scripts/bench-replace.sh $INST_DIR"; }
ports() { local a p=(); for a in "${INST_ADDRS[@]}"; do p+=("${a##*:}"); done; (IFS=,; echo "${p[*]}"); }
storm_event() { echo "scripts/bench-net.sh reset $(ports)"; }
loss_event() { echo "scripts/bench-net.sh drop $LOSS_PERCENT $LOSS_SECONDS $(ports)"; }
blackhole_event() { echo "scripts/bench-net.sh drop 100 $BLACKHOLE_SECONDS $(ports)"; }

# under_event SCENARIO SYSTEM TAG RATE SECONDS EVENT: SYSTEM on a fresh cluster at RATE
# publishes/s for SECONDS; 5 s in, the command EVENT prints (a function, called once the
# cluster and the instances are up) runs.
under_event() {
  local scenario=$1 system=$2 tag=$3 rate=$4 seconds=$5 event=$6
  start_instances "$system" "$INSTANCES"
  "${GEN[@]}" run --system "${system%-durable}" --addrs "$(addrs)" --clients "$CLIENTS" --channels "$CHANNELS" \
    --fixed "$rate:$seconds" --event-at 5 --event "$($event)" --procs "$(procs)" > "$OUT/$scenario-$tag.json" 2> "$OUT/$scenario-$tag.log" \
    || { echo "bench: $tag $scenario failed:"; tail -5 "$OUT/$scenario-$tag.log"; }
  python3 scripts/bench-report.py --line "$OUT/$scenario-$tag.json" || true
  stop_instances
}

# failover SYSTEM TAG RATE: a Redis primary SIGKILLed under RATE publishes/s.
failover() {
  echo "== run $run: $1 Redis primary killed at $3 publishes/s"
  under_event failover "$1" "$2" "$3" "$FAILOVER_SECONDS" kill_primary_event
}

if [[ ! -s $OUT/loopback.json ]]; then
  echo "== loopback limit (100-byte frames)"
  taskset -c 0,1 "$BIN/socketfleet-bench" loopback 100 5 | tee "$OUT/loopback.json"
fi

# LATENCY_RATE and RUN_FROM continue an interrupted run without SocketFleet's fan-out:
# the latency rate it set, the run number to start at (OUT: the same directory).
latency_rate=${LATENCY_RATE:-}
for run in $(seq "${RUN_FROM:-1}" "$RUNS"); do
  for system in $SYSTEMS; do
    tag="$system-run$run"
    if [[ " $SCENARIOS " == *" fanout "* ]]; then
      echo "== run $run: $system fan-out and latency ($CLIENTS clients, $CHANNELS channels, $INSTANCES instances)"
      start_instances "$system" "$INSTANCES"
      fixed="auto:$LATENCY_FRACTION:$LATENCY_SECONDS"
      [ "$system" != socketfleet ] && [ -n "$latency_rate" ] && fixed="$latency_rate:$LATENCY_SECONDS"
      "${GEN[@]}" run --system "$system" --addrs "$(addrs)" --clients "$CLIENTS" --channels "$CHANNELS" \
        --ramp "$RAMP" --fixed "$fixed" --procs "$(procs)" > "$OUT/fanout-$tag.json" 2> "$OUT/fanout-$tag.log" \
        || { echo "bench: $tag fan-out failed:"; tail -5 "$OUT/fanout-$tag.log"; }
      [ "$system" = socketfleet ] && latency_rate=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["fixed"]["target_rate"]))' "$OUT/fanout-$tag.json" 2>/dev/null || echo "")
      python3 scripts/bench-report.py --line "$OUT/fanout-$tag.json" || true
      stop_instances
    fi
    rate=${FIXED_RATE:-${latency_rate:-500}}
    if [[ " $SCENARIOS " == *" idle "* ]]; then
      for n in $IDLE_COUNTS; do
        echo "== run $run: $system idle memory, $n connections over $INSTANCES instances"
        start_instances "$system" "$INSTANCES"
        sleep 1
        gens=()
        for i in $(seq 0 $((INSTANCES - 1))); do
          "${GEN[@]}" idle --system "$system" --addrs "${INST_ADDRS[$i]}" --clients $((n / INSTANCES)) --pid "${INST_PIDS[$i]}" --hold 5 \
            > "$OUT/idle$n-$tag.$i.part" 2> "$OUT/idle$n-$tag.$i.log" & gens+=($!)
        done
        for g in "${gens[@]}"; do wait "$g" || echo "bench: $tag idle generator failed: $(tail -n 2 "$OUT"/idle$n-$tag.*.log)"; done
        python3 scripts/bench-report.py --merge-idle "$OUT/idle$n-$tag.json" "$OUT"/idle$n-$tag.*.part || true
        cat "$OUT/idle$n-$tag.json" 2>/dev/null; echo
        stop_instances
      done
    fi
    if [[ " $SCENARIOS " == *" rolling "* ]]; then
      echo "== run $run: $system rolling replacement of $INSTANCES instances at $rate publishes/s"
      under_event rolling "$system" "$tag" "$rate" "$ROLLING_SECONDS" replace_event
    fi
    if [[ " $SCENARIOS " == *" failover "* ]]; then failover "$system" "$tag" "$rate"; fi
    if [[ " $SCENARIOS " == *" storm "* ]]; then
      echo "== run $run: $system reconnect storm (every client connection reset) at $rate publishes/s"
      under_event storm "$system" "$tag" "$rate" "$NET_SECONDS" storm_event
    fi
    if [[ " $SCENARIOS " == *" loss "* ]]; then
      echo "== run $run: $system $LOSS_PERCENT% packet loss for $LOSS_SECONDS s at $rate publishes/s"
      under_event loss "$system" "$tag" "$rate" "$NET_SECONDS" loss_event
    fi
    if [[ " $SCENARIOS " == *" blackhole "* ]]; then
      echo "== run $run: $system $BLACKHOLE_SECONDS s blackhole at $rate publishes/s"
      under_event blackhole "$system" "$tag" "$rate" "$NET_SECONDS" blackhole_event
    fi
  done
  if [[ " $SCENARIOS " == *" failover "* && $DURABLE = 1 && " $SYSTEMS " == *" socketfleet "* ]]; then
    failover socketfleet-durable "socketfleet-durable-run$run" "$rate"
  fi
done
python3 scripts/bench-report.py "$OUT" > "$OUT/tables.md"
echo "== tables ($OUT/tables.md; paste into bench/RESULTS.md)"
cat "$OUT/tables.md"
