#!/usr/bin/env bash
# The test suite: every shader validated, every op GPU-vs-CPU and against finite differences,
# a small CNN trained for 30 steps, BERT against transformers (incl. the pretrained MiniLM).
# Installs the Vulkan CPU driver and fetches MiniLM first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
./scripts/fetch-minilm.sh
cargo test --locked "$@"
