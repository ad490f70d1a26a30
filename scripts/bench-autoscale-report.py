#!/usr/bin/env python3
"""bench-autoscale-report.py OUT SURGE_AT SURGE_FOR DURATION: the autoscaling scenario's table from
OUT/autoscale-{timeline.jsonl,base.json,surge.json} (see scripts/bench-autoscale.sh)."""
import json
import sys
from pathlib import Path


def serving(row):
    return [s for s in row["sidecars"] if s["ready"] and not s["draining"]]


def spread(row):
    counts = [s["connections"] for s in serving(row) if s["connections"] is not None]
    total = sum(counts)
    return max(counts) * len(counts) / total if counts and total else None


def total(row):
    return sum(s["connections"] or 0 for s in row["sidecars"])


def first(rows, after, pred):
    return next((r for r in rows if r["t"] >= after and pred(r)), None)


def main():
    out, surge_at, surge_for, duration = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    rows = [json.loads(l) for l in (out / "autoscale-timeline.jsonl").read_text().splitlines() if l.strip()]
    reports = {g: json.loads((out / f"autoscale-{g}.json").read_text() or "{}") for g in ("base", "surge")}
    peak = max(len(serving(r)) for r in rows)
    up = first(rows, surge_at, lambda r: len(serving(r)) >= peak)
    balanced = up and first(rows, up["t"], lambda r: (spread(r) or 9) <= 1.2 and len(serving(r)) >= peak)
    left = first(rows, surge_at + surge_for, lambda r: total(r) <= total(balanced or up) * 0.6) if up else None
    # The fewest serving while the base load still runs (after it, everything drains to min).
    during = [r for r in rows if left and left["t"] <= r["t"] < duration - 2]
    low = min(len(serving(r)) for r in during) if during else None
    down = left and first(rows, left["t"], lambda r: len(r["sidecars"]) == low and not any(s["draining"] for s in r["sidecars"]))
    end = next((r for r in reversed(rows) if r["t"] < duration - 2), rows[-1])
    f = lambda r, base: f"{r['t'] - base:.0f} s" if r else "not reached"
    print("| figure | measured |")
    print("|---|---|")
    print(f"| sidecars: before the surge → peak → after | {len(serving(first(rows, surge_at - 2, lambda r: True)))} → {peak} → {low} |")
    print(f"| surge start → {peak} sidecars serving | {f(up, surge_at)} |")
    print(f"| {peak} serving → spread within 20% of the mean | {f(balanced, up['t']) if up else 'not reached'} (spread then {spread(balanced) or 0:.2f}) |")
    print(f"| surge gone → back to {low} sidecars (drained one at a time) | {f(down, left['t']) if left else 'not reached'} |")
    print(f"| spread before the base load ends | {spread(end) or 0:.2f} ({[s['connections'] for s in end['sidecars']]}) |")
    for g, r in reports.items():
        print(f"| {g} clients ({r.get('clients')}): published / acknowledged / missing / duplicates | "
              f"{r.get('published')} / {r.get('acknowledged')} / {r.get('missing')} / {r.get('duplicates')} |")
        print(f"| {g} clients: disconnects (drains and rebalancing) / refused / unconfirmed | "
              f"{r.get('disconnects')} / {r.get('refused')} / {r.get('unconfirmed')} |")


if __name__ == "__main__":
    main()
