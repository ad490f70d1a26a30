#!/usr/bin/env bash
# Rolling replacement, run by the load generator during the rolling scenario, one instance
# at a time: SIGTERM it, wait for it to exit (at most 60 s), have it started again, wait
# until it is ready (at most 600 looks, about 30 s). Usage: bench-replace.sh DIR, where DIR holds either
#   - local: the URL of `socketfleet local`, which replaces a sidecar that drained and
#     exited on its ports (the instance is back when /fleet.json shows its WebSocket address
#     with a new pid and its /ready answers), or
#   - per instance <i>.cmd (how it was started), <i>.pid and <i>.ready (its readiness URL).
set -euo pipefail
dir=${1:?usage: bench-replace.sh DIR}
fleet() { curl -sf -m 5 "$(cat "$dir/local")/fleet.json" | python3 -c "import json,sys; f=json.load(sys.stdin); print($1)"; }
if [[ -e $dir/local ]]; then
  # A sidecar that drained and exited is replaced under a new name on its ports: follow
  # its WebSocket address.
  for ws in $(fleet '" ".join(s["ws"] for s in f["sidecars"])'); do
    sel="[s for s in f['sidecars'] if s['ws'] == '$ws']"
    pid=$(fleet "$sel[0]['pid']") old_admin=$(fleet "$sel[0]['admin']")
    began=$(date +%s.%N) exited=
    kill -TERM "$pid" 2>/dev/null || true
    # The exit first, with nothing but `kill -0` (each fleet.json read below starts a curl
    # and a python on the core the servers share, and made the exit's time coarse).
    for _ in $(seq 1 1200); do
      kill -0 "$pid" 2>/dev/null || { exited=$(date +%s.%N); break; }
      sleep 0.05
    done
    # Its replacement normally comes up on the same ports: once the old process is gone,
    # whoever answers there is the new one. Every tenth look also asks fleet.json, in case
    # the ports were taken and it came up elsewhere.
    for i in $(seq 1 600); do
      curl -sf -m 1 "$old_admin/ready" >/dev/null 2>&1 && break
      if (( i % 10 == 0 )); then
        admin=$(fleet "next((s['admin'] for s in $sel if s['pid'] != $pid), '')" || true)
        [[ -n $admin ]] && curl -sf -m 2 "$admin/ready" >/dev/null 2>&1 && break
      fi
      sleep 0.05
    done
    # To the generator's log: where a replacement's time goes.
    awk -v ws="$ws" -v a="$began" -v e="${exited:-$began}" -v r="$(date +%s.%N)" \
      'BEGIN { printf "bench-replace: %s exited %.2f s after SIGTERM, ready again after %.2f s\n", ws, e - a, r - a }' >&2
  done
  exit 0
fi
for cmd in "$dir"/*.cmd; do
  i=${cmd%.cmd}
  pid=$(cat "$i.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  bash "$cmd" >>"$i.log" 2>&1 < /dev/null &
  echo $! > "$i.pid"
  for _ in $(seq 1 300); do curl -sf -m 2 "$(cat "$i.ready")" >/dev/null 2>&1 && break; sleep 0.1; done
done
