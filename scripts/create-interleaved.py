#!/usr/bin/env python3
"""One-connection ConfigMap creates against several `skiff` builds at once, interleaved.

    scripts/create-interleaved.py ROUNDS PER_TURN BIN [BIN...]

Starts every given binary as `skiff server --no-controllers --no-agent` (ports 17443, 17444, ...,
a fresh data directory each), opens one HTTPS keep-alive connection to each, then runs ROUNDS
rounds (after one warm-up round) in which each server in turn gets PER_TURN creates, one at a
time. Because the servers take turns within seconds of each other, a drift in the VM's speed hits
all of them alike; the ratios of paired turns are what compare the builds. Prints per build: the
median rate and every turn's rate, p50/p99 latency, the server's CPU (utime + stime) and context
switches (all its threads) per create; then each build's median ratio against the first.

A maintainer's tool for comparing builds (BENCHMARKS.md, "What limits"); the client is Python's
http.client, slower than the benchmark's, so rates are lower than `skiff-bench api-store`'s.

With SKIFF_BENCH=path/to/skiff-bench, each turn is instead a run of that binary's
`--creates-against` (the benchmark's clients): VIA=lean (the lean client, default) or kube, and
IN_FLIGHT=N requests at a time on as many connections (default 1). Latencies are then each
turn's p50 and p99, and the medians over turns are printed.
"""
import http.client
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HZ = os.sysconf('SC_CLK_TCK')


def cpu_ticks(pid):
    fields = open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])


def switches(pid):
    total = 0
    for tid in os.listdir('/proc/%d/task' % pid):
        try:
            for line in open('/proc/%d/task/%s/status' % (pid, tid)):
                if 'ctxt_switches' in line:
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass  # the thread ended
    return total


def connect(data, port):
    kubeconfig = data + '/kubeconfig.yaml'
    for _ in range(200):
        if os.path.exists(kubeconfig) and os.path.getsize(kubeconfig) > 0:
            break
        time.sleep(0.05)
    ctx = ssl.create_default_context(cafile=data + '/pki/ca.crt')
    token = [line.split()[1] for line in open(kubeconfig) if 'token:' in line][0]
    headers = {'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json',
               'Accept': 'application/json'}
    namespace = json.dumps({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'bench'}})
    for _ in range(100):
        conn = http.client.HTTPSConnection('127.0.0.1', port, context=ctx)
        try:
            conn.request('POST', '/api/v1/namespaces', namespace, headers)
            conn.getresponse().read()
            return conn, headers
        except OSError:
            time.sleep(0.1)
    sys.exit('server on port %d never answered' % port)


def bench_turn(bench, data, per_turn):
    """One turn by `skiff-bench --creates-against`: (rate, p50 s, p99 s)."""
    out = subprocess.run([bench, '--creates-against', data + '/kubeconfig.yaml', '--creates', str(per_turn),
                          '--creates-via', os.environ.get('VIA', 'lean'),
                          '--creates-in-flight', os.environ.get('IN_FLIGHT', '1')],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r'([\d.]+)/s, p50 ([\d.]+) ms, p99 ([\d.]+) ms', out)
    if not m:
        sys.exit('skiff-bench printed: %s' % out)
    return float(m.group(1)), float(m.group(2)) / 1e3, float(m.group(3)) / 1e3


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds, per_turn, bins = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    bench = os.environ.get('SKIFF_BENCH')
    work = tempfile.mkdtemp(prefix='skiff-interleaved-')
    servers = []
    try:
        for i, binary in enumerate(bins):
            data, port = '%s/data-%d' % (work, i), 17443 + i
            proc = subprocess.Popen([binary, 'server', '--no-controllers', '--no-agent', '--port', str(port),
                                     '--data-dir', data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            servers.append((proc, data, port))
        conns = [connect(data, port) for _, data, port in servers]
        rates, cpus, css, lats = ([[] for _ in bins] for _ in range(4))
        n = 0
        for r in range(-1, rounds):
            for i, (conn, headers) in enumerate(conns):
                pid = servers[i][0].pid
                t0, cpu0, cs0 = time.perf_counter(), cpu_ticks(pid), switches(pid)
                if bench:
                    rate, p50, p99 = bench_turn(bench, servers[i][1], per_turn)
                    if r >= 0:
                        rates[i].append(rate)
                        lats[i].append((p50, p99))
                        cpus[i].append((cpu_ticks(pid) - cpu0) / HZ / per_turn * 1e6)
                        css[i].append((switches(pid) - cs0) / per_turn)
                    continue
                for _ in range(per_turn):
                    n += 1
                    body = json.dumps({
                        'apiVersion': 'v1', 'kind': 'ConfigMap',
                        'metadata': {'name': 'c-%d' % n, 'namespace': 'bench', 'labels': {'bench': 'api'}},
                        'data': {'greeting': 'hello from the benchmark',
                                 'config.yaml': 'replicas: 3\nimage: demo-web:v1\n'}})
                    t = time.perf_counter()
                    conn.request('POST', '/api/v1/namespaces/bench/configmaps', body, headers)
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status != 201:
                        sys.exit('create answered %d' % resp.status)
                    if r >= 0:
                        lats[i].append(time.perf_counter() - t)
                if r >= 0:
                    rates[i].append(per_turn / (time.perf_counter() - t0))
                    cpus[i].append((cpu_ticks(pid) - cpu0) / HZ / per_turn * 1e6)
                    css[i].append((switches(pid) - cs0) / per_turn)
        for i, binary in enumerate(bins):
            if bench:
                p50, p99 = (statistics.median(t[k] for t in lats[i]) for k in (0, 1))
            else:
                lat = sorted(lats[i])
                p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
            print('%s: median %.0f creates/s (%s), p50 %.3f ms, p99 %.3f ms' % (
                binary, statistics.median(rates[i]), ' '.join('%.0f' % x for x in rates[i]),
                p50 * 1e3, p99 * 1e3))
            print('    server CPU per create median %.0f us (%s); context switches per create median %.2f' % (
                statistics.median(cpus[i]), ' '.join('%.0f' % x for x in cpus[i]), statistics.median(css[i])))
        for i in range(1, len(bins)):
            ratio = statistics.median(rates[i][k] / rates[0][k] for k in range(rounds))
            print('%s / %s: median ratio of paired turns %.3f' % (bins[i], bins[0], ratio))
    finally:
        for proc, _, _ in servers:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
