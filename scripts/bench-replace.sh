#!/usr/bin/env bash
# Rolling replacement, run by the load generator during the rolling scenario: for each
# instance recorded in DIR (<i>.cmd: how it was started, <i>.pid, <i>.ready: its readiness
# URL) in turn, SIGTERM it, wait for it to exit (at most 60 s), start it again with the
# same command, and wait until it is ready (at most 30 s). Usage: bench-replace.sh DIR
set -euo pipefail
dir=${1:?usage: bench-replace.sh DIR}
for cmd in "$dir"/*.cmd; do
  i=${cmd%.cmd}
  pid=$(cat "$i.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  bash "$cmd" >>"$i.log" 2>&1 < /dev/null &
  echo $! > "$i.pid"
  for _ in $(seq 1 300); do curl -sf "$(cat "$i.ready")" >/dev/null 2>&1 && break; sleep 0.1; done
done
