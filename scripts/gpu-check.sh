#!/usr/bin/env bash
# The one check to run on a machine with a real GPU (docs/benchmarks.md, "A GPU machine"):
# `bench --suite all --json`, then the PyTorch twin of the suites where torch is installed,
# then a profile of a ResNet-18 training step per mode and its steps with small DY-Conv chunks,
# whole reductions, the workgroup-tiled convolutions, all of wgpu's shader checks and DY-Conv's
# late layers as mixed outputs, then the GPU tests of the kernels and model gradients, then the
# GEMM workloads with each GEMM kernel fixed, with wgpu's shader checks and multiplied in f16,
# and the inference suite in f16 (weights stored as f16 and as f32). Most wanted first, so a
# run cut short by a lease still brings the record back.
# Sized for a few minutes.
#
#   scripts/gpu-check.sh [OUT_DIR]        build with cargo (if present) and run everything
#   scripts/gpu-check.sh --prepare        build here into .gpu-check/ for a machine without
#                                          Rust (same CPU architecture); copy the repository
#                                          with .gpu-check/ there and run the first form
#
# Results (info, test log, bench record and table) go to OUT_DIR, default
# results/gpu-check-<UTC date-time>. Exits non-zero when a test or a correctness check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
prebuilt=.gpu-check
tests=(ops dynconv model_grads)

