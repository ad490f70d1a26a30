#!/usr/bin/env python3
"""Polls a `socketfleet local` fleet once a second for SECONDS: each sidecar's connections,
readiness and drain from its admin /status. One JSON line per poll: {"t": seconds since
start, "sidecars": [{"name", "connections", "ready", "draining"}]}. Loopback only."""
import json
import sys
import time
import urllib.request


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return json.load(r)
    except Exception:
        return None


def main():
    base, seconds = sys.argv[1], float(sys.argv[2])
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        tick = time.monotonic()
        fleet = get(f"{base}/fleet.json") or {"sidecars": []}
        rows = []
        for s in fleet["sidecars"]:
            st = get(f"{s['admin']}/status")
            rows.append({
                "name": s["name"],
                "connections": st["connections"] if st else None,
                "ready": bool(st and st["ready"]),
                "draining": bool(s["draining"] or (st and st["drain"]["draining"])),
            })
        print(json.dumps({"t": round(tick - start, 1), "sidecars": rows}), flush=True)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))


if __name__ == "__main__":
    main()
