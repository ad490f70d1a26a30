#!/usr/bin/env bash
# Installs the benchmark peers at pinned versions, outside the repository's tracked files:
#   - the Centrifugo peer: bench/peers/centrifuge (the centrifuge library, pinned in its
#     go.mod) built into ~/.cache/socketfleet-tools/centrifuge-peer-<version>/;
#   - the Node peers: `npm ci` in bench/peers/node (socket.io, the Redis streams adapter,
#     ws, ioredis, pinned by package-lock.json).
# Prints `CENTRIFUGE_PEER=<path>`. A warm cache makes this a no-op.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${SF_TOOLS_CACHE:-$HOME/.cache/socketfleet-tools}
dir=$root/bench/peers/centrifuge
version=$(cd "$dir" && go list -m -f '{{.Version}}' github.com/centrifugal/centrifuge)
# Keyed by the library version and the peer's own source, so an edit rebuilds it.
src=$(cat "$dir"/main.go "$dir"/go.mod "$dir"/go.sum | sha256sum | cut -c1-12)
out=$cache/centrifuge-peer-$version-$src/centrifuge-peer
if [[ ! -x $out ]]; then
  echo "bench-peers: building the centrifuge peer (centrifuge $version)" >&2
  mkdir -p "$(dirname "$out")"
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" .)
  mv "$out.tmp" "$out"
fi
if [[ ! -d $root/bench/peers/node/node_modules ]]; then
  echo "bench-peers: npm ci (bench/peers/node)" >&2
  # stdout is for the assignment the caller evals: npm's report goes to stderr.
  (cd "$root/bench/peers/node" && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
echo "CENTRIFUGE_PEER=$out"
