#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests and the end-to-end tests with the real kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."
# A one-off build (CI on a clean clone) gains nothing from incremental state but its disk space.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
./scripts/install-deps.sh
./scripts/fetch-kubectl.sh >/dev/null
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The API documentation builds without broken or ambiguous links.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
# The integration tests that run against an API server (skiff-testkit's in-process TestServer, and
# the `skiff server` process of the API, kubectl, client, CLI, rollout and durability suites) run on
# SQLite first and again on etcd (a private etcd per test): both backends of the Store trait.
ON_ETCD=(-p skiff-controllers -p skiff-scheduler -p skiff-apiserver --test '*')
ON_ETCD_E2E=(-p skiff --test kube_client --test bad_input --test kubectl --test cli --test rollout --test durability)
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  SKIFF_TEST_STORE=etcd cargo nextest run "${ON_ETCD[@]}" --locked --no-fail-fast
  SKIFF_TEST_STORE=etcd cargo nextest run "${ON_ETCD_E2E[@]}" --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
  SKIFF_TEST_STORE=etcd cargo test "${ON_ETCD[@]}" --locked --no-fail-fast
  SKIFF_TEST_STORE=etcd cargo test "${ON_ETCD_E2E[@]}" --locked --no-fail-fast
fi
# The README's first command, end to end: release build, demo image, server, 3-replica demo
# Deployment serving its page, `skiff get all`; in check mode it then stops and removes what it made.
SKIFF_UP_CHECK=1 ./scripts/up.sh
