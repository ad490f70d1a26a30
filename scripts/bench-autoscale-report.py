#!/usr/bin/env python3
"""bench-autoscale-report.py OUT SURGE_AT SURGE_FOR DURATION: the autoscaling scenario's table from
OUT/autoscale-{timeline.jsonl,base.json,surge.json} (see scripts/bench-autoscale.sh)."""
import json
import sys
from pathlib import Path


def serving(row):
    return [s for s in row["sidecars"] if s["ready"] and not s["draining"]]


def spread(row):
    if not row:
        return None
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
    # A poll that could not read the fleet (local mode busy) says nothing.
    rows = [r for r in rows if r["sidecars"]]
    reports = {g: json.loads((out / f"autoscale-{g}.json").read_text() or "{}") for g in ("base", "surge")}
    peak = max(len(serving(r)) for r in rows)
    up = first(rows, surge_at, lambda r: len(serving(r)) >= peak)
    balanced = up and first(rows, up["t"], lambda r: (spread(r) or 9) <= 1.2 and len(serving(r)) >= peak)
    # Down: from the last poll at the peak to the first with the fewest sidecars the base load
    # kept (before it ended, after which everything drains to min), none draining.
    before_end = [r for r in rows if r["t"] < duration - 2]
    low = len(serving(before_end[-1])) if before_end else None
    last_peak = next((r for r in reversed(before_end) if len(serving(r)) >= peak), None)
    down = last_peak and first(rows, last_peak["t"], lambda r: len(r["sidecars"]) == low and not any(s["draining"] for s in r["sidecars"]))
    end = next((r for r in reversed(rows) if r["t"] < duration - 2), rows[-1])
    f = lambda r, base: f"{r['t'] - base:.0f} s" if r else "not reached"
    print("| figure | measured |")
    print("|---|---|")
    print(f"| sidecars: before the surge → peak → after | {len(serving(first(rows, surge_at - 2, lambda r: True)))} → {peak} → {low} |")
    print(f"| surge start → {peak} sidecars serving | {f(up, surge_at)} |")
    print(f"| {peak} serving → spread within 20% of the mean | {f(balanced, up['t']) if up else 'not reached'} (spread then {spread(balanced) or 0:.2f}) |")
    print(f"| last poll at {peak} → back to {low} sidecars (drained one at a time) | {f(down, last_peak['t']) if last_peak else 'not reached'} |")
    print(f"| spread before the base load ends | {spread(end) or 0:.2f} ({[s['connections'] for s in end['sidecars']]}) |")
    for g, r in reports.items():
        print(f"| {g} clients ({r.get('clients')}): published / acknowledged / missing / duplicates | "
              f"{r.get('published')} / {r.get('acknowledged')} / {r.get('missing')} / {r.get('duplicates')} |")
        print(f"| {g} clients: disconnects (drains and rebalancing) / refused / unconfirmed | "
              f"{r.get('disconnects')} / {r.get('refused')} / {r.get('unconfirmed')} |")


if __name__ == "__main__":
    main()
