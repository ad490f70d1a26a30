#!/usr/bin/env bash
# `make bench-reshard`: what a reshard costs a busy fleet, loopback only. RUNS times (3),
# socketfleet-bench-reshard starts a 3-shard Redis Cluster (one replica each, bootstrapped
# by the operator's own admin pass), writes KEYS keys, starts three durable sidecars and runs
# CLIENTS clients over CHANNELS channels publishing at RATE/s for SECONDS s twice: once with
# nothing moving, once while the cluster goes 3 → 4 → 3 shards over and over. Each run's
# JSON goes to target/bench/<stamp>/reshard-<n>/report.json; the table printed at the end
# holds the medians of the runs (slots/s and keys/s of each direction, publish→deliver p99
# of both runs and what the moves added, messages missing, keys readable after).
# CPU pinning as in bench.sh: Redis, the sidecars and the driver on CPU 0, the load
# generator on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
RUNS=${RUNS:-3}
KEYS=${KEYS:-100000}
CLIENTS=${CLIENTS:-1000}
CHANNELS=${CHANNELS:-100}
RATE=${RATE:-500}
SECONDS_EACH=${SECONDS_EACH:-40}
OUT=${OUT:-target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
for n in $(seq 1 "$RUNS"); do
  dir="$OUT/reshard-$n"
  mkdir -p "$dir"
  echo "== reshard run $n of $RUNS: $KEYS keys, $CLIENTS clients, $RATE publishes/s for ${SECONDS_EACH}s"
  taskset -c 0 "$BIN/socketfleet-bench-reshard" --sidecar "$BIN/socketfleet-sidecar" \
    --bench "$(pwd)/scripts/taskset-cpu1.sh" --out "$dir" --keys "$KEYS" --clients "$CLIENTS" \
    --channels "$CHANNELS" --rate "$RATE" --seconds "$SECONDS_EACH" > "$dir/report.json"
done
python3 - "$OUT" "$RUNS" <<'PY' | tee "$OUT/reshard-table.md"
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
reports = [json.load(open(f"{out}/reshard-{n}/report.json")) for n in range(1, runs + 1)]
def med(path):
    values = []
    for r in reports:
        v = r
        for k in path.split("."):
            v = v[k]
        values.append(v)
    return statistics.median(values)
rows = [
    ("slots moved per second, 3 → 4", "grow_3_to_4.slots_per_s"),
    ("keys moved per second, 3 → 4", "grow_3_to_4.keys_per_s"),
    ("slots moved per second, 4 → 3 (pods removed included)", "shrink_4_to_3.slots_per_s"),
    ("keys moved per second, 4 → 3", "shrink_4_to_3.keys_per_s"),
    ("reshards per run (grow + shrink)", None),
    ("publish→deliver p50, nothing moving (ms)", "baseline.p50_ms"),
    ("publish→deliver p99, nothing moving (ms)", "baseline.p99_ms"),
    ("publish→deliver p50, resharding (ms)", "resharding.p50_ms"),
    ("publish→deliver p99, resharding (ms)", "resharding.p99_ms"),
    ("p99 added by the moves (ms)", "added_p99_ms"),
    ("acknowledged publishes, resharding", "resharding.acknowledged"),
    ("missing / duplicates, resharding", None),
    ("keys readable after", "keys_readable_after"),
]
print(f"median of {runs} runs, {reports[0]['keys']} keys, load {json.dumps(reports[0]['load'])}\n")
print("| figure | median |")
print("|---|---|")
for name, path in rows:
    if name.startswith("reshards"):
        value = med("grow_3_to_4.count") + med("shrink_4_to_3.count")
    elif name.startswith("missing"):
        value = f"{max(r['resharding']['missing'] for r in reports)} / {max(r['resharding']['duplicates'] for r in reports)} (worst run)"
    else:
        value = med(path)
    print(f"| {name} | {value} |")
PY
