#!/usr/bin/env bash
# A real Kubernetes control plane on loopback (level L2): etcd, kube-apiserver (RBAC and
# Node authorization, the default admission plugins, service-account token signing, a
# CA made here), kube-controller-manager and kube-scheduler, all built from their pinned Go
# modules (e2e/tools). Without a node pods stay Pending, everything else really runs; with
# `--node` (level L3, e2e/node.sh) a real node in a network namespace runs them, and the
# API server listens on the host's end of that namespace's link instead of loopback.
#
#   e2e/control-plane.sh up [DIR] [--node]  start, wait for /readyz (and the node's Ready),
#                                           print `export KUBECONFIG=...`
#   e2e/control-plane.sh down [DIR]         stop everything started in DIR and remove it
#
# DIR defaults to /tmp/socketfleet-e2e. Ports are free ports chosen at start. With --node,
# SF_E2E_IMAGES names a folder of image archives (images/build.sh) to import into the node.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-}
dir=${2:-/tmp/socketfleet-e2e}
with_node=""
[ "${3:-}" = --node ] && with_node=1
api_host=127.0.0.1
# shellcheck source=e2e/node.sh
. "$here/node.sh"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

down() {
  if [[ -d $dir ]]; then
    node_down
    for pidfile in "$dir"/*.pid; do
      [[ -e $pidfile ]] || continue
      kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    for pidfile in "$dir"/*.pid; do
      [[ -e $pidfile ]] || continue
      pid=$(cat "$pidfile")
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
  fi
}

# A key and a certificate signed by the CA: cert NAME CN ORG [SANS]
cert() {
  local name=$1 cn=$2 org=$3 sans=${4:-}
  openssl genrsa -out "$dir/pki/$name.key" 2048 2>/dev/null
  local subj="/CN=$cn"
  [[ -n $org ]] && subj="/O=$org$subj"
  openssl req -new -key "$dir/pki/$name.key" -subj "$subj" -out "$dir/pki/$name.csr" 2>/dev/null
  local ext="$dir/pki/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [[ -n $sans ]] && echo "subjectAltName=$sans"
  } > "$ext"
  openssl x509 -req -in "$dir/pki/$name.csr" -CA "$dir/pki/ca.crt" -CAkey "$dir/pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$ext" -out "$dir/pki/$name.crt" 2>/dev/null
}

# A kubeconfig with client certificate NAME: kubeconfig NAME
kubeconfig() {
  local name=$1
  cat > "$dir/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    certificate-authority: $dir/pki/ca.crt
    server: https://$api_host:$api_port
users:
- name: $name
  user:
    client-certificate: $dir/pki/$name.crt
    client-key: $dir/pki/$name.key
contexts:
- name: e2e
  context: {cluster: e2e, user: $name}
current-context: e2e
EOF
}

start() {
  local name=$1; shift
  "$@" > "$dir/$name.log" 2>&1 &
  echo $! > "$dir/$name.pid"
}

up() {
  for tool in etcd kube-apiserver kube-controller-manager kube-scheduler; do
    printf -v "bin_${tool//-/_}" '%s' "$("$here/tools/build.sh" "$tool")"
  done
  down
  mkdir -p "$dir/pki" "$dir/etcd"
  if [[ -n $with_node ]]; then
    node_net
    api_host=$node_host_ip
  fi
  api_port=$(free_port); etcd_port=$(free_port); etcd_peer=$(free_port)
  echo "$api_port" > "$dir/api.port"

  openssl genrsa -out "$dir/pki/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$dir/pki/ca.key" -subj "/CN=socketfleet-e2e-ca" -days 2 -out "$dir/pki/ca.crt" 2>/dev/null
  openssl genrsa -out "$dir/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/pki/sa.key" -pubout -out "$dir/pki/sa.pub" 2>/dev/null
  cert apiserver kube-apiserver "" "IP:127.0.0.1,IP:$api_host,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin admin system:masters
  cert controller-manager system:kube-controller-manager ""
  cert scheduler system:kube-scheduler ""
  for n in admin controller-manager scheduler; do kubeconfig "$n"; done
  cat > "$dir/audit-policy.yaml" <<'EOF'
# Every write request, with who made it: the e2e tests count the operator's.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
EOF

  start etcd "$bin_etcd" --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" --initial-cluster "default=http://127.0.0.1:$etcd_peer" \
    --unsafe-no-fsync --quota-backend-bytes 1073741824
  start kube-apiserver "$bin_kube_apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$api_host" --advertise-address "$api_host" --secure-port "$api_port" \
    --kubelet-client-certificate "$dir/pki/admin.crt" --kubelet-client-key "$dir/pki/admin.key" --kubelet-preferred-address-types InternalIP \
    --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$dir/pki/sa.pub" --service-account-signing-key-file "$dir/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true \
    --audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$dir/audit.log" --audit-log-maxsize 200
  local readyz=""
  for _ in $(seq 1 300); do
    if curl -sf --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" \
      "https://$api_host:$api_port/readyz" >/dev/null 2>&1; then readyz=ok; break; fi
    sleep 0.2
  done
  if [[ -z $readyz ]]; then
    echo "kube-apiserver did not become ready; its log:" >&2; tail -30 "$dir/kube-apiserver.log" >&2; exit 1
  fi
  start kube-controller-manager "$bin_kube_controller_manager" --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --service-account-private-key-file "$dir/pki/sa.key" --root-ca-file "$dir/pki/ca.crt" \
    --cluster-signing-cert-file "$dir/pki/ca.crt" --cluster-signing-key-file "$dir/pki/ca.key" \
    --use-service-account-credentials=true --leader-elect=false --bind-address 127.0.0.1 --secure-port "$(free_port)" \
    --controllers '*'
  start kube-scheduler "$bin_kube_scheduler" --kubeconfig "$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/scheduler.kubeconfig" --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port "$(free_port)"
  # Ready when the controller manager has created the default ServiceAccount.
  for _ in $(seq 1 300); do
    KUBECONFIG="$dir/admin.kubeconfig" kubectl get serviceaccount default -n default >/dev/null 2>&1 && break
    sleep 0.2
  done
  [[ -n $with_node ]] && node_up
  echo "control plane up in $dir (API https://$api_host:$api_port)" >&2
  echo "export KUBECONFIG=$dir/admin.kubeconfig"
}

case "$cmd" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up [DIR] [--node] | down [DIR]" >&2; exit 64 ;;
esac
