"""How each command of the docs runs in the test suite: the registry.

Every command that :mod:`tests.docs.extract` finds must match exactly one :class:`Rule`
(``test_docs_coverage.py`` fails otherwise, and on a rule that matches nothing). A rule says:

* ``how`` it runs: ``cli`` (in this process through click's runner, the arguments expanded by
  bash first; ``a && b`` runs both), ``bash`` (a subprocess, ``metaser`` and ``python`` on PATH:
  what re-launches itself (DDP) or keeps process-wide state (Ray) runs so, in a fresh process as in
  a user's shell),
  ``python`` (a python block, executed here), ``heredoc`` (the python body of a
  ``python - <<'EOF'`` command, executed here), ``background`` (a server or a Ray node, started
  and left running for the commands that need it), or ``skip`` (cannot run here: ``reason`` says
  why; very few);
* the substitutions: :data:`PLACEHOLDERS` for every command (paths the docs invent), then the
  rule's own ``subs``; then ``append``, the shrinking overrides (epochs, batches, folds, tiny
  encoders), which come last so that they win;
* ``needs`` (workspace states that must exist first: corpora, replicas, or what another doc
  command ``provides``), the expected ``exit_code``, the working directory (``cwd``: ``work``, a
  scratch copy of the repository layout, or ``repo``, the checkout), ``xfail`` (a known failure,
  strict: the test flips when the fix lands; ``xfail_output`` is what the known failure prints,
  so that any other failure still fails) and ``check`` (what else is checked, by the name of a
  check in ``checks.CHECKS``).

To add a command to the docs: run ``pytest tests/docs/test_docs_coverage.py``; it names the
command without a rule. Add a ``Rule`` below whose ``match`` (a regular expression, matched
against the whole command with its whitespace collapsed) covers it.
"""

from __future__ import annotations

import re

from tests.docs.rule import (
    BENCH,
    BENCH_JSON,
    BF16_CLIP,
    DDP,
    DEMO,
    FAST,
    HUB,
    HUB_REPLICA,
    ISSUE_18_1,
    RAY_TOKEN,
    RAY_TOKEN_OUT,
    TRAIN,
    Rule,
    normalise,
    replica,
)

__all__ = ["Rule", "RULES", "PLACEHOLDERS", "TRAIN", "replica", "rule_for", "normalise"]


#: (regex, replacement) for every command: the paths the docs make up, mapped into the workspace.
PLACEHOLDERS: tuple[tuple[str, str], ...] = (
    # a corpus the machine does not have: the synthetic demo corpus in the IEMOCAP layout, in the work dir
    (r"/path/to/IEMOCAP_full_release", "IEMOCAP_full_release"),
    (r"/path/to/RAVDESS\b|\bRAVDESS_ROOT\b", "{ws}/RAVDESS"),
    (r"(?<![\w.])/data/audio\b", "{ws}/audio"),
    # a local copy of a hub checkpoint: the tiny hub-format replica (tests/hub_replicas.py)
    (r"(?<![\w.])/models/(wav2vec2-base|hubert-base|wavlm-base)\b", "{models}/\\1"),
    # the cluster's shared filesystem: on one machine, the work dir is what every worker sees
    (r"(?<![\w.])/shared/data/iemocap\b", "data/iemocap"),
    (r"(?<![\w.])/shared/runs\b", "runs"),
    # `auto` joins whichever Ray cluster this machine started last; the suite's own head instead
    (r"--ray-address auto\b", "--ray-address {ray_address}"),
    (r"(?<![\w.])/tmp/(base|x|shots)\b", "{ws}/tmp/\\1"),
)

