#!/usr/bin/env bash
# Fixed-seed runs whose metrics must not change when code is only reorganised (issue 11):
# simple-cnn, resnet10 in PAD mode with IMP, and minilm-l6 in PAD-MoE mode, at small limits.
# Writes OUT/{cnn,resnet10-pad,minilm-pad}.jsonl: each run's metrics.jsonl without its timing
# fields, for `diff -r` against tests/fixtures/same-metrics/ (recorded on lavapipe; another
# adapter rounds differently).
#   scripts/same-metrics.sh target/release/padnet-wgpu /tmp/now && diff -r tests/fixtures/same-metrics /tmp/now
set -euo pipefail
bin=$(realpath "$1")
out=$(realpath -m "$2")
cd "$(dirname "$0")/.."
source scripts/setup.sh
mkdir -p "$out"
runs=$(mktemp -d)
run() {
    local name=$1
    shift
    "$bin" train --quiet --out "$runs/$name" "$@"
    # Wall times and throughput differ run to run; everything else must be bit-identical.
    python3 -c 'import json,sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    print(json.dumps({k: v for k, v in m.items() if not (k.endswith("_per_s") or k.endswith("seconds"))}))' \
        "$runs/$name/metrics.jsonl" >"$out/$name.jsonl"
}
run cnn --model simple-cnn --dataset fashion-mnist --limit-train 512 --limit-test 256 \
    --epochs 2 --seed 3
run resnet10-pad --model resnet10 --mode pad --width 0.125 --stem cifar --dataset fashion-mnist \
    --limit-train 256 --limit-test 128 --epochs 2 --kappa 0.5 --imp-batches 2 --seed 1 \
    --temp-epochs 10
run minilm-pad --model minilm-l6 --mode pad --task debian-sections --max-len 32 \
    --limit-train 128 --limit-test 64 --epochs 2 --seed 2
rm -rf "$runs"
