#!/usr/bin/env bash
# Sourced by the other scripts: makes sure a Vulkan driver is present (installs Mesa's lavapipe
# CPU driver on Debian/Ubuntu when there is none), and quiets Mesa's harmless warnings.
# With an argument `data`, also installs the full Fashion-MNIST dataset package when missing;
# with `mpi`, OpenMPI and libclang (to build `--features mpi`, docs/distributed.md).

_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "padnet-wgpu setup: please install: $*" >&2
        return 1
    fi
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            echo "padnet-wgpu setup: run as root or install: $*" >&2
            return 1
        fi
    fi
    echo "padnet-wgpu setup: installing $* ..." >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

_have_vulkan() {
    # No pipelines: the scripts that source this run under `set -o pipefail`, where `grep -q`
    # closing the pipe early (or `ls` of a missing ICD folder) would fail the test.
    local libs
    libs=$(ldconfig -p 2>/dev/null || true)
    [[ $libs == *libvulkan.so.1* ]] &&
        { compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null ||
            compgen -G '/etc/vulkan/icd.d/*.json' >/dev/null; }
}

if [ "$(uname -s)" = Linux ] && ! _have_vulkan; then
    _apt_install mesa-vulkan-drivers || echo "padnet-wgpu setup: no Vulkan driver; GPU commands will fail" >&2
fi

_wants() { [[ " $* " == *" $_want "* ]]; }

_want=data
if _wants "$@" && [ ! -d /usr/share/datasets/fashion-mnist ] && [ -z "${PADNET_DATA_DIR:-}" ]; then
    _apt_install dataset-fashion-mnist ||
        echo "padnet-wgpu setup: full Fashion-MNIST unavailable; the embedded subset will be used" >&2
fi

# Whether this machine builds and runs padnet-wgpu with MPI (mpicc, mpirun and libclang).
_have_mpi() {
    command -v mpicc >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1 &&
        compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null
}
_want=mpi
if _wants "$@" && [ "$(uname -s)" = Linux ] && ! _have_mpi; then
    _apt_install libopenmpi-dev openmpi-bin libclang-dev ||
        echo "padnet-wgpu setup: no OpenMPI; data-parallel training across processes is not built" >&2
fi

# Mesa prints "XDG_RUNTIME_DIR is invalid" without it; keep its shader cache inside target/.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
export MESA_SHADER_CACHE_DIR="${MESA_SHADER_CACHE_DIR:-$PWD/target/mesa-shader-cache}"
