#!/usr/bin/env bash
# The suite's checks on a CUDA machine, in one run, most important first; each stage has its own time
# limit, so that a slow stage costs its own results only. Writes into OUT_DIR (default
# benchmarks/results/gpu): log.txt (everything printed) and the benchmarks' JSON reports.
#
#   bash benchmarks/gpu_checks.sh [OUT_DIR]
#
# 1. pytest -m gpu: every task's tiny recipe trained in bf16-mixed on the GPU, validated there with the
#    CPU's figures, predicted; pipelines on the GPU equal to the CPU; the KV cache over a 1500-row memory.
# 2. benchmarks/training_step.py on the GPU in bf16-mixed at the recipes' batches and at 8x them
#    (the suite against its peers).
# 3. The quick start (tasks/captioning/shapes.yaml, 2,400 steps) trained in bf16-mixed on the GPU:
#    its BLEU-4 and printed captions, then benchmarks/bf16_agreement.py on that checkpoint.
# 4. torch.compile's gain in the training step (what finishes in its time).
# 5. benchmarks/recipe_steps.py: steps/s of the embedded recipes on the GPU in bf16-mixed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-benchmarks/results/gpu}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
PYTHON=${PYTHON:-python3}
exec > >(tee -a "$OUT_DIR/log.txt") 2>&1

stage() {  # stage NAME SECONDS COMMAND...: runs COMMAND under a time limit, reports its exit status and time
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "=== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@"
  echo "=== $name: exit $? after $((SECONDS - start)) s"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PYTHON -c "import torch, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'lightning', lightning.__version__, torch.cuda.get_device_name())"

stage "pytest -m gpu" 150 $PYTHON -m pytest -p no:cacheprovider -m gpu -q -W ignore tests/lit/test_gpu.py \
  tests/encoders/test_audio_encoder.py
stage "training step, bf16-mixed, recipe batches" 60 $PYTHON benchmarks/training_step.py --device cuda \
  --precision bf16-mixed --repeats 5 --steps 10 --no-compile --out "$OUT_DIR/training_step.json"
stage "training step, bf16-mixed, 8x batches" 50 $PYTHON benchmarks/training_step.py --device cuda \
  --precision bf16-mixed --batch-scale 8 --repeats 5 --steps 5 --no-compile \
  --out "$OUT_DIR/training_step_batch8x.json"
stage "quick start, bf16-mixed" 90 $PYTHON -m multimodal_s2s.apps.quickstart -- --trainer.precision bf16-mixed
checkpoint=$(ls -t runs/captioning/shapes/version_*/checkpoints/best-*.ckpt 2>/dev/null | head -n 1)
if [ -n "$checkpoint" ]; then
  stage "bf16 agreement" 30 $PYTHON benchmarks/bf16_agreement.py --checkpoint "$checkpoint" --device cuda \
    --out "$OUT_DIR/bf16_agreement.json"
fi
stage "training step, bf16-mixed, torch.compile" 90 $PYTHON benchmarks/training_step.py --device cuda \
  --precision bf16-mixed --repeats 5 --steps 10 --tasks captioning asr segmentation translation \
  --out "$OUT_DIR/training_step_compile.json"
stage "recipe steps/s" 50 $PYTHON benchmarks/recipe_steps.py --accelerator gpu --precision bf16-mixed \
  --steps 60 --warmup 10 --recipes tasks/captioning/shapes.yaml tasks/segmentation/shapes.yaml \
  tasks/translation/dates.yaml --out "$OUT_DIR/recipe_steps.json"
