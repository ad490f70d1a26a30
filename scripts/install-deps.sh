#!/usr/bin/env bash
# Installs what `make test` needs and the machine lacks; with --demo, only what `make demo`
# uses (Redis and the client bundle's npm packages: no Go tools, no browser, no node
# runtime). Idempotent: a machine that has everything runs no package manager at all.
set -euo pipefail
demo=false
[ "${1:-}" = "--demo" ] && demo=true

# Debian packages named in `need`, when there are any.
install_packages() {
  if [ ${#need[@]} -gt 0 ]; then
    echo "install-deps: installing ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# The TypeScript client's build and test tools, pinned by package-lock.json.
install_client_packages() {
  if [ ! -d "$(dirname "$0")/../clients/typescript/node_modules" ]; then
    echo "install-deps: npm ci (clients/typescript)"
    (cd "$(dirname "$0")/../clients/typescript" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

need=()
command -v redis-server   >/dev/null 2>&1 || need+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
command -v redis-cli      >/dev/null 2>&1 || need+=(redis-tools)
if $demo; then
  install_packages
  install_client_packages
  exit 0
fi
command -v curl           >/dev/null 2>&1 || need+=(curl)
command -v openssl        >/dev/null 2>&1 || need+=(openssl)   # the e2e control plane's CA
command -v chromium       >/dev/null 2>&1 || need+=(chromium)  # the browser tests (never a downloaded browser)
# The L3 node (e2e/node.sh) and the images it runs (images/build.sh).
command -v containerd     >/dev/null 2>&1 || need+=(containerd)
command -v runc           >/dev/null 2>&1 || need+=(runc)
[ -x /usr/lib/cni/bridge ]               || need+=(containernetworking-plugins)
command -v iptables       >/dev/null 2>&1 || need+=(iptables)
command -v conntrack      >/dev/null 2>&1 || need+=(conntrack)
command -v umoci          >/dev/null 2>&1 || need+=(umoci)
command -v skopeo         >/dev/null 2>&1 || need+=(skopeo)

install_packages

# The interop test drives the sidecar with Python's `websockets`, a client nobody here
# wrote. Installed for the python3 on PATH (which may not be Debian's), pinned.
if ! python3 -c 'import websockets' >/dev/null 2>&1; then
  echo "install-deps: installing python websockets"
  python3 -m pip install --quiet --disable-pip-version-check 'websockets==13.1'
fi

# The Debian package starts a system redis on :6379; tests use their own ports, so it
# does no harm, but it is not needed either.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
  systemctl stop redis-server >/dev/null 2>&1 || true
fi
# Upstream tools (helm, etcd, the Kubernetes control plane) are built from their pinned Go
# modules into a cache outside the repository (a no-op when warm); Debian's Go is too old.
if ! command -v go >/dev/null 2>&1; then
  echo "install-deps: Go 1.24 or newer is needed to build the pinned tools (helm, the Kubernetes binaries, CoreDNS); install it and retry" >&2
  exit 1
fi
for tool in helm etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy coredns pause; do
  "$(dirname "$0")/../e2e/tools/build.sh" "$tool" >/dev/null
done

install_client_packages

echo "install-deps: redis $(redis-server --version | awk '{print $3}'), python websockets $(python3 -c 'import websockets; print(websockets.__version__)')"
