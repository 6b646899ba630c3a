#!/usr/bin/env bash
# Installs the system packages Skiff needs to build, run and test, on Debian. Idempotent: installs only
# what is missing. Run as root (CI runs it as root).
set -euo pipefail
packages=(
  ca-certificates   # TLS roots for npm (kubectl download)
  gcc               # the C parts of crates: ring, the bundled SQLite
  binutils          # nm: scripts/check-code-order.sh (gcc brings it too)
  python3           # unpacks the kubectl layer zip
  iproute2          # network namespaces for the node agent and test hosts
  runc              # OCI runtime the node agent drives (skiff-runtime)
  containernetworking-plugins  # CNI bridge, host-local, loopback, portmap (pod networking)
  iptables          # the agent's masquerade rules and the CNI portmap plugin
  busybox-static    # the tiny test image skiff-runtime's tests build
  docker-registry   # a real OCI registry for skiff-runtime's pull tests
  skopeo            # pushes the test image to that registry
  protobuf-compiler # protoc, run by etcd-client's build script (skiff-store's etcd backend)
  libprotobuf-dev   # the well-known .proto includes protoc needs for etcd-client
  etcd-server       # /usr/bin/etcd: the etcd backend's tests start a real etcd
  podman            # the benchmarks' peer (skiff-bench: podman kube play, with runc)
  catatonit         # podman's pause process for kube play pods
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v npm >/dev/null || { echo "npm is required to fetch kubectl (it comes with this machine kind's Node.js)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "cargo (Rust 1.95) is required" >&2; exit 1; }
