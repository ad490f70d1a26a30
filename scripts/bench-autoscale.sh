#!/usr/bin/env bash
# `make bench-autoscale`: the connection autoscaler under a load that doubles, then halves,
# through `socketfleet local` (the operator's decision and rebalancing, run every 2 s on
# real sidecars and a real 6-node Redis Cluster), loopback only:
#   - BASE clients (default 4,000) over CHANNELS channels publish at RATE/s for DURATION s,
#     through local mode's one address (its balancer picks a sidecar per connection);
#   - SURGE_AT s in, SURGE more clients (default 4,000) join for SURGE_FOR s, then leave;
#   - at TARGET connections per sidecar (2,400; min 1, max 8, a WINDOW-second scale-down window)
#     that asks for 2 → 4 → 2 sidecars.
# The balancer holds two open files per client: BASE + SURGE must fit in half of this
# shell's open-file limit (20,000 on the project's machines, which cannot raise it), or the
# run stops before it starts.
# Measured: when sidecars were added and drained (a timeline of every sidecar's connections,
# polled each second), the spread after each change, messages lost and duplicated by each
# group of clients, and the reconnects the autoscaler caused. JSON to target/bench/<stamp>/
# autoscale-*; scripts/bench-autoscale-report.py prints the table of bench/RESULTS.md.
# CPU pinning as in bench.sh: local mode and everything it starts on CPU 0, the load
# generators on CPU 1. Every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-fleet.sh
BASE=${BASE:-4000}
SURGE=${SURGE:-4000}
TARGET=${TARGET:-2400}
CHANNELS=${CHANNELS:-100}
RATE=${RATE:-100}
DURATION=${DURATION:-160}
SURGE_AT=${SURGE_AT:-30}
SURGE_FOR=${SURGE_FOR:-50}
WINDOW=${WINDOW:-20}
OUT=${OUT:-target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
# Each client is two sockets in local mode's balancer (each side of the proxy): the limit
# is raised where this shell may, and the sizes checked against it.
ulimit -Hn 200000 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
fits=$(( ($(ulimit -n) - 200) / 2 ))
if [ $((BASE + SURGE)) -gt "$fits" ]; then
  echo "bench-autoscale: $BASE + $SURGE clients do not fit local mode's balancer here: at the open-file limit of $(ulimit -n) it proxies $fits (two sockets per client); lower BASE and SURGE" >&2
  exit 2
fi
taskset -cp 0 $$ >/dev/null
GEN=(taskset -c 1 "$BIN/socketfleet-bench")

cat > "$OUT/autoscale-fleet.yaml" <<YAML
apiVersion: socketfleet.io/v1alpha1
kind: SocketFleet
metadata:
  name: autoscale-bench
spec:
  gateway:
    replicas: { min: 1, max: 8 }
  autoscaling:
    enabled: true
    targetConnectionsPerPod: $TARGET
    scaleDownStabilization: ${WINDOW}s
  redis:
    mode: cluster
    shards: 3
    replicasPerShard: 1
  auth:
    mode: none
  drain:
    timeout: 30s
    reconnectSpread: 5s
YAML
start_local "$OUT/autoscale-fleet.yaml"
local_log=$(ls -t "$BENCH_WORK"/local-*.log | head -1)
addr=${LOCAL_URL#http://}
python3 scripts/bench-autoscale-watch.py "$LOCAL_URL" $((DURATION + 40)) > "$OUT/autoscale-timeline.jsonl" &
watcher=$!
echo "== autoscale: $BASE clients for ${DURATION}s, $SURGE more from ${SURGE_AT}s for ${SURGE_FOR}s, $TARGET per sidecar"
"${GEN[@]}" run --system socketfleet --addrs "$addr" --clients "$BASE" --channels "$CHANNELS" --publishers 5 \
  --fixed "$RATE:$DURATION" --channel-prefix base > "$OUT/autoscale-base.json" 2> "$OUT/autoscale-base.log" &
base=$!
sleep "$SURGE_AT"
"${GEN[@]}" run --system socketfleet --addrs "$addr" --clients "$SURGE" --channels "$CHANNELS" --publishers 5 \
  --fixed "$RATE:$SURGE_FOR" --channel-prefix surge > "$OUT/autoscale-surge.json" 2> "$OUT/autoscale-surge.log" || echo "bench: the surge failed: $(tail -3 "$OUT/autoscale-surge.log")"
wait "$base" || echo "bench: the base load failed: $(tail -3 "$OUT/autoscale-base.log")"
wait "$watcher" || true
grep -E "autoscaler|rebalanc|draining|drained|takes its place|running again" "$local_log" > "$OUT/autoscale-decisions.log" || true
cp "$local_log" "$OUT/autoscale-local.log"
python3 scripts/bench-autoscale-report.py "$OUT" "$SURGE_AT" "$SURGE_FOR" "$DURATION" | tee "$OUT/autoscale-table.md"
