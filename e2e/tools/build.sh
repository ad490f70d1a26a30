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
  *) echo "build.sh: unknown tool $tool (known: helm)" >&2; exit 64 ;;
esac

version=$(cd "$here" && go list -m -f '{{.Version}}' "$module")
out="$cache/$tool-$version/$tool"
if [[ ! -x $out ]]; then
  echo "building $tool $version from $module (cached in $cache)" >&2
  mkdir -p "$(dirname "$out")"
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" -o "$out.tmp" "$package")
  mv "$out.tmp" "$out"
fi
echo "$out"
