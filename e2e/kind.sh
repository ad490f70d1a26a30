#!/usr/bin/env bash
# Runs the same L2 suite against a kind cluster, for people with Docker and kind. The
# operator still runs as a local process with the chart ServiceAccount's token.
#   e2e/kind.sh            create a cluster, run the tests, delete the cluster
#   KEEP=1 e2e/kind.sh     keep the cluster afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
name=${KIND_CLUSTER:-socketfleet-e2e}
command -v kind >/dev/null || { echo "kind is not installed: https://kind.sigs.k8s.io" >&2; exit 1; }
kind create cluster --name "$name" --image "kindest/node:v1.34.0" --wait 120s
[[ -n ${KEEP:-} ]] || trap 'kind delete cluster --name "$name"' EXIT
kubeconfig=$(mktemp)
kind get kubeconfig --name "$name" > "$kubeconfig"
cargo build --workspace
SF_E2E_KUBECONFIG=$kubeconfig cargo test -p socketfleet-e2e -- --nocapture
