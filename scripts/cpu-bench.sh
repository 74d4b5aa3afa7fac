#!/usr/bin/env bash
# The CPU figures of docs/benchmarks.md in one run, after `make demo` (which leaves demo/manifest
# and demo/model): training throughput (tiny and base-size random WavLM; reference / tuned;
# cache on / off; eager / SDPA; metaser's CPU dropout and FFT positional conv / torch's), the Table II study with and without stage reuse, inference.
#
#   bash scripts/cpu-bench.sh            # writes bench/*.json and bench/*.log
set -euo pipefail
cd "$(dirname "$0")/.."
M=${M:-.venv/bin/metaser}
OUT=${OUT:-bench}
mkdir -p "$OUT"
MAN=data.manifest=demo/manifest
$M bench train configs/demo/tiny.yaml $MAN --steps 20 --modes reference,tuned,tuned-nocache,tuned-eager,tuned-torchops \
    --json "$OUT/train-tiny.json" > "$OUT/train-tiny.log" 2>&1
$M bench train configs/demo/tiny.yaml $MAN model.encoder.name_or_path=base-random-wavlm \
    model.aux_head.hidden_dim=256 model.emotion_head.hidden_dim=256 --steps 6 --warmup 1 \
    --modes reference,tuned,tuned-nocache,tuned-eager,tuned-torchops --json "$OUT/train-base.json" > "$OUT/train-base.log" 2>&1
for reuse in reuse no-reuse; do
  flag=""; [ "$reuse" = no-reuse ] && flag=--no-reuse
  /usr/bin/time -f "%e" -o "$OUT/ablate-$reuse.seconds" \
    $M ablate configs/demo/tiny.yaml $MAN --study modules --folds 1 $flag output_dir="$OUT/ablate-$reuse" \
      stage1.epochs=1 stage2.epochs=1 emotion_only.epochs=1 trainer.enable_progress_bar=false \
      > "$OUT/ablate-$reuse.log" 2>&1
done
# inference: a base-size random WavLM with gender, style and CTC heads: torch, onnx fp32, onnx int8
# (calibrated on the corpus's last 40 files, timed on its first 40) beside the plain transformers
# forward, at 2 threads and 1, onnxruntime thread spinning on and off, a batch's files run apart (one per thread)
PY=${PY:-.venv/bin/python}
$PY - "$OUT/base-model" <<'PYEOF'
import sys, torch
torch.manual_seed(0)  # the heads (the encoder preset has its own seed): the same model, the same int8 guard
from metaser.models.config import EncoderConfig, ModelConfig, TaskSpec
from metaser.models.metaser import MetaSERModel
MetaSERModel.build(ModelConfig(encoder=EncoderConfig(name_or_path="base-random-wavlm")), ["ang", "hap", "neu", "sad"],
    [TaskSpec("gender", "classification", ["female", "male"]), TaskSpec("style", "classification", ["impro", "script"]),
     TaskSpec("asr", "ctc", list("abcdefghijklmnopqrstuvwxyz '"))]).save_pretrained(sys.argv[1])
PYEOF
rm -rf "$OUT/calib" && mkdir -p "$OUT/calib"
for f in $(find demo/corpus -name '*.wav' | sort | tail -40); do ln -s "$(realpath "$f")" "$OUT/calib/"; done
$M export-onnx "$OUT/base-model" --int8 --calib "$OUT/calib" > "$OUT/export-onnx.log" 2>&1 || true  # the guard may refuse
FILES=$(find demo/corpus -name '*.wav' | sort | head -40)
uptime > "$OUT/infer-base.uptime"
$M bench infer "$OUT/base-model" $FILES --threads 2,1 --repeats 3 --batch-sizes 1,8 --onnx-opt all --onnx-spin on,off --onnx-apart \
    --json "$OUT/infer-base.json" > "$OUT/infer-base.log" 2>&1 || true
uptime >> "$OUT/infer-base.uptime"
echo "done: $OUT"
