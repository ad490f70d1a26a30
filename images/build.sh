#!/usr/bin/env bash
# `make images`: image archives of SocketFleet, built without a registry or a container
# engine. Each image is the program plus exactly the shared libraries `ldd` says it links
# (from this machine's Debian packages), a passwd entry for its non-root user and nothing
# else: no shell, no package manager. Debian's umoci assembles the OCI image and skopeo
# writes the archive, which `docker load`, `ctr -n k8s.io images import` and
# `kind load image-archive` all read.
#
#   images/build.sh [--bin DIR] [--out DIR] [IMAGE...]
#
# IMAGE is any of:
#   operator  socketfleet/operator:<version>  (the chart's default)
#   sidecar   socketfleet/sidecar:<version>   (the CRD's default)
#   redis     socketfleet/redis-debian:<redis version>: Debian's redis-server, redis-cli and
#             redis-sentinel with the few tools the operator's entrypoint script uses (sh,
#             hostname, mkdir, grep, cp, sleep), uid 999 like the official image. For tests on a
#             node that cannot pull; production keeps the official Redis image.
#   pause     socketfleet/pause:<version>: the pod sandbox of a node that cannot pull one
#             (e2e/tools/pause, a static Go program).
# Default: operator sidecar. --bin is where the release binaries are (target/release);
# --out is where archives go (target/images), one <image>.tar each. Prints each archive's
# path and image name.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
out=$root/target/images
images=()
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$(cd "$2" && pwd); shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    operator | sidecar | redis | pause) images+=("$1"); shift ;;
    *) echo "images/build.sh: unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=(operator sidecar)
for tool in umoci skopeo ldd strip; do
  command -v "$tool" >/dev/null || { echo "images/build.sh: $tool is missing (scripts/install-deps.sh images installs it)" >&2; exit 69; }
done
mkdir -p "$out"
version=$(awk -F'"' '/^version *=/ {print $2; exit}' "$root/Cargo.toml")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# copy_with_libs ROOTFS FILE [AS]: FILE at path AS (default: its own path) in ROOTFS, with
# every shared library it links at the path the dynamic loader looks for it.
copy_with_libs() {
  local rootfs=$1 file=$2 as=${3:-$2} lib
  install -D -m 0755 "$file" "$rootfs$as"
  # ldd prints "name => /path (addr)" and the loader as "/lib64/ld-linux-x86-64.so.2 (addr)".
  for lib in $(ldd "$file" 2>/dev/null | awk '/=> \// {print $3} /^\t\// {print $1}'); do
    [ -e "$rootfs$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  done
}

# base ROOTFS UID NAME: the files every image has: a passwd and group entry for its user
# (so tools that look the user up find one) and the CA bundle for TLS to Redis or an API.
base() {
  local rootfs=$1 uid=$2 name=$3
  mkdir -p "$rootfs/etc" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\n%s:x:%s:%s:%s:/nonexistent:/sbin/nologin\n' "$name" "$uid" "$uid" "$name" >"$rootfs/etc/passwd"
  printf 'root:x:0:\n%s:x:%s:\n' "$name" "$uid" >"$rootfs/etc/group"
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  fi
}

# pack NAME ROOTFS UID ENTRYPOINT... : the archive $out/NAME.tar of image $IMAGE_REF.
pack() {
  local name=$1 rootfs=$2 uid=$3; shift 3
  local layout=$work/$name-oci entrypoint=() arg
  for arg in "$@"; do entrypoint+=(--config.entrypoint "$arg"); done
  umoci init --layout "$layout"
  umoci new --image "$layout:build"
  # umoci's bundle format: the layer is the difference between rootfs and the empty image.
  umoci unpack --image "$layout:build" "$work/$name-bundle" >/dev/null
  cp -a "$rootfs/." "$work/$name-bundle/rootfs/"
  umoci repack --image "$layout:build" "$work/$name-bundle"
  umoci config --image "$layout:build" --os linux --architecture amd64 \
    --config.user "$uid:$uid" --config.workingdir / \
    --config.env PATH=/usr/local/bin:/usr/bin:/bin "${entrypoint[@]}" \
    --author "SocketFleet images/build.sh" --tag "$name"
  rm -f "$out/$name.tar"
  skopeo copy --quiet "oci:$layout:$name" "docker-archive:$out/$name.tar:$IMAGE_REF"
  echo "$out/$name.tar $IMAGE_REF"
}

for image in "${images[@]}"; do
  rootfs=$work/$image-rootfs
  case $image in
    operator | sidecar)
      program=$bin/socketfleet-$image
      [ -x "$program" ] || { echo "images/build.sh: $program is missing: cargo build --release -p socketfleet-$image (make images does)" >&2; exit 66; }
      base "$rootfs" 65532 nonroot
      copy_with_libs "$rootfs" "$program" "/usr/local/bin/socketfleet-$image"
      # Debug info stays with the build (a debug build's is ten times the program).
      strip --strip-debug "$rootfs/usr/local/bin/socketfleet-$image"
      IMAGE_REF=socketfleet/$image:$version
      pack "$image" "$rootfs" 65532 "/usr/local/bin/socketfleet-$image"
      ;;
    redis)
      command -v redis-server >/dev/null || { echo "images/build.sh: redis-server is missing (apt-get install redis-server redis-sentinel)" >&2; exit 69; }
      base "$rootfs" 999 redis
      for f in /usr/bin/redis-server /usr/bin/redis-check-rdb /usr/bin/redis-cli /bin/sh /bin/hostname /bin/mkdir /bin/grep /bin/cp /bin/cat /bin/sleep; do
        copy_with_libs "$rootfs" "$(readlink -f "$f")" "$f"
      done
      # Debian's redis-sentinel is redis-check-rdb under another name, as upstream's is.
      ln -sf redis-check-rdb "$rootfs/usr/bin/redis-sentinel"
      mkdir -p "$rootfs/data" "$rootfs/etc/redis"
      chown 999:999 "$rootfs/data"
      IMAGE_REF=socketfleet/redis-debian:$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')
      pack redis "$rootfs" 999 /usr/bin/redis-server
      ;;
    pause)
      base "$rootfs" 65535 pause
      pause_bin=$("$root/e2e/tools/build.sh" pause)
      install -D -m 0755 "$pause_bin" "$rootfs/pause"
      IMAGE_REF=socketfleet/pause:$version
      pack pause "$rootfs" 65535 /pause
      ;;
  esac
done
