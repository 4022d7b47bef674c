#!/usr/bin/env bash
# Runs every test: unit tests of each crate and the end-to-end tests, which
# start the real server with real plugin libraries built here.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The end-to-end tests load the built plugin libraries: build them all first,
# with the same crate selection as the test run so nothing is rebuilt.
cargo build --workspace
# --no-fail-fast: one failing test binary must not hide the others' results.
cargo test --workspace --no-fail-fast "$@"
