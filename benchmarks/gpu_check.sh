#!/usr/bin/env bash
# The GPU checks as one short script (about 3 minutes on an H100/H200, plus the machine's start):
# the CUDA tests (tests/test_device.py and the CUDA data test), then the training throughput
# benchmark at full size (MLP-10, width 1024, Fashion-MNIST), in float32 and with TF32 products,
# then the latency of networks cut at each layer (benchmarks/prune_latency.py, chapter 5).
#
#   bash benchmarks/gpu_check.sh prepare   # here, once: stage what a bare GPU machine lacks
#   bash benchmarks/gpu_check.sh           # there, e.g. through the device tool with carry [".whl", ".data"]
#   bash benchmarks/gpu_check.sh --quick   # any other arguments go to train_throughput.py
#
# `prepare` downloads the fastcluster wheel for the GPU image's Python (3.12) into .whl/ and copies
# the Fashion-MNIST IDX files into .data/ (both git-ignored through .git/info/exclude). The check
# itself needs torch with CUDA, numpy, pandas, scipy, scikit-learn, pyyaml, tqdm and pytest, and
# imports inc_utils from this checkout. Its logs go to $OUT (default build/gpu_check).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "prepare" ]]; then
    mkdir -p .git/info .data/fashion_mnist
    for d in /.whl/ /.data/; do grep -qx "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .whl fastcluster==1.3.0 || exit 1
    src=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
    cp "$src"/*-ubyte.gz .data/fashion_mnist/ || { echo "no Fashion-MNIST in $src (apt-get install dataset-fashion-mnist)"; exit 1; }
    du -sh .whl .data
    exit 0
fi

OUT=${OUT:-build/gpu_check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 INC_PROGRESS=0
[[ -d .data ]] && export INC_DATA_DIR="$PWD/.data"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"

status=0
python3 -m pytest -o addopts="" -p no:cacheprovider -q -ra \
    tests/test_device.py "tests/test_data.py::test_batches_stay_on_cuda" 2>&1 | tee "$OUT/tests.txt" || status=1

for precision in highest high; do
    python3 benchmarks/train_throughput.py --k33 --repeats 2 --workers 4 --matmul-precision "$precision" \
        --csv "$OUT/throughput-$precision.csv" "$@" 2>&1 | tee "$OUT/throughput-$precision.txt" || status=1
done
for shape in "--depth 10 --width 1024 --in-shape 3 32 32" "--depth 8 --width 256 --in-shape 1 28 28"; do
    python3 benchmarks/prune_latency.py --device cuda --repeats 100 $shape 2>&1 \
        | tee -a "$OUT/prune_latency.txt" || status=1
done
exit $status
