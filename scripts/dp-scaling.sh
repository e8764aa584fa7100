#!/usr/bin/env bash
# Data-parallel scaling (docs/distributed.md): training img/s of one rank of batch 64 against
# two ranks of 32 (the same global batch) as threads (--adapters 0,0) and as MPI processes,
# for simple-cnn and ResNet-10 ×0.25 PAD, interleaved, REPS rounds. Prints a Markdown table
# of the medians of each epoch's img/s.
#   scripts/dp-scaling.sh target/release/padnet-wgpu [REPS]   (a build with --features mpi)
set -euo pipefail
bin=$(realpath "$1")
reps=${2:-3}
cd "$(dirname "$0")/.."
source scripts/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
runs=$(mktemp -d)
declare -A models=(
    [simple-cnn]="--model simple-cnn --limit-train 2048"
    [resnet10-pad]="--model resnet10 --width 0.25 --stem cifar --mode pad --kappa 0.3 --limit-train 1024"
)
for rep in $(seq "$reps"); do
    for model in simple-cnn resnet10-pad; do
        common="train --quiet --dataset fashion-mnist --limit-test 64 --epochs 1 ${models[$model]}"
        # shellcheck disable=SC2086
        "$bin" $common --batch-size 64 --out "$runs/$model-1-$rep" >/dev/null
        # shellcheck disable=SC2086
        "$bin" $common --batch-size 32 --adapters 0,0 --out "$runs/$model-threads-$rep" >/dev/null
        # shellcheck disable=SC2086
        mpirun --oversubscribe -np 2 "$bin" $common --batch-size 32 --out "$runs/$model-mpi-$rep" >/dev/null
    done
done
python3 - "$runs" "$reps" <<'PY'
import json, statistics, sys
runs, reps = sys.argv[1], int(sys.argv[2])
print("| model | 1 rank × 64 | 2 thread ranks × 32 | 2 MPI ranks × 32 |")
print("|---|---|---|---|")
for model in ["simple-cnn", "resnet10-pad"]:
    cells = []
    for kind in ["1", "threads", "mpi"]:
        v = [json.loads(open(f"{runs}/{model}-{kind}-{r}/metrics.jsonl").readline())["train_img_per_s"]
             for r in range(1, reps + 1)]
        cells.append(f"{statistics.median(v):.0f} img/s")
    print(f"| {model} | " + " | ".join(cells) + " |")
PY
rm -rf "$runs"
