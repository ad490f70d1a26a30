#!/usr/bin/env python3
"""Turns the JSON reports of scripts/bench.sh into the Markdown tables of bench/RESULTS.md.

    bench-report.py DIR          tables (medians over runs, ratios to SocketFleet)
    bench-report.py --line FILE  one line about one report, printed while the bench runs
    bench-report.py --merge-idle OUT PART...  one idle report from one per instance
"""
import glob
import json
import os
import re
import statistics
import sys

SYSTEMS = ["socketfleet", "socketfleet-durable", "centrifugo", "socketio", "wsredis"]
NAMES = {
    "socketfleet": "SocketFleet",
    "socketfleet-durable": "SocketFleet, durable publish",
    "centrifugo": "Centrifugo engine (centrifuge)",
    "socketio": "Socket.IO + Redis streams adapter",
    "wsredis": "ws + ioredis pub/sub",
}


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def line(path):
    r = load(path)
    if r is None:
        print(f"  (no report in {path})")
        return
    parts = []
    if "ramp" in r:
        s = r["ramp"].get("sustained") or {}
        parts.append(f"sustained {s.get('delivered_per_s', 0):,.0f} msg/s at {s.get('published_per_s', 0):,.0f} pub/s")
    if "fixed" in r:
        f = r["fixed"]
        lat = f["latency"]
        parts.append(f"fixed {f['published_per_s']:,.0f} pub/s: p50 {lat['p50_ms']} ms p99 {lat['p99_ms']} ms p99.9 {lat['p999_ms']} ms")
        if "recovery" in f:
            parts.append(f"recovered after {f['recovery']['recovered_after_s']} s")
    parts.append(f"missing {r.get('missing')} dup {r.get('duplicates')} refused {r.get('refused')} unconfirmed {r.get('unconfirmed')}")
    if r.get("resumed") or r.get("resume_rejected"):
        parts.append(f"sessions resumed {r.get('resumed')}, resume refused {r.get('resume_rejected')}")
    print("  " + "; ".join(parts))


def runs(out, scenario, system):
    files = sorted(glob.glob(os.path.join(out, f"{scenario}-{system}-run*.json")))
    return [r for r in (load(f) for f in files) if r is not None]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def ratio(v, base):
    if v is None or not base:
        return "n/a"
    return f"{(v / base):.2f}×"


PEERS = ["centrifugo", "socketio", "wsredis"]


