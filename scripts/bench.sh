#!/usr/bin/env bash
# `make bench`: SocketFleet and its peers side by side, in one run, on this machine,
# loopback only. For every run (RUNS, default 3) and every system (SYSTEMS), on a fresh
# 6-node Redis Cluster (3 primaries, 1 replica each) with INSTANCES gateway instances:
#   1. fan-out: CLIENTS subscribers over CHANNELS channels, 100-byte payloads, the publish
#      rate ramped (RAMP start:factor:seconds:steps) until the system stops keeping up;
#   2. latency at a fixed rate: LATENCY_FRACTION of SocketFleet's sustained publish rate
#      in the same run (SocketFleet goes first), the same rate for every system;
#   3. memory per idle connection at each of IDLE_COUNTS, one instance;
#   4. rolling replacement of every instance under that fixed load (FIXED_RATE overrides
#      it for scenarios 4 and 5; without a SocketFleet fan-out in the run it is 500);
#   5. a Redis primary killed (SIGKILL) under that fixed load, restarted RESTART_AFTER
#      seconds later; with DURABLE=1 (default)
#      also SocketFleet with SF_DURABLE_PUBLISH=true ("socketfleet-durable"), whose
#      publishes are acknowledged once a replica has them.
# Plus the machine's loopback limit for 100-byte frames. Raw JSON reports go to
# target/bench/<stamp>/; scripts/bench-report.py turns them into bench/RESULTS.md's tables.
# CPU pinning (taskset): this script and everything it starts (Redis, the servers under
# test) run on CPU 0; the load generator runs on CPU 1. The systems under test get one
# core each way and never compete with the generator for it.
# Every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/local-lib.sh
RUNS=${RUNS:-3}
SYSTEMS=${SYSTEMS:-socketfleet centrifugo socketio wsredis}
INSTANCES=${INSTANCES:-3}
CLIENTS=${CLIENTS:-10000}
CHANNELS=${CHANNELS:-100}
RAMP=${RAMP:-100:1.2:4:24}
LATENCY_FRACTION=${LATENCY_FRACTION:-0.2}
LATENCY_SECONDS=${LATENCY_SECONDS:-15}
IDLE_COUNTS=${IDLE_COUNTS:-10000 50000}
SCENARIOS=${SCENARIOS:-fanout idle rolling failover}
ROLLING_SECONDS=${ROLLING_SECONDS:-35}
FAILOVER_SECONDS=${FAILOVER_SECONDS:-25}
DURABLE=${DURABLE:-1}
RESTART_AFTER=${RESTART_AFTER:-5}
OUT=${OUT:-target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
# Raise the soft limit to the hard one (20,000 on this machine: one process cannot hold
# 50,000 sockets, so idle memory at 50,000 spreads over the instances and generators).
ulimit -n "$(ulimit -Hn)"
eval "$(scripts/bench-peers.sh)"
taskset -cp 0 $$ >/dev/null
GEN=(taskset -c 1 "$BIN/socketfleet-bench")
RESUME_KEY=$(openssl rand -hex 32)

# Instances of SYSTEM on Redis Cluster ADDRS: INST_DIR (kept in OUT) holds each one's
# command, pid, log and readiness URL (scripts/bench-replace.sh restarts them from there);
# sets INST_ADDRS, INST_PIDS.
start_instances() {
  local system=$1 addrs=$2 count=$3 i port admin api
  INST_DIR=$OUT/instances/$system-$RANDOM; mkdir -p "$INST_DIR"
  INST_ADDRS=(); INST_PIDS=()
  for i in $(seq 1 "$count"); do
    port=$(free_port)
    case $system in
      socketfleet | socketfleet-durable)
        local durable=false; [ "$system" = socketfleet-durable ] && durable=true
        admin=$(free_port); api=$(free_port)
        echo "http://127.0.0.1:$admin/ready" > "$INST_DIR/$i.ready"
        cat > "$INST_DIR/$i.cmd" <<CMD
ulimit -n \$(ulimit -Hn)
export SF_AUTH=none SF_REDIS_MODE=cluster SF_REDIS_ADDRS=$addrs SF_NODE_NAME=sf$i SF_LOG=warn \
  SF_WS_ADDR=127.0.0.1:$port SF_ADMIN_ADDR=127.0.0.1:$admin SF_APP_API_ADDR=127.0.0.1:$api \
  SF_RESUME_KEY=$RESUME_KEY SF_DRAIN_SPREAD=3s SF_DRAIN_TIMEOUT=15s SF_DURABLE_PUBLISH=$durable
exec $PWD/$BIN/socketfleet-sidecar
CMD
        ;;
      centrifugo)
        echo "http://127.0.0.1:$port/ready" > "$INST_DIR/$i.ready"
        printf 'ulimit -n $(ulimit -Hn)\nexec %s -addr 127.0.0.1:%s -redis %s -cluster %s\n' "$CENTRIFUGE_PEER" "$port" "$addrs" "${CENTRIFUGE_FLAGS:-}" > "$INST_DIR/$i.cmd" ;;
      socketio | wsredis)
        local script=socketio-server.mjs; [ "$system" = wsredis ] && script=ws-server.mjs
        echo "http://127.0.0.1:$port/ready" > "$INST_DIR/$i.ready"
        printf 'ulimit -n $(ulimit -Hn)\nexec node --max-old-space-size=8192 %s/bench/peers/node/%s --port %s --redis %s --cluster\n' \
          "$PWD" "$script" "$port" "$addrs" > "$INST_DIR/$i.cmd" ;;
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

