# The L3 node: a real Kubernetes node in a network namespace this harness creates, sourced
# by e2e/control-plane.sh (`up DIR --node`). It defines functions only.
#
# Layout (addresses are private to this machine and exist only while the node does):
#   host   veth $node_veth  10.250.0.1/30   kube-apiserver binds here; routes to the pod and
#                                          Service ranges go through the node
#   node   netns $node_ns  eth0 10.250.0.2/30, and inside it, in its own mount and PID
#          namespaces (so nothing outlives `down`, and no mount or socket leaks onto the
#          host): containerd (Debian's, with runc and the CNI plugins in /usr/lib/cni),
#          kubelet, kube-proxy (iptables mode) and CoreDNS on 10.250.0.2:53 (cluster DNS,
#          the Kubernetes plugin, no upstream: nothing outside the cluster is resolved)
#   pods   bridge cni0 10.244.0.0/24, masqueraded
# One node at a time per machine: the addresses are fixed, and a second `up` says which
# namespace holds them.
# Facts of this machine the settings follow: cgroup v1 (cgroupfs driver), containerd needs
# `restrict_oom_score_adj` (the VM's own limits), no ipvs (iptables mode).

node_host_ip=10.250.0.1
node_ip=10.250.0.2
node_name=sf-node
pod_cidr=10.244.0.0/24
service_cidr=10.96.0.0/16

# Creates the namespace and the link; the control plane then binds $node_host_ip.
node_net() {
  if [ -n "$(ip route show "$pod_cidr")" ]; then
    echo "node.sh: $pod_cidr is already routed ($(ip route show "$pod_cidr")): another L3 node runs" \
      "(namespaces: $(ip netns list | grep -o 'sf-node-[0-9]*' | tr '\n' ' ')); stop it with e2e/control-plane.sh down <its dir>" >&2
    return 1
  fi
  node_ns=sf-node-$$
  node_veth=sfveth$$
  echo "node_ns=$node_ns node_veth=$node_veth" > "$dir/node.env"
  ip netns add "$node_ns"
  ip link add "$node_veth" type veth peer name eth0 netns "$node_ns"
  ip addr add "$node_host_ip/30" dev "$node_veth"
  ip link set "$node_veth" up
  ip -n "$node_ns" addr add "$node_ip/30" dev eth0
  ip -n "$node_ns" link set eth0 up
  ip -n "$node_ns" link set lo up
  ip -n "$node_ns" route add default via "$node_host_ip"
  ip route add "$pod_cidr" via "$node_ip"
  ip route add "$service_cidr" via "$node_ip"
  ip netns exec "$node_ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.route_localnet=1
}

# The node's configuration files, under $dir/node.
node_files() {
  local n=$dir/node
  mkdir -p "$n"/{cni,ipam,kubelet,pod-logs,containerd}
  cert kubelet "system:node:$node_name" system:nodes "IP:$node_ip,DNS:$node_name"
  cert kube-proxy system:kube-proxy ""
  for name in kubelet kube-proxy; do kubeconfig "$name"; done
  cat > "$n/containerd.toml" <<EOF
version = 2
root = "$n/containerd/root"
state = "$n/containerd/state"
[grpc]
  address = "$n/containerd.sock"
[ttrpc]
  address = "$n/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$n/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/socketfleet/pause:$version"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$n/cni"
EOF
  cat > "$n/cni/10-socketfleet.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "socketfleet-e2e", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$n/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
EOF
  echo "nameserver $node_ip" > "$n/resolv.conf"
  cat > "$n/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
address: $node_ip
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
clusterDNS: [$node_ip]
clusterDomain: cluster.local
resolvConf: $n/resolv.conf
podLogsDir: $n/pod-logs
containerRuntimeEndpoint: unix://$n/containerd.sock
serializeImagePulls: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: AlwaysAllow}
tlsCertFile: $dir/pki/kubelet.crt
tlsPrivateKeyFile: $dir/pki/kubelet.key
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
EOF
  cat > "$n/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $dir/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $pod_cidr
