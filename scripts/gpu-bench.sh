#!/usr/bin/env bash
# GPU checks of issue 12 in one run (< 8 min on one H100/H200): base-size random WavLM and wav2vec2,
# bf16, reference vs tuned (feature cache on / off, SDPA vs eager for WavLM), MFU, audio-hours per
# hour per stage, and the projected wall time of the full protocol (5 folds x 2 stages x 100 epochs
# on IEMOCAP's ~7 h). Prints a markdown table and writes gpu-bench/*.json.
#
#   bash scripts/gpu-bench.sh                 # on the GPU machine, from the repository root
#   SMOKE=1 bash scripts/gpu-bench.sh         # CPU smoke test: tiny encoder, 2 steps (checks the script)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${OUT:-gpu-bench}
STEPS=${STEPS:-20}
mkdir -p "$OUT"
if [ ! -f "$OUT/manifest/cuts.jsonl.gz" ]; then
  "$PY" -m metaser.cli synth-demo "$OUT/corpus" --seed 0 >/dev/null
  "$PY" -m metaser.cli prepare iemocap "$OUT/corpus" -o "$OUT/manifest" >/dev/null
fi
COMMON=(data.manifest="$OUT/manifest" data.sampler.max_duration=200 data.sampler.num_workers=4
        model.aux_head.hidden_dim=256 model.emotion_head.hidden_dim=256 trainer.precision=bf16-mixed
        trainer.accelerator=auto trainer.num_threads=null)
ENCODERS=(base-random-wavlm base-random-wav2vec2)
if [ -n "${SMOKE:-}" ]; then
  COMMON=(data.manifest="$OUT/manifest" data.sampler.num_workers=0 trainer.precision=32-true)
  ENCODERS=(tiny-wavlm); STEPS=2
fi
for enc in "${ENCODERS[@]}"; do
  modes=reference,tuned,tuned-nocache
  case "$enc" in *wavlm*) modes=$modes,tuned-eager ;; esac
  echo "== $enc ($modes)" >&2
  "$PY" -m metaser.cli bench train configs/demo/tiny.yaml "${COMMON[@]}" model.encoder.name_or_path="$enc" \
      --steps "$STEPS" --warmup 3 --modes "$modes" --json "$OUT/train-$enc.json" >&2
done
"$PY" scripts/gpu_report.py "$OUT"/train-*.json | tee "$OUT/report.md"