# The measurement is over: no drain to wait for.
stop_instances() {
  local f
  for f in "$INST_DIR"/*.pid; do kill -9 "$(cat "$f")" 2>/dev/null || true; done
  for f in "$INST_DIR"/*.pid; do wait "$(cat "$f")" 2>/dev/null || true; done
}

stop_cluster() {
  local a
  for a in ${SF_CLUSTER_ADDRS//,/ }; do redis-cli -p "${a#*:}" shutdown nosave >/dev/null 2>&1 || true; done
}

redis_pids() {
  local a pids=()
  for a in ${SF_CLUSTER_ADDRS//,/ }; do pids+=("$(redis-cli -p "${a#*:}" info server | awk -F: '/^process_id/ {print $2}' | tr -d '\r')"); done
  (IFS=,; echo "${pids[*]}")
}

# The failover event: SIGKILL a primary, then, as a StatefulSet would, start it again on
# its address and cluster config after RESTART_AFTER seconds (it rejoins as a replica of
# the node that replaced it; until then that shard has no replica).
kill_primary_event() {
  local seed=${SF_CLUSTER_ADDRS%%,*} port pid
  port=$(redis-cli -p "${seed#*:}" cluster nodes | awk '/master/ && !/fail/ {split($2, a, "[:@]"); print a[2]; exit}')
  pid=$(redis-cli -p "$port" info server | awk -F: '/^process_id/ {print $2}' | tr -d '\r')
  echo "kill -9 $pid; sleep $RESTART_AFTER; cd $SF_WORK/redis-$port && setsid redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no" \
    "--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 >/dev/null 2>&1 < /dev/null &"
}

addrs() { (IFS=,; echo "${INST_ADDRS[*]}"); }
procs() { echo "servers=$(IFS=,; echo "${INST_PIDS[*]}");redis=$(redis_pids)"; }

replace_event() { echo "scripts/bench-replace.sh $INST_DIR"; }

# under_event SCENARIO SYSTEM TAG RATE SECONDS EVENT: SYSTEM on a fresh cluster at RATE
# publishes/s for SECONDS; 5 s in, the command EVENT prints (a function, called once the
# cluster and the instances are up) runs.
under_event() {
  local scenario=$1 system=$2 tag=$3 rate=$4 seconds=$5 event=$6
  start_cluster; start_instances "$system" "$SF_CLUSTER_ADDRS" "$INSTANCES"
  "${GEN[@]}" run --system "${system%-durable}" --addrs "$(addrs)" --clients "$CLIENTS" --channels "$CHANNELS" \
    --fixed "$rate:$seconds" --event-at 5 --event "$($event)" > "$OUT/$scenario-$tag.json" 2> "$OUT/$scenario-$tag.log" \
    || { echo "bench: $tag $scenario failed:"; tail -5 "$OUT/$scenario-$tag.log"; }
  python3 scripts/bench-report.py --line "$OUT/$scenario-$tag.json" || true
  stop_instances; stop_cluster
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
      start_cluster; start_instances "$system" "$SF_CLUSTER_ADDRS" "$INSTANCES"
      fixed="auto:$LATENCY_FRACTION:$LATENCY_SECONDS"
      [ "$system" != socketfleet ] && [ -n "$latency_rate" ] && fixed="$latency_rate:$LATENCY_SECONDS"
      "${GEN[@]}" run --system "$system" --addrs "$(addrs)" --clients "$CLIENTS" --channels "$CHANNELS" \
        --ramp "$RAMP" --fixed "$fixed" --procs "$(procs)" > "$OUT/fanout-$tag.json" 2> "$OUT/fanout-$tag.log" \
        || { echo "bench: $tag fan-out failed:"; tail -5 "$OUT/fanout-$tag.log"; }
      [ "$system" = socketfleet ] && latency_rate=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["fixed"]["target_rate"]))' "$OUT/fanout-$tag.json" 2>/dev/null || echo "")
      python3 scripts/bench-report.py --line "$OUT/fanout-$tag.json" || true
      stop_instances; stop_cluster
    fi
    rate=${FIXED_RATE:-${latency_rate:-500}}
    if [[ " $SCENARIOS " == *" idle "* ]]; then
      for n in $IDLE_COUNTS; do
        echo "== run $run: $system idle memory, $n connections over $INSTANCES instances"
        start_cluster; start_instances "$system" "$SF_CLUSTER_ADDRS" "$INSTANCES"
        sleep 1
        gens=()
        for i in $(seq 0 $((INSTANCES - 1))); do
          "${GEN[@]}" idle --system "$system" --addrs "${INST_ADDRS[$i]}" --clients $((n / INSTANCES)) --pid "${INST_PIDS[$i]}" --hold 5 \
            > "$OUT/idle$n-$tag.$i.part" 2> "$OUT/idle$n-$tag.$i.log" & gens+=($!)
        done
        for g in "${gens[@]}"; do wait "$g" || echo "bench: $tag idle generator failed: $(tail -n 2 "$OUT"/idle$n-$tag.*.log)"; done
        python3 scripts/bench-report.py --merge-idle "$OUT/idle$n-$tag.json" "$OUT"/idle$n-$tag.*.part || true
        cat "$OUT/idle$n-$tag.json" 2>/dev/null; echo
        stop_instances; stop_cluster
      done
    fi
    if [[ " $SCENARIOS " == *" rolling "* ]]; then
      echo "== run $run: $system rolling replacement of $INSTANCES instances at $rate publishes/s"
      under_event rolling "$system" "$tag" "$rate" "$ROLLING_SECONDS" replace_event
    fi
    if [[ " $SCENARIOS " == *" failover "* ]]; then failover "$system" "$tag" "$rate"; fi
  done
  if [[ " $SCENARIOS " == *" failover "* && $DURABLE = 1 && " $SYSTEMS " == *" socketfleet "* ]]; then
    failover socketfleet-durable "socketfleet-durable-run$run" "$rate"
  fi
done
python3 scripts/bench-report.py "$OUT" > "$OUT/tables.md"
echo "== tables ($OUT/tables.md; paste into bench/RESULTS.md)"
cat "$OUT/tables.md"