hostnameOverride: $node_name
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0}
iptables: {masqueradeAll: true}
EOF
  cat > "$n/Corefile" <<EOF
.:53 {
  bind $node_ip
  errors
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $dir/admin.kubeconfig e2e
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
  }
  cache 5
}
EOF
  # What runs as the namespaces' first process: private mounts over the host paths the
  # node would otherwise write (the runtime's shim sockets, network namespaces, IPAM),
  # then every daemon; when it exits, the kernel ends everything in its PID namespace.
  cat > "$n/init.sh" <<EOF
set -eu
for d in /run/containerd /run/netns /var/lib/cni /var/run/calico /var/lib/kubelet; do mkdir -p \$d; mount -t tmpfs tmpfs \$d; done
containerd --config $n/containerd.toml > $dir/containerd.log 2>&1 &
for _ in \$(seq 1 100); do [ -S $n/containerd.sock ] && break; sleep 0.1; done
$bin_kubelet --config $n/kubelet.yaml --kubeconfig $dir/kubelet.kubeconfig --root-dir $n/kubelet \\
  --hostname-override $node_name --node-ip $node_ip --v=1 > $dir/kubelet.log 2>&1 &
$bin_kube_proxy --config $n/kube-proxy.yaml > $dir/kube-proxy.log 2>&1 &
$bin_coredns -conf $n/Corefile > $dir/coredns.log 2>&1 &
# One daemon gone is the node gone: exiting ends the rest.
wait -n
echo "a node daemon exited; stopping the node" >&2
EOF
}

# Starts the node and waits until it is Ready with the images imported.
node_up() {
  for tool in kubelet kube-proxy coredns; do
    printf -v "bin_${tool//-/_}" '%s' "$("$here/tools/build.sh" "$tool")"
  done
  version=$(awk -F'"' '/^version *=/ {print $2; exit}' "$here/../Cargo.toml")
  node_files
  # nsenter, not `ip netns exec`: that remounts /sys for the namespace, which hides the
  # cgroup hierarchies the kubelet needs.
  nsenter --net="/run/netns/$node_ns" unshare --mount --propagation private --pid --fork --kill-child --mount-proc \
    bash "$dir/node/init.sh" > "$dir/node-init.log" 2>&1 &
  echo $! > "$dir/node.pid"
  local ok=""
  for _ in $(seq 1 600); do
    if [ "$(KUBECONFIG="$dir/admin.kubeconfig" kubectl get node "$node_name" \
      -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; then ok=1; break; fi
    kill -0 "$(cat "$dir/node.pid")" 2>/dev/null || break
    sleep 0.2
  done
  if [ -z "$ok" ]; then
    echo "node $node_name did not become Ready; kubelet's log:" >&2; tail -30 "$dir/kubelet.log" >&2; return 1
  fi
  node_import "${SF_E2E_IMAGES:-}"
  echo "node $node_name Ready (netns $node_ns, $node_ip)" >&2
}

# Imports every image archive in DIR (images/build.sh's output) into the node's runtime.
node_import() {
  local images=$1 archive
  [ -n "$images" ] || return 0
  for archive in "$images"/*.tar; do
    ctr --address "$dir/node/containerd.sock" -n k8s.io images import --no-unpack=false "$archive" >/dev/null
  done
}

# Stops the node (its PID namespace ends every process in it) and removes its network.
node_down() {
  [ -f "$dir/node.env" ] || return 0
  # shellcheck disable=SC1091
  . "$dir/node.env"
  if [ -f "$dir/node.pid" ]; then
    local pid; pid=$(cat "$dir/node.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # The kubelet's cgroups (cgroupfs driver) outlive their processes: remove them, leaves first.
  local c
  for c in /sys/fs/cgroup/*/kubepods; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  ip route del "$pod_cidr" via "$node_ip" 2>/dev/null || true
  ip route del "$service_cidr" via "$node_ip" 2>/dev/null || true
  ip link del "$node_veth" 2>/dev/null || true
  ip netns del "$node_ns" 2>/dev/null || true
  rm -f "$dir/node.env"
}
