#!/usr/bin/env bash
# The checks a GPU host runs for the GPU build and measurement work (issues 13 and 14), as one script.
#
#   bash benchmarks/gpu_host.sh OUT_DIR IMAGENET_DIR [check] [tests] [row] [bench]     (default: all)
#
#   check  the GPU as the runner reads it (NVML), and `plan --device cuda`: which build each row installs and
#          which cannot run on this GPU, decided before anything is built
#   row    the current PyTorch row through the local backend (what is installed, --ignore-pins): the error suite
#          on IMAGENET_DIR and the throughput suite with the GPU defaults, in fp32, then again in bf16 with
#          channels_last for the models in ROW_MODELS_BF16 (default resnet50); one run folder, one report
#   bench  benchmarks/eval_speed.py on EVAL_IMAGES synthetic JPEGs (default 50000): decoder processes (EVAL_WORKERS,
#          default 0: the GPU cells' default, one per core, niced; "1 14" for one decoder and 14 processes), the
#          crop cache's first pass and hit, the DataLoader peer, and the row's error cells from a cold crop cache
#          against pure model time; EVAL_CELLS=row keeps to the row's cells (its first cell is the first pass, the
#          others hits; about half the time, for a short lease)
#   tests  the probe tests that need the GPU to mean anything: the device conversion's bits, the torch adapter
#
# Writes OUT_DIR/log.txt, plan-cuda.txt, tests-cuda.txt, eval_speed-cuda.txt and gpu-row.tar.gz (the row's results and report).
# PYTHON picks the interpreter (default python3); DEVICE the device (default cuda; cpu rehearses it anywhere).
set -uo pipefail
OUT=$(mkdir -p "$1" && cd "$1" && pwd); DATA=$(cd "$2" && pwd); shift 2
PARTS=${*:-check tests row bench}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
EVAL_IMAGES=${EVAL_IMAGES:-50000}
PIPELINE_IMAGES=${PIPELINE_IMAGES:-2000}
BENCH_LIMIT_S=${BENCH_LIMIT_S:-480}
ROW_MODELS_BF16=${ROW_MODELS_BF16:-resnet50}
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1

stage() { echo; echo "== $1 ($(date -u +%H:%M:%S))"; }

stage "host"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || echo "no nvidia-smi"
"$PY" - <<'EOF'
import os, platform
print("python", platform.python_version(), "cores", os.cpu_count())
try:
    import torch, torchvision
    print("torch", torch.__version__, "cuda", torch.version.cuda, "torchvision", torchvision.__version__)
    print("arch list", torch.cuda.get_arch_list() if torch.cuda.is_available() else "(no CUDA device)")
except ImportError as exc:
    print("no torch:", exc)
from runner.probe.gpu_compat import read_gpu
print("NVML:", read_gpu("cuda"))
EOF

for part in $PARTS; do
  case $part in
  check)
    stage "check: plan --device cuda (venv backend: the rows' GPU builds, decided against this GPU)"
    "$PY" -m runner plan --device cuda --backend venv --weights random --suite throughput --model resnet50 \
      2>&1 | tee "$OUT/plan-cuda.txt"
    ;;
  row)
    stage "row: torch-current, fp32, error + throughput"
    common=(--backend local --ignore-pins --device "$DEVICE" --env torch-current --weights random
            --imagenet "$DATA" --suite error --suite throughput --run gpu-torch-current
            --results-dir "$WORK/results" --reports-dir "$WORK/reports")
    timeout 420 "$PY" -m runner run "${common[@]}"
    echo "exit $?"
    stage "row: torch-current, bf16 + channels_last: $ROW_MODELS_BF16"
    models=(); for m in $ROW_MODELS_BF16; do models+=(--model "$m"); done
    timeout 240 "$PY" -m runner run "${common[@]}" "${models[@]}" --engine precision=bf16 --engine channels_last=true
    echo "exit $?"
    tar -czf "$OUT/gpu-row.tar.gz" -C "$WORK" results reports
    ;;
  tests)
    stage "tests: device conversion, torch adapter, error suite (pytest from PYTHONPATH)"
    "$PY" -m pytest -q -p no:cacheprovider tests/probe/test_device_conversion.py tests/probe/test_adapter_torchvision.py \
      tests/probe/test_error_suite.py 2>&1 | tee "$OUT/tests-$DEVICE.txt" | tail -15
    ;;
  bench)
    stage "bench: eval_speed, $EVAL_IMAGES images"
    timeout "$BENCH_LIMIT_S" "$PY" benchmarks/eval_speed.py --device "$DEVICE" --backend local --ignore-pins \
      --images "$EVAL_IMAGES" --workers ${EVAL_WORKERS:-0} --pipeline-images "$PIPELINE_IMAGES" --row --cells "${EVAL_CELLS:-all}" --keep "$WORK/val" \
      | tee "$OUT/eval_speed-$DEVICE.txt"
    echo "exit $?"
    ;;
  *) echo "unknown part $part"; exit 2 ;;
  esac
done
stage "done"
rm -rf "$WORK"
