#!/usr/bin/env bash
# The GPU check, as one short script for a lent GPU machine (the `device` tool's `run`): the
# valuation tests with CUDA present (the CUDA test runs instead of skipping), then
# `python -m benchmarks.gpu` (CPU/CUDA agreement, speed against plain training, memory).
# About 2.3 minutes on an H200 (2026-12-04, GPU_BENCH_ARGS="--sizes 1000,10000,100000 --repeats 2":
# tests 25 s, benchmark 102 s); everything it writes goes to $OUT (gpu.json, gpu.md, logs).
# GPU_BENCH_ARGS passes options to benchmarks.gpu (e.g. "--sizes 1000,10000,100000"; with CUDA
# graphs a fit takes about 0.14 s per 1k rows there, without them 1.2 s), GPU_BENCH_TIMEOUT its
# limit in seconds (default 360).
#
# That machine's python3 has torch, numpy, pandas, pyarrow, scikit-learn and pytest, not
# geomloss. Before the call, on the development machine, in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   .venv/bin/pip wheel --no-deps -w .whl "geomloss==$(.venv/bin/pip show geomloss | awk '/^Version/{print $2}')"
# then call run with carry [".whl"] and command `bash benchmarks/gpu_check.sh`, timeout_s 600.
# Copy $OUT/gpu.json and gpu.md into benchmarks/results/ and quote them in the README.
set -uo pipefail
OUT="${OUT:-/tmp/lossval-gpu}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_check: installing the carried wheels failed" >&2; exit 1; }
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
python3 -c "import torch, geomloss; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name(0))" \
    || { echo "gpu_check: needs torch with CUDA and geomloss (carry .whl, see the top of this file)" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia-smi.txt" 2>&1 || true
status=0
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/lossval/test_valuation.py tests/lossval/test_torchutil.py \
    2>&1 | tee "$OUT/pytest.log" | tail -5 || status=1
timeout "${GPU_BENCH_TIMEOUT:-360}" python3 -m benchmarks.gpu --out-dir "$OUT" ${GPU_BENCH_ARGS:-} 2>&1 | tee "$OUT/gpu.log" || status=1
exit $status
