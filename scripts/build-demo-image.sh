#!/usr/bin/env bash
# Builds the demo image without internet: an OCI image archive of Debian's busybox-static whose
# httpd serves a page on port 8080. Prints the archive's path. Import it with `skiff image import`.
# Usage: build-demo-image.sh [ARCHIVE [TAG]]   (TAG defaults to v1; the page names it)
set -euo pipefail
tag="${2:-v1}"
out="${1:-$(cd "$(dirname "$0")/.." && pwd)/target/demo-web-$tag.tar}"
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "busybox-static is missing (run scripts/install-deps.sh)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root"/{bin,etc,tmp,www,proc,sys,dev}
cp "$busybox" "$root/bin/busybox"
for applet in sh echo cat sleep httpd wget ls hostname; do ln -s busybox "$root/bin/$applet"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
cat > "$root/www/index.html" <<'HTML'
<!doctype html>
<title>Skiff demo</title>
<h1>Hello from a Skiff pod (TAG)</h1>
<p>Served by busybox httpd in a container that runc started, on a pod network that CNI wired.</p>
HTML
sed -i "s/TAG/$tag/" "$root/www/index.html"
tar --owner=0 --group=0 --numeric-owner -C "$root" -cf "$work/layer.tar" bin etc tmp www proc sys dev
python3 - "$work" "$out" "$tag" <<'PY'
import hashlib, json, os, platform, sys, tarfile
work, out, tag = sys.argv[1], sys.argv[2], sys.argv[3]
layout = os.path.join(work, "layout")
blobs = os.path.join(layout, "blobs", "sha256")
os.makedirs(blobs)
def put(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)
layer, layer_size = put(open(os.path.join(work, "layer.tar"), "rb").read())
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
config = json.dumps({
    "architecture": arch, "os": "linux",
    "config": {"Env": ["PATH=/bin"], "Cmd": ["httpd", "-f", "-p", "8080", "-h", "/www"],
               "WorkingDir": "/", "ExposedPorts": {"8080/tcp": {}}},
    "rootfs": {"type": "layers", "diff_ids": [layer]},
}).encode()
config_digest, config_size = put(config)
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}],
}).encode()
manifest_digest, manifest_size = put(manifest)
json.dump({"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest_size,
    "annotations": {"org.opencontainers.image.ref.name": tag}}]}, open(os.path.join(layout, "index.json"), "w"))
open(os.path.join(layout, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
os.makedirs(os.path.dirname(out), exist_ok=True)
with tarfile.open(out + ".tmp", "w") as t:
    for name in ("oci-layout", "index.json", "blobs"):
        t.add(os.path.join(layout, name), arcname=name)
os.replace(out + ".tmp", out)
PY
echo "$out"
