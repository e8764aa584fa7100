#!/usr/bin/env bash
# The main job with good defaults: trains and evaluates a model end to end on the GPU and
# prints the results (metrics and checkpoint land in a new run directory,
# runs/simple-cnn-static-DATE-TIME, named when it starts). Extra arguments go to `train`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh data
cargo run --release --locked -- train --model simple-cnn --dataset fashion-mnist --epochs 2 "$@"
