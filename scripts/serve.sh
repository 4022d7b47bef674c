#!/usr/bin/env bash
# Quick start: install what the default plugins need, build in release, put the
# plugin libraries into plugins/, and start the server on 127.0.0.1:18890.
# Extra arguments go to `agentflow serve` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p agentflow-host -p agentflow-bash -p agentflow-vm -p agentflow-rag
for p in bash vm rag; do
  # Copy beside and rename, so a running server never sees a half-written file.
  cp "target/release/libagentflow_${p}.so" "plugins/.libagentflow_${p}.so.tmp"
  chmod go-w "plugins/.libagentflow_${p}.so.tmp"
  mv -f "plugins/.libagentflow_${p}.so.tmp" "plugins/libagentflow_${p}.so"
done
exec target/release/agentflow serve --config plugins.toml "$@"
