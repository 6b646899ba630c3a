#!/usr/bin/env bash
# check-code-order.sh BIN: fails when the release binary BIN holds less than 80 % of the names in
# crates/skiff/code-order.txt. The list orders the code `skiff server` runs at rest (see
# crates/skiff/build.rs); lld skips the names a binary lacks, so a list that no longer matches
# costs memory at rest and nothing else says so. Two causes: code that moved a lot (run
# scripts/code-order.sh again), or a build whose dependency features differ from the list's,
# which changes every mangled name of the workspace's crates (build the binary with `-p skiff`:
# `cargo build --release --workspace` turns on skiff-store's test support and, at 69 %, held about
# 3 MiB more at rest).
set -euo pipefail
bin=${1:?usage: check-code-order.sh BIN}
list="$(dirname "$0")/../crates/skiff/code-order.txt"
listed=$(grep -v '^#' "$list" | sort -u)
present=$(comm -12 <(nm --defined-only "$bin" | awk '{print $3}' | sort -u) <(printf '%s\n' "$listed") | wc -l)
total=$(printf '%s\n' "$listed" | wc -l)
echo "code order: $present of $total listed names are in $bin" >&2
if [ $((present * 100)) -lt $((total * 80)) ]; then
  echo "code order: under 80 %; see the comment in scripts/check-code-order.sh" >&2
  exit 1
fi
