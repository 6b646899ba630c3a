#!/usr/bin/env bash
# Sets up what is missing, builds Skiff, starts `skiff server` on this machine, applies the demo
# Deployment and shows `kubectl get all`. The server keeps running in the foreground (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
kubectl=$(./scripts/fetch-kubectl.sh)
cargo build --release --locked
data_dir="${SKIFF_DATA_DIR:-/var/lib/skiff}"
./target/release/skiff server --data-dir "$data_dir" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT INT TERM
export KUBECONFIG="$data_dir/kubeconfig.yaml"
for _ in $(seq 1 100); do
  [ -f "$KUBECONFIG" ] && "$kubectl" get --raw /readyz >/dev/null 2>&1 && break
  sleep 0.1
done
"$kubectl" apply -f examples/demo.yaml
"$kubectl" get all
echo
echo "skiff server is running (pid $server). In another shell:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  $kubectl get all"
wait "$server"
