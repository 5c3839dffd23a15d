#!/bin/sh
# Fetch, into .whl/, the wheels of Aura's dependencies that a bare GPU machine image lacks
# (its Python already has PyTorch, nvidia-ml-py, psutil, msgpack, click, filelock and pytest).
# Run here, where pip can reach the package index; then carry .whl to the GPU machine and run
# bench/gpu_device.sh there. The versions are the ones Aura is tested with.
set -eu
cd "$(dirname "$0")/.."
PY=${DEVICE_PYTHON_VERSION:-3.12}
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "pyzmq==27.3.0" "structlog==26.1.0"
ls -l .whl
