#!/usr/bin/env bash
# Where a sidecar spends its CPU under fan-out load: the setup of `make bench`'s fan-out
# scenario (6-node Redis Cluster, 3 sidecars, from `socketfleet local`; CLIENTS subscribers
# over CHANNELS channels, pinned the same way) at a fixed RATE publishes/s, with `perf record -g` on the first
# sidecar for PROFILE_SECONDS once the load runs. Prints the top of `perf report` (self time, by
# symbol) and leaves perf.data in OUT. Needs `perf` (Debian's linux-perf) and the release
# build (`make bench` builds it; it keeps debug info for this).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-fleet.sh
CLIENTS=${CLIENTS:-10000}
CHANNELS=${CHANNELS:-100}
RATE=${RATE:-300}
PROFILE_SECONDS=${PROFILE_SECONDS:-15}
OUT=${OUT:-target/bench/profile}
command -v perf >/dev/null || { echo "bench-profile: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
taskset -cp 0 $$ >/dev/null
fleet_yaml "$BENCH_WORK/fleet.yaml" 3
start_local "$BENCH_WORK/fleet.yaml"
read -ra addrs <<< "$(sidecar_addrs)"; read -ra pids <<< "$(sidecar_pids)"
taskset -c 1 "$BIN/socketfleet-bench" run --system socketfleet --addrs "$(IFS=,; echo "${addrs[*]}")" \
  --clients "$CLIENTS" --channels "$CHANNELS" --fixed "$RATE:$((PROFILE_SECONDS + 10))" --event-at 3 \
  --event "perf record -F 999 -g -p ${pids[0]} -o $OUT/perf.data -- sleep $PROFILE_SECONDS 2>/dev/null" > "$OUT/run.json"
python3 scripts/bench-report.py --line "$OUT/run.json"
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -40
