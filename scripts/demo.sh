#!/usr/bin/env bash
# `make demo`: a local fleet on this machine. A 6-node Redis Cluster (real redis-server
# processes), three sidecars, and a chat page that connects each browser tab to a different
# sidecar, so messages visibly cross pods through Redis. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in redis-server redis-cli curl python3; do
  command -v "$tool" >/dev/null || { echo "demo: $tool is missing; run 'make deps' (or 'make demo', which runs it)"; exit 1; }
done
DEMO_PORT=${DEMO_PORT:-8000}
if ! python3 -c "import socket; socket.socket().bind(('127.0.0.1', $DEMO_PORT))" 2>/dev/null; then
  echo "demo: port $DEMO_PORT is busy; run with DEMO_PORT=<another port> make demo"; exit 1
fi
source scripts/local-lib.sh

echo "starting a 6-node Redis Cluster..."
start_cluster
urls=()
for i in 0 1 2; do
  start_sidecar "sidecar-$i" cluster "$SF_CLUSTER_ADDRS"
  urls+=("ws://127.0.0.1:$SC_WS/ws")
  echo "  sidecar-$i  ws://127.0.0.1:$SC_WS/ws   admin http://127.0.0.1:$SC_ADMIN/metrics   app API http://127.0.0.1:$SC_API/publish"
done
mkdir -p "$SF_WORK/www"
cp demo/index.html "$SF_WORK/www/"
printf 'window.SIDECARS = %s;\n' "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${urls[@]}")" > "$SF_WORK/www/sidecars.js"
(cd "$SF_WORK/www" && exec python3 -m http.server "$DEMO_PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
SF_PIDS+=($!)
cat <<MSG

SocketFleet is running: Redis Cluster ($SF_CLUSTER_ADDRS), 3 sidecars.
  Open http://127.0.0.1:$DEMO_PORT/ in two browser tabs: each tab picks a different sidecar,
  and messages, presence and "typing" cross between them through Redis.
  Publish from the server side:
    curl -s -XPOST http://127.0.0.1:$SC_API/publish -d '{"channel":"chat:lobby","data":{"user":"server","text":"hello"}}'
Press Ctrl-C to stop everything.
MSG
trap 'echo; echo "stopping..."; exit 0' INT TERM
while sleep 3600; do :; done
