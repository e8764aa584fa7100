#!/usr/bin/env bash
# The test suite: every shader validated, every op GPU-vs-CPU and against finite differences,
# a small CNN trained for 30 steps, BERT against transformers (incl. the pretrained MiniLM),
# data-parallel training on 2 ranks. Installs the Vulkan CPU driver and OpenMPI and fetches
# MiniLM first if needed; with MPI the build has `--features mpi` and the tests also run 2
# MPI ranks (docs/distributed.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh mpi
./scripts/fetch-minilm.sh
features=()
if _have_mpi; then
    features=(--features mpi)
    # CI runs as root; OpenMPI refuses that unless told.
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
cargo test --locked "${features[@]}" "$@"
