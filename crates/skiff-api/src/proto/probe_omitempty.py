#!/usr/bin/env python3
"""Measures, with the real kubectl, which scalar fields Go leaves out of JSON when they are zero.

gogo-protobuf writes every non-pointer field, so a zero number, `false` or `""` on the wire is either a
pointer field set to zero (Go's JSON keeps it: `replicas: 0`, `hostPath.type: ""`), a field without
`omitempty` (kept: `containerPort: 0`, `httpHeaders[].value: ""`) or a non-pointer `omitempty` field
(dropped: `paused: false`, `imagePullPolicy: ""`). Neither k8s-pb nor the OpenAPI schemas say which;
kubectl does. For each kind below
this script answers `kubectl create <kind> -o json` with a protobuf object in which every field is set
(scalars to zero, one element per list and map, messages recursively), and records each scalar field
that kubectl's JSON leaves out. The result is `omitempty.json`, read by `schema.rs`; messages kubectl
cannot be made to print are not in its `probed` list: there `""` is dropped and other zeros are kept.

Run (after regenerating schema.json):  python3 crates/skiff-api/src/proto/probe_omitempty.py
kubectl is `$KUBECTL` or what scripts/fetch-kubectl.sh prints.
"""
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
SCHEMA = json.load(open(os.path.join(HERE, "schema.json")))["messages"]

# kubectl command, message, apiVersion, kind
PROBES = [
    (["create", "deployment", "d", "--image=i"], "io.k8s.api.apps.v1.Deployment", "apps/v1", "Deployment"),
    (["create", "namespace", "n"], "io.k8s.api.core.v1.Namespace", "v1", "Namespace"),
    (["create", "configmap", "c"], "io.k8s.api.core.v1.ConfigMap", "v1", "ConfigMap"),
    (["create", "secret", "generic", "s"], "io.k8s.api.core.v1.Secret", "v1", "Secret"),
    (["create", "serviceaccount", "sa"], "io.k8s.api.core.v1.ServiceAccount", "v1", "ServiceAccount"),
]

# Special messages (see schema.rs): a valid non-empty encoding for each.
SPECIAL = {
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": b"",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": b"",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Duration": b"\x08\x00",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": b"\x0a\x02{}",
    "io.k8s.apimachinery.pkg.api.resource.Quantity": b"\x0a\x011",
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": b"\x08\x00\x10\x00",
    "io.k8s.apimachinery.pkg.runtime.RawExtension": b"\x0a\x02{}",
}
SCALARS = {"string", "int32", "int64", "bool", "bytes", "double"}


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld(tag, payload):
    return varint(tag << 3 | 2) + varint(len(payload)) + payload


def scalar(tag, ty):
    if ty in ("string", "bytes"):
        return ld(tag, b"")
    if ty == "double":
        return varint(tag << 3 | 1) + b"\x00" * 8
    return varint(tag << 3) + b"\x00"


def value(ty, path):
    """The encoding of one value of a message type (without its key)."""
    if ty in SPECIAL:
        return SPECIAL[ty]
    return message(ty, path)


def message(name, path):
    if name in path:  # a recursive type: stop
        return b""
    path = path + (name,)
    out = b""
    for tag, _json, label, ty in SCHEMA[name]:
        if ty in SCALARS:
            if label == "map":
                entry = ld(1, b"k") + scalar(2, ty)
                out += ld(tag, entry)
            else:
                out += scalar(tag, ty)
        else:
            v = value(ty, path)
            out += ld(tag, ld(1, b"k") + ld(2, v) if label == "map" else v)
    return out


def walk(name, obj, omitted, seen):
    """Records the scalar fields of `name` that kubectl's JSON `obj` leaves out."""
    if name in SPECIAL or not isinstance(obj, dict):
        return
    seen.add(name)
    for _tag, json_name, label, ty in SCHEMA[name]:
        if label == "inline":
            walk(ty, obj, omitted, seen)
            continue
        if ty in SCALARS:
            if label == "" and json_name not in obj:
                omitted.setdefault(name, set()).add(json_name)
            continue
        v = obj.get(json_name)
        if label == "[]" and isinstance(v, list):
            for item in v:
                walk(ty, item, omitted, seen)
        elif label == "map" and isinstance(v, dict):
            for item in v.values():
                walk(ty, item, omitted, seen)
        elif label == "":
            walk(ty, v, omitted, seen)


def serve(reply):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(201)
            self.send_header("Content-Type", "application/vnd.kubernetes.protobuf")
            self.end_headers()
            self.wfile.write(reply[0])

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    kubectl = os.environ.get("KUBECTL") or subprocess.run(
        [os.path.join(ROOT, "scripts", "fetch-kubectl.sh")], check=True, capture_output=True, text=True
    ).stdout.strip().splitlines()[-1]
    reply = [b""]
    server = serve(reply)
    omitted, seen = {}, set()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as kubeconfig:
        kubeconfig.write(
            "apiVersion: v1\nkind: Config\ncurrent-context: p\n"
            f"clusters: [{{name: p, cluster: {{server: 'http://127.0.0.1:{server.server_port}'}}}}]\n"
            "users: [{name: p, user: {token: x}}]\n"
            "contexts: [{name: p, context: {cluster: p, user: p, namespace: default}}]\n"
        )
        kubeconfig.flush()
        for args, name, api_version, kind in PROBES:
            type_meta = ld(1, api_version.encode()) + ld(2, kind.encode())
            reply[0] = b"k8s\x00" + ld(1, type_meta) + ld(2, message(name, ())) + ld(3, b"") + ld(4, b"")
            out = subprocess.run(
                [kubectl, "--kubeconfig", kubeconfig.name, *args, "-o", "json"],
                check=True, capture_output=True, text=True,
            ).stdout
            walk(name, json.loads(out), omitted, seen)
    server.shutdown()
    result = {
        "comment": "Generated by probe_omitempty.py with kubectl; do not edit. Per message, the scalar fields "
        "Go leaves out of JSON when zero or empty (non-pointer, omitempty), for every message in probed.",
        "probed": sorted(seen),
        "messages": {k: sorted(v) for k, v in sorted(omitted.items())},
    }
    with open(os.path.join(HERE, "omitempty.json"), "w") as f:
        f.write(json.dumps(result, indent=1) + "\n")
    print(f"probed {len(seen)} messages, {sum(len(v) for v in omitted.values())} omitempty scalars")


if __name__ == "__main__":
    sys.exit(main())
