#!/usr/bin/env bash
# One prepared GPU session check: the CUDA path, then the benchmarks, all output into $OUT (or ./bench/out).
# Run on the device machine from the checkout:  bash bench/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.
OUT=${OUT:-bench/out}; mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
  echo "== CUDA path: eval on the sample photos with the embedded default, fp32 and bf16"
  python -m nnprobe eval samples/imagenet --device cuda --format json -o "$OUT/eval_cuda.json" && \
    python -c "import json,sys; d=json.load(open('$OUT/eval_cuda.json')); print('cuda fp32', d['correct_top1'], d['correct_top5'], d['total']); assert (d['correct_top1'], d['correct_top5'], d['total']) == (3, 4, 4)"
  python -m nnprobe eval samples/imagenet --device cuda --precision bf16 --format json | \
    python -c "import json,sys; d=json.load(sys.stdin); print('cuda bf16', d['correct_top1'], d['correct_top5'], d['total'])"
  echo "== eval throughput vs timm validate"
  timeout 300 python bench/bench_eval_gpu.py --count 3000 --batch-size 256
  if [ -f bench/bench_attacks.py ]; then
    echo "== attacks throughput vs torchattacks"
    timeout 240 python bench/bench_attacks.py --model resnet50 --batch 256 --precision fp32,bf16 --repeats 2 --device cuda
  fi
  echo "== APGD-CE and AutoAttack vs torchattacks (issue 10 workloads; names as bench_attacks.py prints them)"
  timeout 300 python bench/bench_attacks.py --model resnet50 --batch 64 --repeats 1 --device cuda --apgd-steps 20 \
    --queries 200 --only apgd-ce20-robust,autoattack20q200-robust
  echo "== corruptions on the device vs plain eval and imagecorruptions (issue 11)"
  timeout 240 python bench/bench_corruptions.py --device cuda --count 256 --batch-size 64 --reference-images 4
  echo "== the GPU-only tests"
  timeout 300 python -m pytest -q -p no:cacheprovider -k "cuda or gpu" tests/eval tests/attacks tests/data
} 2>&1 | tee "$OUT/gpu.log"