if [ "${1:-}" = --prepare ]; then
    cargo build --release --locked
    rm -rf "$prebuilt" && mkdir -p "$prebuilt"
    cp target/release/padnet-wgpu "$prebuilt/"
    for t in "${tests[@]}"; do
        exe=$(cargo test --release --locked --test "$t" --no-run --message-format=json 2>/dev/null |
            python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    # The test harness itself: the package binary is built for the tests too.
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' | tail -1)
        cp "$exe" "$prebuilt/test-$t"
    done
    strip "$prebuilt"/* 2>/dev/null || true
    # The tests read their fixtures at the path they were built in (CARGO_MANIFEST_DIR).
    pwd > "$prebuilt/root"
    du -sh "$prebuilt"
    exit 0
fi

out=${1:-results/gpu-check-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
if command -v cargo >/dev/null 2>&1; then
    cargo build --release --locked
    bin=target/release/padnet-wgpu
    run_test() { cargo test --release --locked --test "$1" -- --test-threads 1 "${@:2}"; }
elif [ -x "$prebuilt/padnet-wgpu" ]; then
    bin=$prebuilt/padnet-wgpu
    run_test() { "$prebuilt/test-$1" --test-threads 1 "${@:2}"; }
    root=$(cat "$prebuilt/root")
    if [ ! -d "$root/tests/fixtures" ]; then
        echo "gpu-check: the prebuilt tests read their fixtures under $root (where they were built);" \
            "copy or link the repository there (e.g. ln -s \"$PWD\" $root)" >&2
        exit 1
    fi
else
    echo "gpu-check: no cargo and no $prebuilt/ (run scripts/gpu-check.sh --prepare on a machine with Rust)" >&2
    exit 1
fi

status=0
"$bin" info | tee "$out/info.txt"
# The tests must run on the GPU, not a CPU fallback: the first adapter must not be a CPU.
if grep -q '\[0\].*type Cpu' "$out/info.txt"; then
    echo "gpu-check: the first adapter is a CPU device; is the GPU's Vulkan driver installed?" >&2
    exit 1
fi
"$bin" bench --suite all --json "$out/bench.json" 2>&1 | tee "$out/bench.txt" || status=1
have_torch=false
if python3 -c 'import torch' 2>/dev/null && [ -f scripts/bench_torch.py ]; then
    have_torch=true
fi
if $have_torch; then
    python3 scripts/bench_torch.py --suite all --json "$out/torch.json" 2>&1 | tee "$out/torch.txt" || status=1
fi
# Where a ResNet-18 training step spends its time in each mode (each dispatch timed alone).
PADNET_PROFILE=1 "$bin" bench --model resnet18 --steps 2 > "$out/profile-resnet18.txt" 2>&1 || status=1
# The same steps with DY-Conv's chunks at the portable 96 MiB, against the suite's (3/4 of
# this device's binding limit; docs/architecture.md).
PADNET_CHUNK_MIB=96 "$bin" bench --model resnet18 --steps 5 > "$out/resnet18-chunk96.txt" 2>&1 || status=1
# The same steps with convolutions' reductions whole (no split-K, `conv::reduction_splits`),
# against the suite's split ones.
PADNET_SPLIT_K=0 "$bin" bench --model resnet18 --steps 5 > "$out/resnet18-no-split-k.txt" 2>&1 || status=1
# The same steps with each convolution kernel fixed (`PADNET_CONV`, conv.wgsl or
# conv_tiled.wgsl) against the suite's autotuned choice, and every convolution workload tiled.
for k in registers tiled; do
    PADNET_CONV=$k "$bin" bench --model resnet18 --steps 5 > "$out/resnet18-$k-conv.txt" 2>&1 || status=1
done
# The same steps with all of wgpu's runtime checks in the shaders (loop counters, index
# clamps; docs/architecture.md "Shader runtime checks"), against the suite's fewer.
PADNET_SHADER_CHECKS=1 "$bin" bench --model resnet18 --steps 5 > "$out/resnet18-checked.txt" 2>&1 || status=1
# DY-Conv's late layers as the mixed outputs of batched convolutions (docs/architecture.md
# "Two forms of DY-Conv"), DY-Conv and PAD: the 4×4 stage, then the 8×8 one too, against
# per-sample kernels.
for form in mixed:16 mixed:64; do
    PADNET_DY_FORM=$form "$bin" bench --model resnet18 --steps 5 \
        > "$out/resnet18-dy-${form/:/-}.txt" 2>&1 || status=1
done
PADNET_CONV=tiled "$bin" bench --suite all --filter conv --no-peaks \
    --json "$out/conv-tiled.json" > "$out/conv-tiled.txt" 2>&1 || status=1
# MiniLM's gradient tests need its weights (91 MB, scripts/fetch-minilm.sh), which a machine
# without a network may lack: they are skipped there, and the log says so.
skip=()
if [ ! -f models/all-MiniLM-L6-v2/model.safetensors ]; then
    echo "gpu-check: no models/all-MiniLM-L6-v2/model.safetensors: MiniLM's gradient tests skipped" |
        tee -a "$out/tests.txt"
    skip=(--skip minilm)
fi
for t in "${tests[@]}"; do
    run_test "$t" "${skip[@]}" 2>&1 | tee -a "$out/tests.txt" || status=1
done
# Each GEMM kernel fixed, on the GEMM workloads alone: what the autotune chose between.
for k in registers tiled tiled-large subgroup; do
    PADNET_GEMM=$k "$bin" bench --suite kernels --filter gemm --no-peaks \
        --json "$out/gemm-$k.json" 2>&1 | tee "$out/gemm-$k.txt" || status=1
done
PADNET_SHADER_CHECKS=1 "$bin" bench --suite kernels --filter gemm --no-peaks \
    --json "$out/gemm-checked.json" 2>&1 | tee "$out/gemm-checked.txt" || status=1
# The GEMM workloads multiplied in f16 (adapters with shader-f16; others say so and skip).
"$bin" bench --suite kernels --filter gemm --no-peaks --precision f16 \
    --json "$out/gemm-f16.json" > "$out/gemm-f16.txt" 2>&1 \
    || grep -q "no shader-f16" "$out/gemm-f16.txt" || status=1
cat "$out/gemm-f16.txt"
# Inference in f16, with weights stored as f16 (the parameters' f16 copy, DY-Conv/PAD's
# per-sample kernels) and, to compare, as f32.
for hw in 1 0; do
    PADNET_HALF_WEIGHTS=$hw "$bin" bench --suite infer --no-peaks --precision f16 \
        --json "$out/infer-f16-w$hw.json" > "$out/infer-f16-w$hw.txt" 2>&1 \
        || grep -q "no shader-f16" "$out/infer-f16-w$hw.txt" || status=1
    cat "$out/infer-f16-w$hw.txt"
done
if $have_torch; then
    python3 scripts/bench_torch.py --suite kernels --filter gemm --precision f16 \
        --json "$out/torch-gemm-f16.json" 2>&1 | tee "$out/torch-gemm-f16.txt" || status=1
fi
# The autotune's table: both times of every GEMM and convolution class it tuned.
cache=${PADNET_CACHE_DIR:-${XDG_CACHE_HOME:+$XDG_CACHE_HOME/padnet-wgpu}}
cp "${cache:-$HOME/.cache/padnet-wgpu}"/autotune-*.json "$out/" 2>/dev/null || true
echo "gpu-check: results in $out (exit $status)"
exit $status
