#!/usr/bin/env bash
# The test suite: every shader validated, every op GPU-vs-CPU and against finite differences,
# a small CNN trained for 30 steps. Installs the Vulkan CPU driver first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo test --locked "$@"
