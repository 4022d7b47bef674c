#!/usr/bin/env bash
# Installs what the default plugins need (scripts/setup.sh), builds the host
# and the default plugins in release, and puts the plugin libraries into
# plugins/. Shared by scripts/serve.sh and scripts/cluster.sh.
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
