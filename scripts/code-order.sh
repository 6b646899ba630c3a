#!/usr/bin/env bash
# Writes crates/skiff/code-order.txt: the functions `skiff server` and `skiff agent` run from start
# to rest. The release build links them first in .text (crates/skiff/build.rs), so
# the code a process touches sits together and the kernel maps fewer pages of the binary (each
# page touched maps the 64 KiB around it). A maintainer's tool, run as root after changes that
# move a lot of code; a stale list only costs memory, never correctness.
#
# How: the release binary runs under valgrind's callgrind (`--demangle=no`, so the names are the
# linker's): a `skiff server --no-agent` on a fresh data directory and a `skiff agent` registered
# with it (its own bridge and ranges, no pods), both for CODE_ORDER_SECONDS (default 45) after the
# node is Ready, then both stopped with SIGTERM; then a `skiff server` with its own node agent (which
# reaches the API in memory, not over TLS) the same way. Every function any of them executed is listed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/agent-leftovers.sh
command -v valgrind >/dev/null || { echo "code-order.sh needs valgrind (apt-get install valgrind)" >&2; exit 1; }
seconds="${CODE_ORDER_SECONDS:-45}"
target="${CARGO_TARGET_DIR:-target}"
# Built without the current list, so the profile does not depend on it (names do not either).
SKIFF_CODE_ORDER=off cargo build --release --locked -p skiff
kubectl=$(./scripts/fetch-kubectl.sh)
skiff="$target/release/skiff"
work=$(mktemp -d /tmp/skiff-code-order.XXXXXX)
bridge=skorder0 cluster_cidr=10.236.0.0/16 pod_cidr=10.236.1.0/24
blackhole_before=$(ip route show type blackhole "$cluster_cidr")
server="" agent="" embedded=""
stop() {
  for pid in "$@"; do
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
cleanup() {
  stop $agent $server $embedded
  remove_agent_leftovers "$work" "$work/agent/runc" "$bridge" "$cluster_cidr" "$blackhole_before"
  remove_agent_leftovers "$work" "$work/embedded/agent/runc" "$bridge" "$cluster_cidr" "$blackhole_before"
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
grind() { exec valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/$1.callgrind" "${@:2}"; }

mkdir -p "$work/server"
grind server "$skiff" server --no-agent --port 0 --bind 127.0.0.1 --data-dir "$work/server" \
  >"$work/server.out" 2>"$work/server.log" &
server=$!
for _ in $(seq 1 1200); do grep -q "^kubeconfig: " "$work/server.out" && break; sleep 0.1; done
grep -q "^kubeconfig: " "$work/server.out" || { cat "$work/server.log" >&2; exit 1; }
export KUBECONFIG="$work/server/kubeconfig.yaml"
grind agent "$skiff" agent --kubeconfig "$KUBECONFIG" --node-name code-order --data-dir "$work/agent" \
  --pod-cidr "$pod_cidr" --cluster-cidr "$cluster_cidr" --bridge "$bridge" --kubelet-port 0 \
  >/dev/null 2>"$work/agent.log" &
agent=$!
# wait_ready NODE LOG: until NODE is Ready (LOG is shown if it never is).
wait_ready() {
  local ready=""
  for _ in $(seq 1 1200); do
    ready=$("$kubectl" get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
    [ "$ready" = True ] && break
    sleep 0.1
  done
  [ "$ready" = True ] || { echo "node $1 did not become Ready" >&2; cat "$2" >&2; exit 1; }
}
wait_ready code-order "$work/agent.log"
echo "node Ready under valgrind; at rest for $seconds s" >&2
sleep "$seconds"
for pid in $agent $server; do
  kill "$pid"
  wait "$pid" || true
done
agent="" server=""

# The server with its own agent: the node is named after the machine.
mkdir -p "$work/embedded"
grind embedded "$skiff" server --port 0 --bind 127.0.0.1 --data-dir "$work/embedded" \
  --pod-cidr "$pod_cidr" --cluster-cidr "$cluster_cidr" --bridge "$bridge" --kubelet-port 0 \
  >"$work/embedded.out" 2>"$work/embedded.log" &
embedded=$!
for _ in $(seq 1 1200); do grep -q "^kubeconfig: " "$work/embedded.out" && break; sleep 0.1; done
grep -q "^kubeconfig: " "$work/embedded.out" || { cat "$work/embedded.log" >&2; exit 1; }
export KUBECONFIG="$work/embedded/kubeconfig.yaml"
wait_ready "$(hostname)" "$work/embedded.log"
echo "the server's own node Ready under valgrind; at rest for $seconds s" >&2
sleep "$seconds"
kill "$embedded"
wait "$embedded" || true
embedded=""

# Each function's own instruction count (callgrind's cost lines after `fn=`, except the inclusive
# cost line that follows each `calls=`); functions only seen as callees count as executed too.
# Ordered in five groups, each hottest first: (0) only the standalone agent (its TLS client, the
# kubeconfig), (1) both agents but not the server, (2) agent and server, (3) the server but not
# the standalone agent, (4) only the server with its agent (the in-memory client). What each of
# the three processes runs is then one contiguous stretch of the binary (0-2, 2-3, 1-4).
awk '
  function name(s,   id, rest) {
    if (match(s, /^\([0-9]+\)/)) {
      id = substr(s, 2, RLENGTH - 2); rest = substr(s, RLENGTH + 2)
      if (rest != "") names[FILENAME, id] = rest
      return names[FILENAME, id]
    }
    return s
  }
  function seen(fn) {
    if (FILENAME ~ /\/agent\.callgrind$/) agent[fn] = 1
    else if (FILENAME ~ /\/server\.callgrind$/) server[fn] = 1
    else embedded[fn] = 1
    if (!(fn in cost)) cost[fn] = 0
  }
  function group(fn) {
    if (fn in agent) return (fn in server) ? 2 : ((fn in embedded) ? 1 : 0)
    return (fn in server) ? 3 : 4
  }
  /^fn=/  { f = name(substr($0, 4)); seen(f); skip = 0; next }
  /^cfn=/ { seen(name(substr($0, 5))); next }
  /^calls=/ { skip = 1; next }
  /^[0-9+*-]/ { if (skip) { skip = 0; next } if (f != "") cost[f] += $2; next }
  END {
    # Mangled Rust names and C names (SQLite, mimalloc, ring: built with one section per function,
    # or one per assembly file), as the linker spells them; not the labels valgrind makes up.
    for (f in cost) if (f ~ /^[A-Za-z_][A-Za-z0-9_.$]*$/) print group(f), cost[f], f
  }
' "$work/agent.callgrind" "$work/server.callgrind" "$work/embedded.callgrind" | sort -k1,1n -k2,2nr -k3 | cut -d' ' -f3 >"$work/order.txt"
{
  echo "# Functions skiff agent, skiff server --no-agent and skiff server run from start to rest (in"
  echo "# five groups, see the script; hottest first): written by scripts/code-order.sh, linked first by"
  echo "# crates/skiff/build.rs."
  cat "$work/order.txt"
} >crates/skiff/code-order.txt
echo "crates/skiff/code-order.txt: $(wc -l <"$work/order.txt") functions" >&2
