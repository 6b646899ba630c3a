#!/usr/bin/env bash
# Sets up what is missing (system packages, the real kubectl, the build, the demo image), starts
# `skiff server` on this machine, runs the demo Deployment (3 replicas of a busybox httpd page),
# fetches the page from a pod, and shows `skiff get all`. The server stays in the foreground;
# Ctrl-C deletes the demo and stops it.
#
# SKIFF_UP_CHECK=1 (scripts/test.sh sets it): the same run, on its own bridge, pod range, ports and
# data directory, ending after `skiff get all` and removing everything it made (the test that the
# README's first command works), which also checks that the binary matches the code-order list
# (scripts/check-code-order.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/agent-leftovers.sh
./scripts/install-deps.sh
kubectl=$(./scripts/fetch-kubectl.sh)
# Only the binary: built with the workspace's test support, its features and so its symbol names
# differ, and the code-order list (crates/skiff/build.rs) would not apply.
cargo build --release --locked -p skiff
skiff="${CARGO_TARGET_DIR:-target}/release/skiff"
data_dir="${SKIFF_DATA_DIR:-/var/lib/skiff}"
server_args=()
check="${SKIFF_UP_CHECK:-}"
if [ -n "$check" ]; then
  ./scripts/check-code-order.sh "$skiff"
  data_dir=$(mktemp -d /tmp/skiff-up-check.XXXXXX)
  bridge=skupck0 cluster_cidr=10.237.0.0/16
  server_args=(--port 0 --kubelet-port 0 --bridge "$bridge" --pod-cidr 10.237.0.0/24 --cluster-cidr "$cluster_cidr")
  blackhole_before=$(ip route show type blackhole "$cluster_cidr")
fi
for tag in v1 v2; do   # v2 is for the README's rolling update
  "$skiff" image import "$(./scripts/build-demo-image.sh "" "$tag")" --name "skiff.local/demo-web:$tag" --data-dir "$data_dir"
done
# Its own session: Ctrl-C reaches this script, whose trap deletes the demo before stopping the server.
setsid "$skiff" server --data-dir "$data_dir" "${server_args[@]}" &
server=$!
export KUBECONFIG="$data_dir/kubeconfig.yaml"
stop() {
  trap - EXIT INT TERM
  # The agent confirms each pod's deletion: wait for the pods before stopping the server.
  "$kubectl" delete -f examples/demo.yaml --ignore-not-found --wait=true --timeout=60s >/dev/null 2>&1 || true
  "$kubectl" wait --for=delete pod -l app=demo --timeout=60s >/dev/null 2>&1 || true
  kill "$server" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  [ -z "$check" ] || clean_check
}
# What a check run made on the machine: the bridge, the masquerade rules, the blackhole route (if it
# added it), mounts and runc state under its data directory.
clean_check() {
  remove_agent_leftovers "$data_dir" "$data_dir/agent/runc" "$bridge" "$cluster_cidr" "$blackhole_before"
  rm -rf "$data_dir"
}
trap stop EXIT INT TERM
for _ in $(seq 1 100); do
  [ -f "$KUBECONFIG" ] && "$kubectl" get --raw /readyz >/dev/null 2>&1 && break
  sleep 0.1
done
"$kubectl" apply -f examples/demo.yaml
"$kubectl" rollout status deployment/demo --timeout=120s
ip=$("$kubectl" get pods -l app=demo -o jsonpath='{.items[0].status.podIP}')
echo "--- http://$ip:8080/ (a demo pod) ---"
python3 -c "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen('http://$ip:8080/', timeout=5).read().decode())"
echo "---"
"$skiff" get all
if [ -n "$check" ]; then
  echo "up.sh check: the demo served its page; stopping and cleaning up"
  exit 0
fi
echo
echo "skiff server is running (pid $server). In another shell:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  $kubectl get all        # or: $skiff get all"
wait "$server"
