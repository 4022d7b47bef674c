#!/usr/bin/env bash
# Quick start: install what the default plugins need, build in release, put the
# plugin libraries into plugins/ (scripts/build.sh), and start the server on
# 127.0.0.1:18890. Extra arguments go to `agentflow serve` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec target/release/agentflow serve --config plugins.toml "$@"
