#!/usr/bin/env bash
# Server CPU per ConfigMap create, binaries alternating: each round starts every given `skiff`
# binary on a fresh data directory (`skiff server --no-controllers --no-agent` on 127.0.0.1:16443),
# warms it with 500 creates, then times 4,000 creates on one HTTPS keep-alive connection from a
# Python client and reads the server's CPU time (utime + stime) from /proc/PID/stat around them.
#
#   scripts/create-cpu.sh ROUNDS BIN [BIN...]
#
# SKIFF_SERVER_FLAGS replaces `--no-controllers --no-agent` (e.g. `--no-agent`: with the
# controllers, whose watches a create may wake).
# A maintainer's tool for comparing two builds (BENCHMARKS.md, "API creates"); needs python3.
set -euo pipefail
rounds=${1:?usage: create-cpu.sh ROUNDS BIN [BIN...]}
shift
[ $# -gt 0 ] || { echo "usage: create-cpu.sh ROUNDS BIN [BIN...]" >&2; exit 2; }
port=16443
work=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/load.py" <<'PY'
import http.client, json, ssl, sys, time
data, port, n, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=data + '/pki/ca.crt')
token = [l.split()[1] for l in open(data + '/kubeconfig.yaml') if 'token:' in l][0]
c = http.client.HTTPSConnection('127.0.0.1', port, context=ctx)
h = {'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json', 'Accept': 'application/json'}
c.request('POST', '/api/v1/namespaces', json.dumps({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'bench'}}), h)
c.getresponse().read()
lat = []
t0 = time.perf_counter()
for i in range(n):
    body = json.dumps({'apiVersion': 'v1', 'kind': 'ConfigMap',
        'metadata': {'name': '%s-%d' % (tag, i), 'namespace': 'bench', 'labels': {'bench': 'api'}},
        'data': {'greeting': 'hello from the benchmark', 'config.yaml': 'replicas: 3\nimage: demo-web:v1\n'}})
    t = time.perf_counter()
    c.request('POST', '/api/v1/namespaces/bench/configmaps', body, h)
    r = c.getresponse()
    r.read()
    lat.append(time.perf_counter() - t)
    if r.status != 201:
        sys.exit('create answered %d' % r.status)
took = time.perf_counter() - t0
lat.sort()
print('%d creates %.0f/s p50 %.3f ms p99 %.3f ms' % (n, n / took, lat[n // 2] * 1e3, lat[int(n * .99)] * 1e3))
PY

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
for round in $(seq "$rounds"); do
    for bin in "$@"; do
        rm -rf "$work/data"
        # shellcheck disable=SC2086 # the flags are words
        "$bin" server ${SKIFF_SERVER_FLAGS:---no-controllers --no-agent} --port "$port" --data-dir "$work/data" > "$work/server.log" 2>&1 &
        server=$!
        for _ in $(seq 100); do [ -s "$work/data/kubeconfig.yaml" ] && break; sleep 0.05; done
        sleep 0.5
        python3 "$work/load.py" "$work/data" "$port" 500 warm > /dev/null
        before=$(ticks "$server")
        out=$(python3 "$work/load.py" "$work/data" "$port" 4000 timed)
        after=$(ticks "$server")
        echo "$bin round $round: $out; server CPU $(( (after - before) * 1000000 / hz / 4000 )) us/create"
        kill "$server"
        wait "$server" 2>/dev/null || true
        server=
    done
done
