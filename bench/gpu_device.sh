#!/bin/sh
# The real-GPU checks of the watchdog, in one run on a machine with an NVIDIA GPU:
#   1. bench/gpu_check.py --each: does GpuSampler see a CUDA process's memory and SM use,
#      compared with nvidia-smi (every allocator: PyTorch, CuPy, nvcc, libcuda);
#   2. pytest tests/real/gpu: real daemons kill a worker over its GPU memory (or SM) ceiling after
#      the last strike, leave one under it alone, and the brain escalates after two kills.
# Usage: sh bench/gpu_device.sh OUTPUT_DIR   (wheels from bench/device_wheels.sh in .whl/)
set -u
cd "$(dirname "$0")/.."
out=${1:-/tmp/aura-gpu-check}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/aura-site \
        .whl/*.whl || exit 2
    export PYTHONPATH=/tmp/aura-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
nvidia-smi >"$out/nvidia-smi.txt" 2>&1
python3 -c 'import zmq, structlog, msgpack, psutil, click, filelock, pynvml' || exit 2
echo "== gpu_check"
timeout 300 python3 bench/gpu_check.py --each >"$out/gpu_check.json" 2>"$out/gpu_check.stderr"
check=$?
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("ok:", r["ok"]); [print(x["backend"], x.get("started"), x.get("sampler_mem_mib_last"), x.get("nvidia_smi_child_mib"), x.get("sampler_util_max"), x.get("error","")) for x in r["results"]]' "$out/gpu_check.json"
echo "== pytest tests/real/gpu"
timeout 420 python3 -m pytest tests/real/gpu -v -rs -s -p no:cacheprovider >"$out/pytest.txt" 2>&1
tests=$?
tail -n 40 "$out/pytest.txt"
echo "gpu_check exit $check, pytest exit $tests"
[ "$check" -eq 0 ] && [ "$tests" -eq 0 ]
