#!/usr/bin/env bash
# Runs the same L2 and L3 suites against a kind cluster, for people with Docker and kind
# (it cannot run on the machine that develops SocketFleet: no Docker there). It shares
# every step with `make test`'s L3: the same image archives (images/build.sh from the debug
# build), loaded with `kind load image-archive`; the same tests, told by SF_E2E_KUBECONFIG
# to use this cluster. The host reaches Services and pods through routes via the kind
# node's container address, as it does through the L3 node's namespace (needs root).
#   e2e/kind.sh            create a cluster, run the tests, delete the cluster
#   KEEP=1 e2e/kind.sh     keep the cluster afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
name=${KIND_CLUSTER:-socketfleet-e2e}
command -v kind >/dev/null || { echo "kind is not installed: https://kind.sigs.k8s.io" >&2; exit 1; }
cargo build --workspace
images/build.sh --bin target/debug --out target/e2e-images operator sidecar redis pause
kind create cluster --name "$name" --image "kindest/node:v1.34.0" --wait 120s
node_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$name-control-plane")
cleanup() {
  ip route del 10.96.0.0/16 via "$node_ip" 2>/dev/null || true
  ip route del 10.244.0.0/16 via "$node_ip" 2>/dev/null || true
  [[ -n ${KEEP:-} ]] || kind delete cluster --name "$name"
}
trap cleanup EXIT
for archive in target/e2e-images/*.tar; do kind load image-archive --name "$name" "$archive"; done
ip route add 10.96.0.0/16 via "$node_ip"
ip route add 10.244.0.0/16 via "$node_ip"
kubeconfig=$(mktemp)
kind get kubeconfig --name "$name" > "$kubeconfig"
SF_E2E_KUBECONFIG=$kubeconfig cargo test -p socketfleet-e2e -- --nocapture --test-threads=1
