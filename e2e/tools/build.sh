#!/usr/bin/env bash
# Builds a pinned upstream tool from its Go module (versions in go.mod) into a cache
# outside the repository, keyed by version, and prints the binary's path. A warm cache
# makes this a no-op. Usage: e2e/tools/build.sh helm
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${SF_TOOLS_CACHE:-$HOME/.cache/socketfleet-tools}
tool=${1:?usage: build.sh <tool>}

case "$tool" in
  helm) module=helm.sh/helm/v3; package=helm.sh/helm/v3/cmd/helm ;;
  etcd) module=go.etcd.io/etcd/server/v3; package=go.etcd.io/etcd/server/v3 ;;
  kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy)
    module=k8s.io/kubernetes; package=k8s.io/kubernetes/cmd/$tool ;;
  # In its own module (coredns/go.mod): its dependencies stay apart from Kubernetes'.
  coredns) module=github.com/coredns/coredns; package=github.com/coredns/coredns; here=$here/coredns ;;
  # Our own pod sandbox (pause/main.go), keyed by its source.
  pause) module=socketfleet.io/e2e/tools; package=./pause ;;
  *) echo "build.sh: unknown tool $tool (known: helm etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy coredns pause)" >&2; exit 64 ;;
esac

if [ "$tool" = pause ]; then
  version=src-$(sha256sum "$here/pause/main.go" | cut -c1-12)
else
  version=$(cd "$here" && go list -m -f '{{.Version}}' "$module")
fi
case "$module" in
  helm.sh/*) stamp="-X helm.sh/helm/v3/internal/version.version=$version" ;;
  k8s.io/kubernetes)
    minor=${version#v1.}; minor=${minor%%.*}
    stamp=""
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      stamp+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    done ;;
  *) stamp="" ;;
esac
out="$cache/$tool-$version/$tool"
if [[ ! -x $out ]]; then
  echo "building $tool $version from $module (cached in $cache)" >&2
  mkdir -p "$(dirname "$out")"
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $stamp" -o "$out.tmp" "$package")
  mv "$out.tmp" "$out"
fi
echo "$out"
