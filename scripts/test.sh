#!/usr/bin/env bash
# Runs every test: unit tests of each crate and the end-to-end tests, which
# start the real server with real plugin libraries built here.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Lints first, so a formatting slip fails in seconds rather than after the
# suite. Both tools come with rustup's default profile.
for tool in rustfmt clippy; do
    if ! cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$tool" || {
            echo "test.sh: cargo ${tool/rustfmt/fmt} is missing and could not be installed (rustup component add $tool)" >&2
            exit 1
        }
    fi
done
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests load the built plugin libraries: build them all first,
# with the same targets as the test run (tests turn on plugin-api's testkit
# feature), so nothing is built twice.
cargo build --workspace --all-targets
# --no-fail-fast: one failing test binary must not hide the others' results.
cargo test --workspace --no-fail-fast "$@"