def versus_best(what, by_system, lower_is_better, bullet=False):
    """One line under a table: SocketFleet's figure as a ratio to the best peer's of the same run (a list item
    when `bullet`, for several under one table)."""
    peers = {s: v for s, v in by_system.items() if s in PEERS and v is not None}
    ours = by_system.get("socketfleet")
    if ours is None or not peers:
        return
    best = (min if lower_is_better else max)(peers, key=peers.get)
    digits = 0 if ours >= 100 or float(ours).is_integer() else 2
    if peers[best] and ours:
        compared = ratio(ours, peers[best])
    elif peers[best]:
        compared = "SocketFleet 0"
    else:
        # The best peer at 0 (nothing lost, say): a ratio to it means nothing.
        compared = "both 0" if not ours else "the best peer 0"
    text = f"{what}: {fmt(ours, digits)} against {NAMES[best]}'s {fmt(peers[best], digits)}, {compared}."
    print(f"- {text}" if bullet else f"SocketFleet against the best peer, {text}\n")


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def main(out):
    loop = load(os.path.join(out, "loopback.json")) or {}
    n_runs = max((len(runs(out, "fanout", s)) for s in SYSTEMS), default=0)
    print(f"Runs: {n_runs} (medians below). Raw reports: `{out}`.\n")
    if loop:
        print(f"Loopback limit, 100-byte frames: {fmt(loop.get('one_write_per_frame_per_s'))} frames/s with one write per frame, "
              f"{fmt(loop.get('batched_64_per_write_per_s'))} frames/s with 64 frames per write.\n")

    # 1. fan-out
    rows, base, base_per_core, per_cores, sustained = [], None, None, {}, {}
    for s in SYSTEMS:
        rs = runs(out, "fanout", s)
        if not rs:
            continue
        sust = [((r.get("ramp") or {}).get("sustained") or {}).get("delivered_per_s") for r in rs]
        peak = [(r.get("ramp") or {}).get("peak_delivered_per_s") for r in rs]
        cores = [(((r.get("ramp") or {}).get("sustained") or {}).get("servers") or {}).get("servers", {}).get("cores") for r in rs]
        m = median(sust)
        sustained[s] = m
        if s == "socketfleet":
            base = m
        lim = loop.get("one_write_per_frame_per_s")
        per_core = median([v / c for v, c in zip(sust, cores) if v and c])
        per_cores[s] = per_core
        if s == "socketfleet":
            base_per_core = per_core
        rows.append([NAMES[s], fmt(m), ratio(m, base), fmt(median(peak)), fmt(median(cores), 2), fmt(per_core), ratio(per_core, base_per_core),
                     f"{100 * m / lim:.1f}%" if m and lim else "n/a", " / ".join(fmt(v) for v in sust)])
    print("### 1. Fan-out throughput\n")
    print(table(["system", "sustained deliveries/s (median)", "ratio to SocketFleet", "peak deliveries/s", "server cores at sustained step",
                 "deliveries/s per server core", "ratio", "of loopback limit (one write per frame)", "runs"], rows))
    print()
    versus_best("sustained deliveries/s", sustained, lower_is_better=False)
    versus_best("deliveries/s per server core", per_cores, lower_is_better=False)

    # 2. latency
    rows, base_p99, p99s = [], None, {}
    for s in SYSTEMS:
        rs = [r for r in runs(out, "fanout", s) if "fixed" in r]
        if not rs:
            continue
        f = [r["fixed"] for r in rs]
        q = lambda k: median([x["latency"][k] for x in f])
        p99s[s] = q("p99_ms")
        if s == "socketfleet":
            base_p99 = q("p99_ms")
        rows.append([NAMES[s], fmt(median([x["published_per_s"] for x in f])), fmt(median([x["delivered_per_s"] for x in f])),
                     fmt(q("p50_ms"), 2), fmt(q("p99_ms"), 2), fmt(q("p999_ms"), 2), fmt(q("max_ms")), ratio(q("p99_ms"), base_p99)])
    print("### 2. Publish-to-deliver latency at a fixed rate\n")
    print(table(["system", "publishes/s", "deliveries/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "p99 ratio to SocketFleet"], rows))
    print()
    versus_best("p99 ms", p99s, lower_is_better=True)

    # 3. idle memory
    counts = sorted({int(m.group(1)) for f in glob.glob(os.path.join(out, "idle*-*.json")) if (m := re.search(r"idle(\d+)-", f))})
    rows = []
    bases = {}
    largest = {}
    for s in SYSTEMS:
        row = [NAMES[s]]
        for n in counts:
            v = median([r.get("bytes_per_connection") for r in runs(out, f"idle{n}", s)])
            largest[s] = v
            if s == "socketfleet":
                bases[n] = v
            row += [fmt(v), ratio(v, bases.get(n))]
        if any(c != "n/a" for c in row[1:]):
            rows.append(row)
    header = ["system"]
    for n in counts:
        header += [f"bytes/conn at {n:,}", "ratio"]
    print("### 3. Memory per idle connection (RSS growth of the instances / connections)\n")
    print(table(header, rows))
    print()
    if counts:
        versus_best(f"bytes per idle connection at {counts[-1]:,}", largest, lower_is_better=True)

    for scenario, title in [("rolling", "4. Rolling replacement of every instance under load"),
                            ("failover", "5. A Redis primary killed under load"),
                            ("storm", "6. Reconnect storm: every client connection reset at once under load"),
                            ("loss", "7. Packet loss on the clients' path under load"),
                            ("blackhole", "8. A blackhole on the clients' path under load")]:
        # Each figure SocketFleet is compared on (lower is better for all): per system, its median.
        compared = {}
        rows = []
        for s in SYSTEMS:
            rs = runs(out, scenario, s)
            if not rs:
                continue
            rec = [r["fixed"].get("recovery", {}) for r in rs]
            peak = lambda group: fmt(median([(r["fixed"].get("peak_cores") or {}).get(group) for r in rs]), 2)
            figures = {
                "acknowledged deliveries missing": median([r.get("missing") for r in rs]),
                "duplicates delivered": median([r.get("duplicates") for r in rs]),
                "publishes refused or unconfirmed": median([r.get("refused", 0) + r.get("unconfirmed", 0) for r in rs]),
                "seconds until every client is connected again": median([x.get("all_connected_again_s") for x in rec]),
                "seconds until recovered": median([x.get("recovered_after_s") for x in rec]),
                "p99 ms over the phase": median([r["fixed"]["latency"]["p99_ms"] for r in rs]),
            }
            for what, v in figures.items():
                compared.setdefault(what, {})[s] = v
            rows.append([NAMES[s], fmt(median([r["fixed"]["published_per_s"] for r in rs])),
                         fmt(figures["acknowledged deliveries missing"]), fmt(median([r.get("clients_missing") for r in rs])),
                         fmt(figures["duplicates delivered"]), fmt(figures["publishes refused or unconfirmed"]),
                         fmt(figures["seconds until every client is connected again"], 2),
                         fmt(figures["seconds until recovered"], 2),
                         fmt(median([r["fixed"].get("event", {}).get("duration_s") for r in rs]), 1),
                         peak("servers"), peak("redis"), fmt(median([r.get("connect_errors") for r in rs])),
                         fmt(figures["p99 ms over the phase"], 1),
                         " / ".join(fmt(r.get("missing")) for r in rs)])
        if not rows:
            continue
        print(f"### {title}\n")
        print(table(["system", "publishes/s", "acknowledged but missing (deliveries)", "clients missing any", "duplicates delivered",
                     "publishes refused or unconfirmed", "every client connected again after s", "recovered after s",
                     "event took s", "peak server cores (busiest second)", "peak Redis cores", "connection attempts that failed",
                     "p99 ms over the phase", "missing per run"], rows))
        print()
        print("SocketFleet against the best peer of the same run (medians):\n")
        for what, by_system in compared.items():
            versus_best(what, by_system, lower_is_better=True, bullet=True)
        print()


def merge_idle(out, parts):
    rs = [load(p) for p in parts]
    rs = [r for r in rs if r]
    if len(rs) != len(parts):
        sys.exit(f"merge-idle: {len(parts) - len(rs)} of {len(parts)} idle generators failed")
    conns = sum(r["connections"] for r in rs)
    grown = sum(r["bytes_per_connection"] * r["connections"] for r in rs)
    merged = {"system": rs[0]["system"], "connections": conns, "instances": len(rs),
              "bytes_per_connection": round(grown / conns), "per_instance": rs}
    with open(out, "w") as f:
        json.dump(merged, f)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--merge-idle":
        merge_idle(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "--line":
        line(sys.argv[2])
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