RULES: tuple[Rule, ...] = (
    # ------------------------------------------------------------------------ set-up (README)
    Rule(
        r"make demo",
        subs=((r"^make demo$", "metaser demo"),),
        append=DEMO,
        needs=("demo-corpus",),
        provides="demo",
        check="demo",
        reason="`make demo` creates .venv and pip-installs (network), then runs `metaser demo`: that step runs, "
        "on the 40-utterance demo corpus that the demo preset's synth-demo command left in demo/corpus",
    ),
    Rule(r"make test", how="skip", reason="runs the whole suite, these tests included; CI runs it before them"),
    Rule(
        r"\. \.venv/bin/activate",
        how="bash",
        subs=((r"\.venv", "{venv}"),),
        wrap="{cmd} && command -v metaser",
        reason=".venv is the environment running the suite",
    ),
    Rule(
        r"pip install 'metaser\[ray\]'",
        how="skip",
        reason="needs the network; the test environment has the extra ([test] pins ray)",
    ),
    # -------------------------------------------------------------------------------- prepare
    Rule(
        r"metaser prepare iemocap /path/to/IEMOCAP_full_release -o data/iemocap",
        needs=("iemocap-corpus",),
        provides="iemocap-manifest",
        check="manifest:data/iemocap",
    ),
    Rule(
        r"metaser prepare iemocap IEMOCAP_full_release -o data/iemocap",
        needs=("iemocap-corpus",),
        check="manifest:data/iemocap",
    ),
    Rule(
        r"metaser prepare emodb \.\./shared/data/emodb -o data/emodb",
        needs=("emodb-corpus",),
        provides="emodb-manifest",
        check="manifest:data/emodb",
    ),
    Rule(
        r"metaser prepare ravdess (/path/to/RAVDESS|RAVDESS_ROOT) -o data/ravdess",
        needs=("ravdess-corpus",),
        provides="ravdess-manifest",
        check="manifest:data/ravdess",
    ),
    Rule(
        r"metaser prepare csv my_corpus\.tsv -o data/mine --audio-root /data/audio",
        needs=("csv-corpus",),
        check="manifest:data/mine",
    ),
    Rule(
        r"metaser synth-demo demo/corpus && metaser prepare iemocap demo/corpus -o demo/manifest",
        subs=((r"synth-demo demo/corpus", "synth-demo demo/corpus --size 40"),),
        provides="demo-corpus",
        check="manifest:demo/manifest",
    ),
    # ------------------------------------------------------------------ cross-validation runs
    Rule(r"metaser cv configs/emodb/tiny\.yaml", append=TRAIN, needs=("emodb-manifest",), check="run:emodb-tiny"),
    Rule(
        r"metaser cv configs/emodb/wavlm-base\.yaml",
        append=(*TRAIN, replica("wavlm-base")),
        needs=("emodb-manifest", "replicas"),
        check="run:emodb-wavlm-base",
    ),
    Rule(
        r"metaser cv configs/ravdess/wavlm-base\.yaml",
        append=(*TRAIN, replica("wavlm-base")),
        needs=("ravdess-manifest", "replicas"),
        check="run:ravdess-wavlm-base",
    ),
    Rule(
        r"metaser cv configs/demo/tiny\.yaml data\.manifest=demo/manifest",
        append=TRAIN,
        needs=("demo-corpus",),
        check="run:demo-tiny",
    ),
    Rule(
        r"metaser cv configs/iemocap/wavlm-base\.yaml",
        append=(*TRAIN, replica("wavlm-base")),
        needs=("iemocap-manifest", "replicas"),
        provides="run:iemocap-wavlm-base",
        check="run:iemocap-wavlm-base",
        reason="the paper preset as it is (fixed batches of 4, cache.mode strict) on the wavlm-base replica",
    ),
    Rule(
        r"metaser cv configs/iemocap/(wav2vec2-base|hubert-base)\.yaml",
        subs=(HUB_REPLICA,),
        append=TRAIN,
        needs=("iemocap-manifest", "replicas"),
        check="run:iemocap-*",
    ),
    Rule(
        rf"metaser cv configs/iemocap/({HUB})\.yaml model\.encoder\.name_or_path=/models/\1",
        append=TRAIN,
        needs=("iemocap-manifest", "replicas"),
        check="run:iemocap-*",
    ),
    Rule(
        rf"metaser cv configs/iemocap/({HUB})\.yaml model\.encoder\.name_or_path=/models/\1 {re.escape(FAST)}",
        append=(*TRAIN, "name=fast"),
        needs=("iemocap-manifest", "replicas"),
        check="run:fast",
        xfail=ISSUE_18_1,
        xfail_output=BF16_CLIP,
        reason="the preset's fast mode on its replica, in a run of its own (name=fast)",
    ),
    Rule(
        r"metaser cv configs/iemocap/wavlm-base\.yaml (stage1\.epochs=50 model\.fusion\.layers=weighted_sum )?"
        r"trainer\.devices=4 trainer\.strategy=ddp trainer\.precision=bf16-mixed",
        how="bash",
        append=(*TRAIN, replica("wavlm-base"), "trainer.devices=2", "name=ddp"),
        needs=("iemocap-manifest", "replicas"),
        xfail=ISSUE_18_1,
        xfail_output=BF16_CLIP,
        reason=DDP,
    ),
    Rule(
        r"torchrun --nnodes 2 --nproc-per-node 4 --node-rank \$NODE_RANK --master-addr \$HEAD --master-port 29500 "
        r"-m metaser\.cli cv configs/iemocap/wavlm-base\.yaml trainer\.devices=4 trainer\.num_nodes=2 "
        r"trainer\.strategy=ddp",
        how="bash",
        subs=(
            (r"--nproc-per-node 4", "--nproc-per-node 1"),
            (r"trainer\.devices=4", "trainer.devices=1"),
            (r"--master-port 29500", "--master-port {port:torchrun}"),
        ),
        append=(*TRAIN, replica("wavlm-base"), "name=torchrun"),
        wrap="HEAD=127.0.0.1; (NODE_RANK=1; {cmd}) & other=$!; NODE_RANK=0; {cmd}; mine=$?; wait $other; "
        "exit $((mine || $?))",
        needs=("iemocap-manifest", "replicas"),
        check="run:torchrun",
        reason="both 'machines' on this one, 1 process each (NODE_RANK 0 and 1, HEAD=127.0.0.1)",
    ),
    Rule(r"srun .*", how="skip", reason="needs a SLURM cluster"),
    Rule(r"#!/bin/bash\n#SBATCH .*", how="skip", reason="a SLURM batch script: needs a SLURM cluster"),
    # ----------------------------------------------------------------------- ablations, report
    Rule(
        r"metaser ablate configs/iemocap/wavlm-base\.yaml --study modules --plan",
        append=(replica("wavlm-base"),),
        needs=("iemocap-manifest", "replicas"),
        check="plan",
    ),
    Rule(
        r"metaser ablate configs/iemocap/wavlm-base\.yaml --study (modules|fusion|tasks|all)",
        append=(*TRAIN, replica("wavlm-base")),
        needs=("run:iemocap-wavlm-base",),
        check="ablation",
        reason="in the README's order, in one work dir: shared stages are reused as the README says",
    ),
    Rule(r"metaser report runs/iemocap-wavlm-base", needs=("run:iemocap-wavlm-base",), check="report"),
    Rule(
        r"metaser ablate configs/demo/tiny\.yaml data\.manifest=demo/manifest --study modules --folds 1 \[--no-reuse\] "
        r"stage1\.epochs=1 stage2\.epochs=1 emotion_only\.epochs=1 trainer\.enable_progress_bar=false",
        variants=((" [--no-reuse]", ""), (" [--no-reuse]", " --no-reuse")),
        append=TRAIN,
        needs=("demo-corpus",),
        check="ablation",
        reason="`[--no-reuse]`: both forms run",
    ),
    # ------------------------------------------------------------------------------- sweeps
    Rule(
        rf"metaser sweep configs/iemocap/({HUB})\.yaml --param aux_tasks\.asr=0\.1,0\.3,1,3 "
        r"--param aux_tasks\.gender=0\.1,1 --select valid\.ua",
        subs=(HUB_REPLICA,),
        append=TRAIN,
        needs=("iemocap-manifest", "replicas"),
        check="sweep",
        reason="the 8 trials on fold 1",
    ),
    Rule(
        r"metaser sweep configs/iemocap/wavlm-base\.yaml --param aux_tasks\.asr=0\.1,0\.3,1,3 "
        r"--param aux_tasks\.gender=0\.1,1 --select valid\.ua --launcher ray --ray-address auto"
        r"( output_dir=/shared/runs)?",
        how="bash",
        subs=(HUB_REPLICA,),
        append=(*TRAIN, "--cpus-per-task", "1"),
        needs=("iemocap-manifest", "replicas", "ray-head"),
        check="sweep",
        xfail=RAY_TOKEN,
        xfail_output=RAY_TOKEN_OUT,
        reason="joins the suite's Ray head; the second form finds the first one's trials (stage reuse)",
    ),
    # ------------------------------------------------------------------------------------ Ray
    Rule(
        r"ray start --head --port 6379",
        how="background",
        subs=((r"--port 6379", "--port {port:ray} --block --include-dashboard=false --disable-usage-stats"),),
        provides="ray-head",
        ready="ray",
        reason="--block keeps the node in the foreground, so the suite ends it by its pid (`ray stop` would end "
        "every Ray instance of the machine)",
    ),
    Rule(
        r"ray start --address HEAD_IP:6379",
        how="skip",
        reason="joins the head from a second machine; a second node on the head's machine is not one",
    ),
    Rule(
        r"metaser ablate configs/iemocap/wavlm-base\.yaml --study modules --launcher ray",
        how="bash",
        append=(*TRAIN, replica("wavlm-base"), "--cpus-per-task", "1"),
        needs=("run:iemocap-wavlm-base",),
        check="ablation",
        reason="a Ray instance of its own, as documented; --cpus-per-task 1: two tasks at once on 2 cores",
    ),
    Rule(
        r"metaser ablate configs/iemocap/wavlm-base\.yaml --study (all --launcher ray --ray-address auto "
        r"data\.manifest=/shared/data/iemocap output_dir=/shared/runs|modules data\.manifest=/shared/data/iemocap "
        r"output_dir=/shared/runs --launcher ray --ray-address auto)",
        how="bash",
        append=(*TRAIN, replica("wavlm-base"), "--cpus-per-task", "1"),
        needs=("run:iemocap-wavlm-base", "ray-head"),
        check="ablation",
        xfail=RAY_TOKEN,
        xfail_output=RAY_TOKEN_OUT,
        reason="joins the suite's Ray head; --cpus-per-task 1: two tasks at once on 2 cores",
    ),
    # ------------------------------------------------------------------------ export, predict
    Rule(
        r"metaser export runs/iemocap-wavlm-base -o models/wavlm-ser",
        needs=("run:iemocap-wavlm-base",),
        provides="model",
        check="model",
    ),
    Rule(
        r"metaser export runs/iemocap-wavlm-base -o models/wavlm-ser --onnx",
        needs=("run:iemocap-wavlm-base",),
        provides="onnx-model",
        check="onnx-model",
    ),
    Rule(r"metaser export-onnx models/wavlm-ser", needs=("model",), check="onnx-model"),
    Rule(
        r"metaser predict models/wavlm-ser call\.wav recordings/ --format json -o out\.json",
        needs=("model", "audio"),
        check="predictions",
    ),
    Rule(r"metaser predict models/wavlm-ser call\.wav --backend onnx", needs=("onnx-model", "audio")),
    Rule(
        r"from metaser import EmotionRecognizer\n.*",
        how="python",
        needs=("model", "audio"),
        reason="`array` is a placeholder: the suite defines it (1 s of noise at 8 kHz)",
    ),
    Rule(
        r'rec = EmotionRecognizer\.from_pretrained\("models/wavlm-ser", backend="onnx"\).*',
        how="python",
        needs=("onnx-model",),
        reason="the README's import comes first",
    ),
    # ---------------------------------------------------------------------------------- serve
    Rule(
        r"metaser serve models/wavlm-ser",
        how="background",
        append=("--port", "{port:serve}"),
        needs=("model",),
        provides="server",
        ready="http",
        check="server:serve",
        reason="port 8000 may be taken on a shared machine: a free one",
    ),
    Rule(
        r"metaser serve models/wavlm-ser --backend onnx --port 8080 --max-upload-mb 50 --max-seconds 600",
        how="background",
        subs=((r"--port 8080", "--port {port:serve-onnx}"),),
        needs=("onnx-model",),
        provides="server-onnx",
        ready="http",
        check="server:serve-onnx",
    ),
    Rule(
        r"metaser serve demo/model &",
        how="background",
        subs=((r" &$", " --port {port:serve-demo}"),),
        needs=("demo",),
        provides="server-demo",
        ready="http",
        check="server:serve-demo",
    ),
    Rule(
        r"curl (-F file=@call\.wav|--data-binary @call\.wav -H 'Content-Type: audio/wav') http://127\.0\.0\.1:8000/v1/predict",
        how="bash",
        subs=((r"127\.0\.0\.1:8000", "127.0.0.1:{port:serve}"),),
        needs=("server", "audio"),
        check="prediction-json",
    ),
    Rule(
        r"curl -s -F file=@demo/corpus/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000\.wav "
        r"http://127\.0\.0\.1:8000/v1/predict",
        how="bash",
        subs=((r"127\.0\.0\.1:8000", "127.0.0.1:{port:serve-demo}"),),
        needs=("server-demo",),
        check="prediction-json",
    ),
    Rule(
        r"METASER_SCREENSHOT_DIR=/tmp/shots \.venv/bin/python -m pytest tests/inference/test_browser\.py",
        how="bash",
        cwd="repo",
        subs=((r"\.venv/bin/python", "{python}"),),
        append=("-q", "-p", "no:cacheprovider"),
        reason="in the checkout; skipped inside when chromium is missing, as in the suite",
    ),
    # ----------------------------------------------------------------------------- benchmarks
    Rule(
        r"bash scripts/cpu-bench\.sh",
        how="skip",
        reason="about 20 minutes of base-size benchmarks on 2 cores with no knob to shrink them; each of its "
        "commands is shown in docs/benchmarks.md and runs shrunk there",
    ),
    Rule(
        r"bash scripts/gpu-bench\.sh",
        how="skip",
        reason="needs a CUDA GPU; its CPU check `SMOKE=1 bash scripts/gpu-bench.sh` runs",
    ),
    Rule(
        r"SMOKE=1 bash scripts/gpu-bench\.sh",
        how="bash",
        needs=("gpu-bench-manifest",),
        check="gpu-smoke",
        reason="the script prepares its corpus only when gpu-bench/manifest is missing: the 40-utterance one is there",
    ),
    Rule(
        r"metaser bench train configs/demo/tiny\.yaml data\.manifest=demo/manifest .*"
        r"--json bench/train-(tiny|base)\.json",
        append=(*BENCH, "model.encoder.name_or_path=tiny-wavlm"),
        needs=("demo-corpus",),
        check="bench-train",
        xfail=BENCH_JSON,
        xfail_output=r"FileNotFoundError: .*No such file or directory: 'bench/train-",
        reason="2 timed steps after 1, the tiny encoder, one thread (the timings are not checked)",
    ),
    Rule(
        r"python - <<'EOF'\n.*\nEOF",
        how="heredoc",
        subs=((r"base-random-wavlm", "tiny-wavlm"),),
        provides="bench-model",
        reason="the tiny encoder instead of the base-size one",
    ),
    Rule(r"metaser export-onnx /tmp/base", needs=("bench-model",), provides="bench-onnx"),
    Rule(r"metaser synth-demo /tmp/x/corpus", append=("--size", "20"), provides="bench-corpus"),
    Rule(
        r"FILES=\$\(find /tmp/x/corpus -name '\*\.wav' \| sort \| head -40\)",
        how="bash",
        needs=("bench-corpus",),
        provides="FILES",
        check="env:FILES",
    ),
    Rule(
        r"metaser bench infer (/tmp/base|bench/base-model) \$FILES .*",
        subs=((r"bench/base-model", "{ws}/tmp/base"), (r"bench/infer-base\.json", "{ws}/tmp/infer-base.json")),
        append=("--threads", "1"),
        needs=("bench-onnx", "FILES"),
        reason="bench/base-model is what scripts/cpu-bench.sh builds with the python shown in docs/benchmarks.md: "
        "that one (/tmp/base, tiny encoder); one thread (two spin-wait on a shared 2-core machine)",
    ),
    Rule(
        r"metaser bench serve /tmp/base \$\(echo \$FILES \| tr ' ' '\\n' \| head -16\) --clients 8 --requests 200 "
        r"--backend (onnx|torch)",
        append=("--requests", "16"),
        needs=("bench-onnx", "FILES"),
        reason="16 requests",
    ),
    Rule(
        r"metaser bench serve demo/model demo/corpus/Session1/sentences/wav/\*/\*\.wav --clients 8 --requests 32",
        append=("--requests", "16"),
        needs=("demo",),
        reason="16 requests",
    ),
)


def rule_for(text: str) -> list[Rule]:
    """The rules whose ``match`` covers the whole (normalised) command."""
    text = normalise(text)
    return [r for r in RULES if re.fullmatch(r.match, text, flags=re.S)]
