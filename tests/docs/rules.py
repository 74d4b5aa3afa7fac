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
command without a rule. Add a ``Rule`` below (the exported model's commands: export, predict,
serve and the benchmarks, in ``tests/docs/rules_serve.py``) whose ``match`` (a regular
expression, matched against the whole command with its whitespace collapsed) covers it.
"""

from __future__ import annotations

import re

from tests.docs.rule import (
    DDP,
    DEMO,
    FAST,
    HUB,
    HUB_REPLICA,
    TRAIN,
    Rule,
    normalise,
    replica,
)
from tests.docs.rules_serve import SERVE_RULES

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
        r"metaser synth-demo IEMOCAP_full_release --size 40",
        provides="iemocap-corpus",
        check="corpus:IEMOCAP_full_release",
        reason="the stand-in every IEMOCAP command of the docs reads (README's /path/to/IEMOCAP_full_release too)",
    ),
    Rule(
        r"metaser prepare iemocap IEMOCAP_full_release -o data/iemocap",
        needs=("iemocap-corpus",),
        check="manifest:data/iemocap",
    ),
    Rule(
        r"metaser prepare iemocap IEMOCAP_full_release -o data/iemocap-self --self-evaluations",
        needs=("iemocap-corpus",),
        check="manifest:data/iemocap-self",
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
        r"metaser prepare ravdess Audio_Speech_Actors_01-24 -o data/ravdess",
        needs=("ravdess-actors",),
        check="manifest:data/ravdess",
    ),
    Rule(
        r"metaser prepare csv my_corpus\.tsv -o data/mine --audio-root /data/audio",
        needs=("csv-corpus",),
        check="manifest:data/mine",
    ),
    Rule(
        r"metaser prepare csv my_corpus\.csv -o data/mine --audio-root audio --regression valence,arousal",
        needs=("csv-regression",),
        check="numeric:data/mine:valence,arousal",
    ),
    Rule(
        r"metaser prepare csv export_cp1252\.csv -o data/old --encoding cp1252",
        needs=("csv-cp1252",),
        check="cp1252:data/old",
    ),
    Rule(
        r"metaser prepare emobox EmoBox/data/emodb --audio-root downloads/emodb -o data/emobox-emodb",
        needs=("emobox-emodb",),
        provides="emobox-emodb-manifest",
        check="manifest:data/emobox-emodb",
    ),
    Rule(
        r"metaser prepare emobox-track2 EmoBox/data/track2/RAVDESS_selected_balenced\.jsonl "
        r"--audio-root downloads/ravdess -o data/track2-ravdess",
        needs=("emobox-track2",),
        provides="track2-ravdess-manifest",
        check="manifest:data/track2-ravdess",
    ),
    Rule(
        r"metaser evaluate models/wavlm-ser data/track2-ravdess --json eval-ravdess\.json",
        needs=("model", "track2-ravdess-manifest"),
        reason="the exported IEMOCAP stand-in model scored on the track-2 stand-in through the default label map",
    ),
    Rule(
        r"metaser cross configs/emodb/tiny\.yaml --train data/emodb --test data/track2-ravdess --json cross\.json",
        append=DEMO,
        needs=("emodb-manifest", "track2-ravdess-manifest"),
        reason="one epoch per stage, two batches (cross has no folds)",
    ),
    Rule(
        r"metaser prepare emobox EmoBox/data/iemocap --audio-root IEMOCAP_full_release -o data/emobox-iemocap",
        needs=("emobox-iemocap",),
        provides="emobox-iemocap-manifest",
        check="manifest:data/emobox-iemocap",
    ),
    Rule(
        r"from metaser\.data\.labelmap import load_label_map\n.*",
        how="python",
        needs=("emodb-manifest",),
        reason="the stand-in EmoDB has the 4 classes only: nothing is dropped (the real one drops 196 files)",
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
        r"metaser cv configs/emodb/tiny\.yaml data\.manifest=data/emobox-emodb/cuts\.jsonl\.gz "
        r"data\.split\.group_by=fold",
        append=(*TRAIN, "name=emobox-emodb"),
        needs=("emobox-emodb-manifest",),
        check="run:emobox-emodb",
        reason="EmoBox's fold 1, in a run of its own (name=emobox-emodb): runs/emodb-tiny is the EmoDB recipe's",
    ),
    Rule(
        r"metaser cv configs/emobox/frozen-wavlm-base\.yaml",
        append=(*TRAIN, replica("wavlm-base")),
        needs=("emobox-iemocap-manifest", "replicas"),
        check="run:emobox-frozen-wavlm-base",
    ),
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
        r"metaser cv configs/iemocap/wavlm-base\.yaml ('aux_tasks=\{gender: 1\.0, speaker: 1\.0, style: 1\.0, "
        r"asr: 1\.0, arousal: 1\.0\}' name=iemocap-wavlm-base-aux-arousal|"
        r"main_task=arousal name=iemocap-wavlm-base-arousal|"
        r"emotion_target=soft name=iemocap-wavlm-base-soft)",
        append=(*TRAIN, replica("wavlm-base")),
        needs=("iemocap-manifest", "replicas"),
        reason="arousal as an aux task, as the main task, and soft emotion targets, on the wavlm-base replica",
    ),
    Rule(
        r"metaser cv configs/iemocap/wav2vec2-base\.yaml",
        subs=(HUB_REPLICA,),
        append=TRAIN,
        needs=("iemocap-manifest", "replicas"),
        check="run:iemocap-wav2vec2-base",
    ),
    Rule(
        r"metaser cv configs/iemocap/hubert-base\.yaml",
        subs=(HUB_REPLICA,),
        append=TRAIN,
        needs=("iemocap-manifest", "replicas"),
        provides="run:iemocap-hubert-base",
        check="run:iemocap-hubert-base",
    ),
    Rule(
        rf"metaser cv configs/iemocap/({HUB})\.yaml model\.encoder\.name_or_path=/models/\1",
        append=TRAIN,
        needs=("iemocap-manifest", "replicas"),
        check="run:iemocap-*",
    ),
    Rule(
        rf"metaser cv configs/iemocap/({HUB})\.yaml {re.escape(FAST)}",
        subs=(HUB_REPLICA,),
        append=(*TRAIN, "name=fast"),
        needs=("iemocap-manifest", "replicas"),
        check="run:fast",
        reason="the preset's fast mode on its replica, in a run of its own (name=fast)",
    ),
    Rule(
        r"metaser cv configs/iemocap/wavlm-base\.yaml (stage1\.epochs=50 model\.fusion\.layers=weighted_sum )?"
        r"trainer\.devices=4 trainer\.strategy=ddp trainer\.precision=bf16-mixed",
        how="bash",
        append=(*TRAIN, replica("wavlm-base"), "trainer.devices=2", "name=ddp"),
        needs=("iemocap-manifest", "replicas"),
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
        r"metaser ablate configs/iemocap/wavlm-base\.yaml --study (modules|fusion|all)",
        append=(*TRAIN, replica("wavlm-base")),
        needs=("run:iemocap-wavlm-base",),
        check="ablation",
        reason="in the README's order, in one work dir: shared stages are reused as the README says",
    ),
    Rule(
        r"metaser ablate configs/iemocap/wavlm-base\.yaml --study tasks",
        append=(*TRAIN, replica("wavlm-base")),
        needs=("run:iemocap-wavlm-base",),
        provides="ablate-tasks",
        check="ablation",
        reason="as the other studies; docs/paper.md places its runs",
    ),
    Rule(r"metaser report runs/iemocap-wavlm-base", needs=("run:iemocap-wavlm-base",), check="report"),
    Rule(r"metaser paper-tables --json paper\.json", check="paper-json:paper.json"),
    Rule(r"metaser paper-tables runs/iemocap-wavlm-base", needs=("run:iemocap-wavlm-base",)),
    Rule(
        r"metaser paper-tables runs/iemocap-wavlm-base/ablate-tasks runs/iemocap-hubert-base -o paper-tables\.md "
        r"--json paper-tables\.json",
        needs=("ablate-tasks", "run:iemocap-hubert-base"),
        check="paper-json:paper-tables.json:2",
    ),
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
        reason="joins the suite's Ray head; --cpus-per-task 1: two tasks at once on 2 cores",
    ),
    *SERVE_RULES,
)


def rule_for(text: str) -> list[Rule]:
    """The rules whose ``match`` covers the whole (normalised) command."""
    text = normalise(text)
    return [r for r in RULES if re.fullmatch(r.match, text, flags=re.S)]
