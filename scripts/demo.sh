#!/usr/bin/env bash
# The main job with good defaults: PAD-Net end to end. Trains ResNet-10 (width 0.25) on
# Fashion-MNIST twice: static, and PAD-Net (κ = 0.3: Iterative Mode Partition keeps 30 % of
# the block convolutions' weight positions dynamic, the rest becomes one static kernel).
# Exports PAD's deploy file, evaluates both deployed files and prints one table: accuracy,
# parameters (training and deployed), file sizes, inference img/s and training time.
# Everything lands in a new runs/resnet10-experiment-DATE-TIME/ (named when it starts):
# results.md/.json, results.png, results_params.png, and per run metrics, curves.png and
# checkpoints. Extra arguments go to `padnet-wgpu experiment` and override the ones below,
# e.g. `--baselines static,dynamic` (add DY-Conv), `--limit-train 60000 --epochs 10`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh data
cargo build --release --locked
start=$SECONDS
target/release/padnet-wgpu experiment --model resnet10 --width 0.25 --stem cifar \
    --limit-train 3000 --limit-test 2000 --epochs 1 --kappas 0.3 --seeds 0 --baselines static "$@"
echo "demo took $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"
