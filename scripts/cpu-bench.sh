#!/usr/bin/env bash
# The CPU figures of docs/benchmarks.md in one run, after `make demo` (which leaves demo/corpus,
# demo/manifest and demo/model), on a machine where nothing else runs:
#   train   training throughput, tiny and base-size random WavLM, reference / tuned (and the
#           tuned variants: cache off, eager attention, torch's kernels)
#   ablate  the Table II study with and without stage reuse
#   infer   bench infer of a base-size random WavLM with gender, style and CTC heads: torch, onnx,
#           onnx-int8 beside the plain transformers forward, 2 threads and 1, batches of 1 and 8
#   serve   bench serve: short requests while a 10-minute upload is processed (--long), and 1000
#           requests of mixed lengths with the RSS rule (--max-rss-growth 0.05)
#   memory  peak RSS of predict on 60 s and 20-minute recordings (--max-seconds 1200)
#
#   bash scripts/cpu-bench.sh                     # every part; writes bench/*.json and bench/*.log
#   PARTS="infer serve" bash scripts/cpu-bench.sh # some parts (RUNS=3: infer three times)
set -euo pipefail
cd "$(dirname "$0")/.."
M=${M:-.venv/bin/metaser}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench}
DEMO=${DEMO:-demo}
PARTS=${PARTS:-train ablate infer serve memory}
RUNS=${RUNS:-1}
mkdir -p "$OUT"
MAN=data.manifest=$DEMO/manifest
has() { [[ " $PARTS " == *" $1 "* ]]; }
FILES=$(find "$DEMO/corpus" -name '*.wav' | sort | head -40)

if has train; then
  $M bench train configs/demo/tiny.yaml $MAN --steps 20 --modes reference,tuned,tuned-nocache,tuned-eager,tuned-torchops \
      --json "$OUT/train-tiny.json" > "$OUT/train-tiny.log" 2>&1
  $M bench train configs/demo/tiny.yaml $MAN model.encoder.name_or_path=base-random-wavlm \
      model.aux_head.hidden_dim=256 model.emotion_head.hidden_dim=256 --steps 6 --warmup 1 \
      --modes reference,tuned,tuned-nocache,tuned-eager,tuned-torchops --json "$OUT/train-base.json" > "$OUT/train-base.log" 2>&1
fi

if has ablate; then
  for reuse in reuse no-reuse; do
    flag=""; [ "$reuse" = no-reuse ] && flag=--no-reuse
    /usr/bin/time -f "%e" -o "$OUT/ablate-$reuse.seconds" \
      $M ablate configs/demo/tiny.yaml $MAN --study modules --folds 1 $flag output_dir="$OUT/ablate-$reuse" \
        stage1.epochs=1 stage2.epochs=1 emotion_only.epochs=1 trainer.enable_progress_bar=false \
        > "$OUT/ablate-$reuse.log" 2>&1
  done
fi

if has infer || has serve || has memory; then
  # a base-size random WavLM with gender, style and CTC heads (seeded: the same model every run),
  # exported to ONNX with int8 calibrated on the corpus's last 40 files (timed on its first 40)
  if [ ! -f "$OUT/base-model/model.int8.onnx" ]; then
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
    for f in $(find "$DEMO/corpus" -name '*.wav' | sort | tail -40); do ln -s "$(realpath "$f")" "$OUT/calib/"; done
    $M export-onnx "$OUT/base-model" --int8 --calib "$OUT/calib" > "$OUT/export-onnx.log" 2>&1 || true  # the guard may refuse
  fi
  # recordings made of the demo corpus's files: 60 s, 10 minutes, 20 minutes
  $PY - "$OUT" $(find "$DEMO/corpus" -name '*.wav' | sort) <<'PYEOF'
import sys, numpy as np, soundfile as sf
out, files = sys.argv[1], sys.argv[2:]
x = np.concatenate([sf.read(f, dtype="float32")[0] for f in files])
for name, sec in (("rec60.wav", 60), ("rec600.wav", 600), ("rec1200.wav", 1200)):
    sf.write(f"{out}/{name}", np.resize(x, sec * 16000), 16000)
PYEOF
fi

if has infer; then
  for run in $(seq 1 "$RUNS"); do
    uptime > "$OUT/infer-base-$run.uptime"
    $M bench infer "$OUT/base-model" $FILES --threads 2,1 --repeats 3 --batch-sizes 1,8 --onnx-opt all --onnx-apart \
        --json "$OUT/infer-base-$run.json" > "$OUT/infer-base-$run.log" 2>&1 || true
    uptime >> "$OUT/infer-base-$run.uptime"
  done
fi

if has serve; then
  SHORT=$(echo $FILES | tr ' ' '\n' | head -16)
  $M bench serve "$OUT/base-model" $SHORT --clients 4 --requests 100 --long "$OUT/rec600.wav" \
      --json "$OUT/serve-long-base.json" > "$OUT/serve-long-base.log" 2>&1 || true
  $M bench serve "$DEMO/model" $SHORT --clients 4 --requests 200 --long "$OUT/rec600.wav" \
      --json "$OUT/serve-long-demo.json" > "$OUT/serve-long-demo.log" 2>&1 || true
  $M bench serve "$OUT/base-model" $FILES --clients 8 --requests 1000 --warmup 100 --max-rss-growth 0.05 \
      --json "$OUT/serve-rss-base.json" > "$OUT/serve-rss-base.log" 2>&1 || true
  $M bench serve "$DEMO/model" $FILES --clients 8 --requests 1000 --warmup 100 --max-rss-growth 0.05 \
      --json "$OUT/serve-rss-demo.json" > "$OUT/serve-rss-demo.log" 2>&1 || true
fi

if has memory; then
  GOOD=$(echo $FILES | tr ' ' '\n' | head -1)
  for sec in 60 1200; do
    /usr/bin/time -f "%M" -o "$OUT/predict-$sec.maxrss-kb" \
      $M predict "$OUT/base-model" "$GOOD" "$OUT/rec$sec.wav" --max-seconds 1200 --format json \
        -o "$OUT/predict-$sec.json" > "$OUT/predict-$sec.log" 2>&1 || true
  done
fi
echo "done: $OUT"
