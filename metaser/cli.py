"""The ``metaser`` command line.

Exit codes: 0 success; 1 the command ran but some inputs failed (e.g. predict on a bad file);
2 usage or input error (bad config key, missing corpus directory, ...). Errors print one
clear message, never a traceback (set METASER_DEBUG=1 to see one).

Why one file of ~1100 lines: it holds only the click declarations (options, help texts) of
every command and hands each to a function in the layers below; read top to bottom it is the
command reference, and splitting it would scatter the shared options (--folds, --resume, the
launcher options) over several modules.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


class MetaserGroup(click.Group):
    """Turns MetaserError (and friends) into a message and an exit code."""

    def invoke(self, ctx: click.Context):
        from metaser.errors import MetaserError

        try:
            return super().invoke(ctx)
        except MetaserError as e:
            if os.environ.get("METASER_DEBUG"):
                raise
            from rich.markup import escape

            # Messages hold paths and user values: no markup ("[old]" would vanish) and no hard
            # line breaks inside them (rich wraps at 80 columns off a tty).
            err_console.print(f"[bold red]error:[/] {escape(e.message)}", soft_wrap=True)
            if e.hint:
                err_console.print(f"[dim]hint:[/] {escape(e.hint)}", soft_wrap=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/] (an interrupted training run continues with --resume)")
            sys.exit(130)


@click.group(cls=MetaserGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="metaser")
def main() -> None:
    """metaser: metadata-enhanced speech emotion recognition (ARI + co-attention, two stages).

    \b
    Typical flow:
      metaser demo                                   # everything, offline, synthetic corpus
      metaser prepare iemocap IEMOCAP_full_release -o data/iemocap
      metaser cv configs/iemocap/wavlm-base.yaml data.manifest=data/iemocap
      metaser export runs/wavlm-base -o models/wavlm-ser
      metaser predict models/wavlm-ser my_audio.wav
    """


# --------------------------------------------------------------------------- prepare
@main.group(cls=MetaserGroup)
def prepare() -> None:
    """Turn a corpus into a lhotse manifest (OUT/cuts.jsonl.gz + OUT/summary.json)."""


def _prepare(name: str, root: Path, out: Path, strict: bool, min_duration: float | None, **kw) -> None:
    from metaser.data.recipes import RECIPES
    from metaser.data.summary import print_summary

    result = RECIPES[name](root, out, strict=strict, min_duration=min_duration, **kw)
    print_summary(result.summary, console)
    console.print(f"[green]wrote[/] {result.cuts_path} and {result.summary_path}")


_root = click.argument("root", type=click.Path(path_type=Path))
_out = click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output directory for cuts.jsonl.gz and summary.json.",
)
_strict = click.option(
    "--strict",
    is_flag=True,
    help="Fail on any missing/empty/corrupt audio file "
    "instead of skipping it (skips are always listed in summary.json).",
)
_min_duration = click.option(
    "--min-duration",
    type=click.FloatRange(min=0.0),
    default=None,
    metavar="SECONDS",
    help="Drop clips shorter than this (listed in summary.json with reason too_short; never "
    "fails --strict). Default 0.03125 s: the CNN's 400-sample receptive field / 0.8, the "
    "shortest TDSA factor, at 16 kHz. 0 keeps every clip.",
)


@prepare.command("iemocap")
@_root
@_out
@click.option(
    "--self-evaluations",
    is_flag=True,
    help="Also count the actors' own categorical lines (C-F*, C-M*) in the vote fields "
    "vote_ang/vote_hap/vote_neu/vote_sad (by default only the evaluators' C-E* lines).",
)
@_strict
@_min_duration
def prepare_iemocap(root: Path, out: Path, self_evaluations: bool, strict: bool, min_duration: float | None) -> None:
    """IEMOCAP_full_release: 4 classes (neu, hap+exc, ang, sad), 5 sessions, annotator votes."""
    _prepare("iemocap", root, out, strict, min_duration, self_evaluations=self_evaluations)


@prepare.command("emodb")
@_root
@_out
@_strict
@_min_duration
def prepare_emodb(root: Path, out: Path, strict: bool, min_duration: float | None) -> None:
    """Berlin EmoDB: 7 classes, 10 speakers (folds grouped by speaker)."""
    _prepare("emodb", root, out, strict, min_duration)


@prepare.command("ravdess")
@_root
@_out
@_strict
@_min_duration
def prepare_ravdess(root: Path, out: Path, strict: bool, min_duration: float | None) -> None:
    """RAVDESS audio-speech: 8 classes, 24 actors (folds grouped by speaker)."""
    _prepare("ravdess", root, out, strict, min_duration)


@prepare.command("csv")
@click.argument("file", type=click.Path(path_type=Path))
@_out
@click.option(
    "--audio-root",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory that relative paths in the table are resolved against.",
)
@click.option(
    "--regression",
    "regression",
    default="",
    metavar="COL[,COL...]",
    help="Columns stored as numbers (floats) in the manifest, e.g. valence,arousal: a task whose "
    "values are numbers is trained as regression. A cell that is not a number is an error; an "
    "empty cell leaves the field absent.",
)
@click.option(
    "--encoding",
    default="utf-8",
    show_default=True,
    help="Text encoding of the table (a UTF-8 byte-order mark is skipped), e.g. latin-1, cp1252.",
)
@click.option(
    "--allow-duplicate-audio",
    is_flag=True,
    help="Accept the same audio file under two ids (an error by default: it could be in a "
    "training and a test part at once).",
)
@click.option(
    "--allow-speaker-overlap",
    is_flag=True,
    help="Accept a speaker in two sessions or two folds (an error by default: session- or "
    "fold-grouped folds would test on speakers seen in training).",
)
@_strict
@_min_duration
def prepare_csv(
    file: Path,
    out: Path,
    audio_root: Path | None,
    regression: str,
    encoding: str,
    allow_duplicate_audio: bool,
    allow_speaker_overlap: bool,
    strict: bool,
    min_duration: float | None,
) -> None:
    """Any corpus described by a CSV/TSV with `path` and `emotion` columns."""
    _prepare(
        "csv",
        file,
        out,
        strict,
        min_duration,
        audio_root=audio_root,
        regression=[c for c in regression.split(",") if c.strip()],
        encoding=encoding,
        allow_duplicate_audio=allow_duplicate_audio,
        allow_speaker_overlap=allow_speaker_overlap,
    )


_audio_root_required = click.option(
    "--audio-root",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder holding the corpus' audio (EmoBox's downloads/<corpus>/ part of each path is "
    "replaced by it; a file not found there is looked up by its name anywhere under it).",
)


@prepare.command("emobox")
@_root
@_audio_root_required
@_out
@_strict
@_min_duration
def prepare_emobox(root: Path, audio_root: Path, out: Path, strict: bool, min_duration: float | None) -> None:
    """One corpus folder of EmoBox's data/ (e.g. EmoBox/data/emodb) with EmoBox's folds.

    \b
    Each cut records its EmoBox test fold in the field `fold` (and `valid_fold` where the corpus
    has valid files); train with data.split.group_by=fold to use exactly these folds.
    """
    _prepare("emobox", root, out, strict, min_duration, audio_root=audio_root)


@prepare.command("emobox-track2")
@click.argument("file", type=click.Path(path_type=Path))
@_audio_root_required
@_out
@_strict
@_min_duration
def prepare_emobox_track2(file: Path, audio_root: Path, out: Path, strict: bool, min_duration: float | None) -> None:
    """An EmoBox track-2 (cross-corpus) balanced test list: wav_filename, label, speaker."""
    _prepare("emobox-track2", file, out, strict, min_duration, audio_root=audio_root)


@main.command("synth-demo")
@click.argument("out_root", type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same corpus).")
@click.option("--size", default=None, type=int, help="Approximate number of utterances.")
def synth_demo(out_root: Path, seed: int, size: int | None) -> None:
    """Synthesize the offline demo corpus (eSpeak NG) in the IEMOCAP layout."""
    from metaser.experiments.demo.corpus import synthesize_demo_corpus

    kw = {} if size is None else {"size": size}
    report = synthesize_demo_corpus(out_root, seed=seed, progress=console.print, **kw)
    console.print(report.summary())


# -------------------------------------------------------------------------- training
def _load_run_config(config: Path, overrides: tuple[str, ...], *, check_source: bool = True):
    """The run config of a training command; also quiets Lightning for this process.

    ``check_source=False`` for commands that only print a plan: a plan needs no weights.
    """
    from metaser.config import load_config
    from metaser.models.encoder.source import check_encoder_source
    from metaser.training.config import RunConfig
    from metaser.training.trainer import quiet_lightning

    quiet_lightning()
    cfg = load_config(RunConfig, config, list(overrides))
    if check_source:
        check_encoder_source(cfg.model.encoder.name_or_path)  # before anything trains: one clear error
    if not sys.stdout.isatty() and cfg.trainer.enable_progress_bar and os.environ.get("CI"):
        from metaser.config import apply_overrides

        cfg = apply_overrides(cfg, ["trainer.enable_progress_bar=false"])
    return cfg


_config = click.argument("config", type=click.Path(path_type=Path))
_overrides = click.argument("overrides", nargs=-1)
_resume = click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")


def _int_list(ctx, param, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated fold numbers like 1,3, got {value!r}") from None
    if not out or min(out) < 1:
        raise click.BadParameter(f"{value!r}: fold numbers start at 1")
    return out


_folds = click.option(
    "--folds",
    "folds",
    default=None,
    callback=_int_list,
    metavar="K[,K...]",
    help="Run only these folds (1-based), e.g. --folds 1,2.",
)


def _task_line(task, res) -> None:
    """One line per finished task: variant, fold, stage, its key metric and its time."""
    from metaser.launch.report import format_done

    if res.ok and task.label.get("stage") == "done":
        console.print(f"fold {task.label.get('fold')}: already finished, skipped ({task.label.get('variant')})")
        return
    reused = " (reused)" if res.ok and (res.result or {}).get("reused") else ""
    console.print(format_done(task, res) + reused, soft_wrap=True)


def _launcher_options(f):
    """--launcher / --ray-address / --gpus-per-task / --cpus-per-task (build one with _make_launcher)."""
    for option in reversed(
        [
            click.option(
                "--launcher",
                type=click.Choice(["local", "ray"]),
                default="local",
                show_default=True,
                help="local: every task in this process, one after the other. ray: each task a Ray task, "
                "as many at once as the cluster's GPUs/CPUs allow (pip install 'metaser[ray]').",
            ),
            click.option(
                "--ray-address",
                default=None,
                metavar="ADDRESS",
                help="Join this Ray cluster ('auto', or host:port); left out, a local Ray instance starts. "
                "Outputs must live on a filesystem every worker sees.",
            ),
            click.option(
                "--gpus-per-task",
                type=click.FloatRange(min=0),
                default=None,
                help="GPUs each Ray task requests  [default: 1 when the cluster has GPUs, else 0]",
            ),
            click.option(
                "--cpus-per-task",
                type=click.FloatRange(min=0),
                default=1.0,
                show_default=True,
                help="CPUs each Ray task requests.",
            ),
        ]
    ):
        f = option(f)
    return f


def _make_launcher(launcher: str, ray_address: str | None, gpus_per_task: float | None, cpus_per_task: float):
    from metaser.launch import make_launcher

    return make_launcher(launcher, ray_address=ray_address, gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task)


@main.command()
@_config
@_overrides
@click.option("--fold", "fold", type=int, default=1, show_default=True, help="Fold to train (1-based).")
@_resume
def train(config: Path, overrides: tuple[str, ...], fold: int, resume: bool) -> None:
    """Train one fold (stage 1 + stage 2) into runs/<name>/fold<K>/.

    OVERRIDES are dotted key=value pairs, e.g. stage1.epochs=5 model.fusion.layers=weighted_sum
    """
    from metaser.training.fold import fold_dir
    from metaser.training.fold_run import train_fold

    cfg = _load_run_config(config, overrides)
    m = train_fold(cfg, fold, resume=resume)
    t = m["test"]
    console.print(f"fold {fold}: test UA {100 * t['ua']:.2f}  WA {100 * t['wa']:.2f}  -> {fold_dir(cfg, fold)}")


@main.command()
@_config
@_overrides
@_folds
@_launcher_options
@_resume
def cv(
    config: Path,
    overrides: tuple[str, ...],
    folds: list[int] | None,
    launcher: str,
    ray_address: str | None,
    gpus_per_task: float | None,
    cpus_per_task: float,
    resume: bool,
) -> None:
    """Cross-validate: every fold, every stage; writes results.json, report.md and plots.

    Exit code 1 if a task failed (the finished folds' results are still written).
    """
    from metaser.experiments.cv import run_cv, run_dir
    from metaser.experiments.tables import print_results

    cfg = _load_run_config(config, overrides)
    with _make_launcher(launcher, ray_address, gpus_per_task, cpus_per_task) as runner:
        res = run_cv(cfg, resume=resume, folds=folds, launcher=runner, on_done=_task_line)
    if not res:  # an extra DDP process: rank 0 reports
        return
    print_results(res, console)
    console.print(f"report: {run_dir(cfg) / 'report.md'}")


@main.command()
@_config
@_overrides
@click.option(
    "--study",
    type=click.Choice(["modules", "fusion", "tasks", "all"]),
    required=True,
    help="modules = Table II, fusion = Table III, tasks = Table IV, all = the three, each distinct stage trained once.",
)
@click.option(
    "--plan",
    "show_plan",
    is_flag=True,
    help="Train nothing: print the variants, their stages (losses, frozen layers, epochs, keys) "
    "and the paper's figures as JSON.",
)
@click.option("--only", default=None, metavar="SLUG[,SLUG...]", help="Run only these variants of the study.")
@_folds
@click.option("--no-reuse", is_flag=True, help="Train every variant's stages itself, even those it shares.")
@_launcher_options
@_resume
def ablate(
    config: Path,
    overrides: tuple[str, ...],
    study: str,
    show_plan: bool,
    only: str | None,
    folds: list[int] | None,
    no_reuse: bool,
    launcher: str,
    ray_address: str | None,
    gpus_per_task: float | None,
    cpus_per_task: float,
    resume: bool,
) -> None:
    """Run one of the paper's ablation studies (each variant a full CV run)."""
    import json

    from metaser.experiments.ablation import plan, run_ablation, study_root

    cfg = _load_run_config(config, overrides + (("reuse=false",) if no_reuse else ()), check_source=not show_plan)
    only_list = [s.strip() for s in only.split(",") if s.strip()] if only else None
    if show_plan:
        click.echo(json.dumps(plan(cfg, study, only_list), indent=2))
        return
    with _make_launcher(launcher, ray_address, gpus_per_task, cpus_per_task) as runner:
        summary = run_ablation(
            cfg, study, resume=resume, only=only_list, folds=folds, launcher=runner, on_done=_task_line
        )
    if not summary:  # an extra DDP process: rank 0 reports
        return
    for st in summary["studies"] if study == "all" else {study: summary}:
        root = study_root(cfg, st)
        console.print((root / "summary.md").read_text())
        n = len((summary["studies"][st] if study == "all" else summary)["variants"])
        console.print(f"summary: {root / 'summary.md'}  ({n} variants)")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def report(run_dir: Path) -> None:
    """Rebuild results.json, report.md and plots of a run from its saved results."""
    from metaser.experiments.report import write_report
    from metaser.experiments.tables import print_results

    res = write_report(run_dir)
    print_results(res, console)
    console.print(f"report: {run_dir / 'report.md'}")


# --------------------------------------------------------------------- across corpora
_label_map = click.option(
    "--label-map",
    "label_map",
    default=None,
    metavar="FILE",
    help="YAML of corpus label -> common label (default: names to neu/hap/ang/sad, the rest dropped and counted; "
    "'default+exc' also maps excited to hap).",
)


def _print_evaluation(res: dict) -> None:
    from rich.table import Table

    t = Table(title=f"{res['corpus']}: {res['num_utterances']} utterances, classes {', '.join(res['classes'])}")
    for col in ("UA %", "WA %", "macro-F1 %"):
        t.add_column(col, justify="right")
    t.add_row(*(f"{100 * res[k]:.2f}" for k in ("ua", "wa", "macro_f1")))
    console.print(t)
    cm = Table(title="confusion (rows = reference)")
    cm.add_column("")
    for c in res["classes"]:
        cm.add_column(c, justify="right")
    for c, row in zip(res["classes"], res["confusion"]):
        cm.add_row(c, *map(str, row))
    console.print(cm)
    if res["dropped"] or res["failed"]:
        console.print(f"dropped by the label map: {res['dropped'] or 'none'}; failed: {res['failed'] or 'none'}")


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("manifest", type=click.Path(path_type=Path))
@_label_map
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Also write the figures here.")
@click.option("--batch-size", default=8, show_default=True, help="Files per forward pass.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, ... or auto.")
def evaluate(
    model_dir: Path, manifest: Path, label_map: str | None, json_out: Path | None, batch_size: int, device: str
) -> None:
    """Score a trained model on any prepared corpus: UA, WA, macro-F1 and the confusion matrix over
    the common classes of a label map (model and corpus labels both mapped)."""
    from metaser.experiments.crosscorpus import evaluate_model
    from metaser.rundir import write_json_atomic

    res = evaluate_model(model_dir, manifest, label_map=label_map, batch_size=batch_size, device=device)
    _print_evaluation(res)
    if json_out:
        write_json_atomic(res, json_out)
        console.print(f"wrote {json_out}")


@main.command()
@_config
@_overrides
@click.option(
    "--train",
    "train_manifest",
    required=True,
    type=click.Path(path_type=Path),
    help="The corpus to train on (a prepared manifest); a validation part is held out for selection.",
)
@click.option(
    "--test",
    "test_manifests",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="A corpus to test on (repeat the option).",
)
@_label_map
@click.option("--json", "json_out", required=True, type=click.Path(path_type=Path), help="Write the matrix here.")
@_resume
def cross(
    config: Path,
    overrides: tuple[str, ...],
    train_manifest: Path,
    test_manifests: tuple[Path, ...],
    label_map: str | None,
    json_out: Path,
    resume: bool,
) -> None:
    """Train on one corpus, test on others: the matrix train corpus x test corpus (UA / WA / macro-F1),
    every corpus relabelled to the common classes of a label map."""
    from metaser.experiments.crosscorpus import render_matrix, run_cross
    from metaser.rundir import write_json_atomic

    cfg = _load_run_config(config, overrides)
    out = run_cross(cfg, train_manifest, list(test_manifests), label_map=label_map, resume=resume)
    console.print(render_matrix(out), markup=False)
    write_json_atomic(out, json_out)
    console.print(f"wrote {json_out}")


@main.command("paper-tables")
@click.argument("run_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--encoder-as",
    "encoder_as",
    multiple=True,
    metavar="NAME=ENCODER",
    help="Place runs of encoder NAME (model.encoder.name_or_path) in the column of ENCODER (wav2vec2, hubert, "
    "wavlm), e.g. tiny-wavlm=wavlm. Such runs are not the paper's encoder: they get no Δ. Repeatable.",
)
@click.option(
    "--compare",
    type=click.Choice(["mean", "pooled"]),
    default="mean",
    show_default=True,
    help="Which of ours Δ uses: the mean over folds or the figure pooled over all folds' test utterances.",
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Also write the numbers here.")
@click.option(
    "-o", "--out", "md_out", type=click.Path(path_type=Path), default=None, help="Also write the Markdown here."
)
def paper_tables(
    run_dirs: tuple[Path, ...], encoder_as: tuple[str, ...], compare: str, json_out: Path | None, md_out: Path | None
) -> None:
    """The paper's Tables I-IV with your runs beside them, Δ, and the paper's recomputed prose figures.

    RUN_DIRS: `metaser cv` run folders, ablate-<study>/ folders, or the folder holding them
    (`--study all`). Each run is placed by its saved config; the runs that cannot be placed are
    listed with the reason. With no RUN_DIR: the paper's own figures and analyses.
    """
    import json

    from metaser.experiments.paper_render import render
    from metaser.experiments.paper_runs import parse_encoder_as
    from metaser.experiments.paper_tables import build_paper_tables

    doc = build_paper_tables(run_dirs, encoder_as=parse_encoder_as(encoder_as), compare=compare)
    md = render(doc)
    click.echo(md, nl=False)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    if md_out is not None:
        md_out.parent.mkdir(parents=True, exist_ok=True)
        md_out.write_text(md)


# ----------------------------------------------------------------------------- sweep
@main.command()
@_config
@_overrides
@click.option(
    "--param",
    "params",
    multiple=True,
    required=True,
    metavar="KEY=V1,V2[,...]",
    help="A config key and its values (YAML: 0.1 is a number, true a bool); repeat for a grid.",
)
@click.option(
    "--select",
    default="valid.ua",
    show_default=True,
    metavar="valid.METRIC",
    help="Validation metric (mean over folds) that picks the best trial; test.* is refused.",
)
@_folds
@_launcher_options
@_resume
def sweep(
    config: Path,
    overrides: tuple[str, ...],
    params: tuple[str, ...],
    select: str,
    folds: list[int] | None,
    launcher: str,
    ray_address: str | None,
    gpus_per_task: float | None,
    cpus_per_task: float,
    resume: bool,
) -> None:
    """Grid of config values, each trial a CV run; the best is chosen on validation only.

    \b
    Writes <output_dir>/<name>/sweep/<trial>/ (each trial's CV run) and sweep/summary.json, summary.md.
    Exit code 1 if a trial failed (the summary still lists every trial).
    Example, the paper's per-encoder auxiliary weights:
      metaser sweep configs/iemocap/wavlm-base.yaml --param aux_tasks.asr=0.1,0.3,1,3 \\
          --param aux_tasks.gender=0.1,1 --select valid.ua
    """
    from metaser.experiments.sweep import parse_params, parse_select, run_sweep, sweep_root
    from metaser.launch.report import format_done, render_summary

    parse_select(select)
    grid = parse_params(params)
    cfg = _load_run_config(config, overrides)
    with _make_launcher(launcher, ray_address, gpus_per_task, cpus_per_task) as runner:
        _, tasks, results = run_sweep(
            cfg,
            grid,
            select=select,
            launcher=runner,
            folds=folds,
            resume=resume,
            on_done=lambda t, r: console.print(format_done(t, r)),
        )
    console.print(render_summary(tasks, results, title="sweep trials"))
    root = sweep_root(cfg)
    console.print((root / "summary.md").read_text(), markup=False)
    console.print(f"summary: {root / 'summary.json'}")
    if not all(r.ok for r in results.values()):
        sys.exit(1)


# ------------------------------------------------------------------------- inference
def _int8_options(fn):
    """--int8, --calib, --min-agreement, --int8-method (export and export-onnx)."""
    fn = click.option(
        "--int8-method",
        type=click.Choice(["static", "dynamic"]),
        default="static",
        show_default=True,
        help="static: calibrated int8 of the CNN, positional conv and linear layers; "
        "dynamic: linear layers only, ranges per forward.",
    )(fn)
    fn = click.option(
        "--min-agreement",
        type=float,
        default=0.99,
        show_default=True,
        help="Refuse the int8 graph when its labels agree with fp32 on fewer of the calibration files (any head).",
    )(fn)
    fn = click.option(
        "--calib",
        type=click.Path(path_type=Path),
        default=None,
        help="Calibration audio (directory) for --int8 (default: the run's validation files of the exported fold).",
    )(fn)
    return click.option(
        "--int8",
        "int8",
        is_flag=True,
        help="Also write model.int8.onnx (onnxruntime int8), kept only when it agrees with fp32 (--min-agreement).",
    )(fn)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="Model directory to write.")
@click.option("--fold", type=int, default=None, help="Fold whose model to export (default: best validation UA).")
@click.option("--onnx", "onnx", is_flag=True, help="Also write model.onnx (checked against torch).")
@click.option("--opset", default=17, show_default=True, help="ONNX opset (with --onnx).")
@_int8_options
def export(
    run_dir: Path,
    out: Path,
    fold: int | None,
    onnx: bool,
    opset: int,
    int8: bool,
    calib: Path | None,
    min_agreement: float,
    int8_method: str,
) -> None:
    """Export a trained run's selected stage-2 model as a self-contained model directory.

    \b
    --int8 (implies --onnx) also writes model.int8.onnx for `--backend onnx-int8`: it measures label
    agreement with fp32 on every head over the exported fold's validation files (or --calib DIR),
    records it under "int8" in config.json, and refuses (exit 2, no file written) below --min-agreement.
    """
    from metaser.inference.export import export_model

    info = export_model(run_dir, out, fold=fold)
    console.print(f"[green]exported[/] fold {info['fold']} (valid UA {100 * info['valid_ua']:.2f}) -> {out}")
    if onnx or int8:
        _export_onnx(out, opset)
    if int8:
        _export_int8(out, calib, min_agreement, int8_method)


def _export_onnx(model_dir: Path, opset: int) -> None:
    from metaser.inference.onnx_export import export_onnx

    e = export_onnx(model_dir, opset=opset)
    worst = max(v for k, v in e["parity"]["max_abs_diff"].items() if k.endswith("_probs") and k != "ctc_log_probs")
    console.print(
        f"[green]wrote[/] {model_dir / e['file']} (opset {e['opset']}; largest probability difference "
        f"to torch {worst:.1e} over {len(e['parity']['cases'])} checks)"
    )


def _export_int8(model_dir: Path, calib: Path | None, min_agreement: float, method: str) -> None:
    from metaser.inference.quantize import calibration_for, describe, export_int8

    if (model_dir / "model" / "config.json").is_file() and not (model_dir / "config.json").is_file():
        model_dir = model_dir / "model"
    cal = calibration_for(model_dir, calib)
    console.print(f"[dim]int8: calibrating and checking on {len(cal)} files ({cal.description}) ...[/]")
    e = export_int8(model_dir, cal, min_agreement=min_agreement, method=method)
    console.print(f"[green]wrote[/] {model_dir / e['file']} ({describe(e)})")


@main.command("export-onnx")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--opset", default=17, show_default=True, help="ONNX opset.")
@_int8_options
def export_onnx_cmd(
    model_dir: Path, opset: int, int8: bool, calib: Path | None, min_agreement: float, int8_method: str
) -> None:
    """Write MODEL_DIR/model.onnx for an exported model directory (checked against torch:
    two lengths and a padded batch, probabilities within 1e-4; a failing export is refused).

    \b
    --int8 also writes model.int8.onnx (see `metaser export --help`); calibration audio: --calib DIR,
    or the validation files of the run the directory was exported from (its export.json).
    """
    _export_onnx(model_dir, opset)
    if int8:
        _export_int8(model_dir, calib, min_agreement, int8_method)


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("audio", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the results to this file instead of stdout.",
)
@click.option("--batch-size", default=8, show_default=True, help="Files per forward pass.")
@click.option(
    "--max-seconds",
    default=30.0,
    show_default=True,
    help="Longer recordings are split into segments (silero-vad, else fixed windows).",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... or auto.")
@click.option(
    "--backend",
    type=click.Choice(["torch", "onnx", "onnx-int8"]),
    default="torch",
    show_default=True,
    help="onnx: run MODEL_DIR/model.onnx with onnxruntime (write it with `metaser export-onnx`); "
    "onnx-int8: MODEL_DIR/model.int8.onnx (`metaser export-onnx --int8`).",
)
def predict(
    model_dir: Path,
    audio: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    batch_size: int,
    max_seconds: float,
    device: str,
    backend: str,
) -> None:
    """Recognise emotion (and gender, style, transcript) in audio files or directories.

    \b
    Output per file (json):
      {"path": ..., "emotion": "ang", "probs": {"ang": 0.81, ...},
       "gender": "female", "gender_prob": 0.97, "style": "impro", "transcript": "...",
       "duration": 3.2, "segments": [...]}   or   {"path": ..., "error": "reason"}
    Exit code 1 if any file failed, 2 for a usage error.
    """
    from metaser.inference.predict import run_predict

    n_failed = run_predict(
        model_dir,
        list(audio),
        fmt=fmt,
        output=output,
        batch_size=batch_size,
        max_seconds=max_seconds,
        device=device,
        backend=backend,
        console=console,
        err_console=err_console,
    )
    if n_failed:
        sys.exit(1)


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind (loopback by default; for the internet put a TLS + auth proxy in front).",
)
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--backend",
    type=click.Choice(["torch", "onnx", "onnx-int8"]),
    default="torch",
    show_default=True,
    help="onnx: MODEL_DIR/model.onnx; onnx-int8: MODEL_DIR/model.int8.onnx (`metaser export-onnx --int8`).",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, ... or auto.")
@click.option("--max-upload-mb", default=50.0, show_default=True, help="Larger uploads get 413.")
@click.option("--max-seconds", default=600.0, show_default=True, help="Longer audio gets 422 (too_long).")
@click.option("--batch-size", default=8, show_default=True, help="Most pieces (files, segments, windows) per forward.")
@click.option(
    "--batch-seconds",
    default=10.0,
    show_default=True,
    help="Most audio seconds per forward: bounds how long any request waits behind one forward.",
)
@click.option("--no-access-log", is_flag=True, help="No access log line per request.")
def serve(
    model_dir: Path,
    host: str,
    port: int,
    backend: str,
    device: str,
    max_upload_mb: float,
    max_seconds: float,
    batch_size: int,
    batch_seconds: float,
    no_access_log: bool,
) -> None:
    """HTTP service and web page: POST /v1/predict, WS /v1/stream, GET /health, the page at /, API docs at /docs."""
    from metaser.inference.serve.app import ServeConfig
    from metaser.inference.serve.server import run_server

    run_server(
        model_dir,
        host=host,
        port=port,
        backend=backend,
        device=device,
        console=console,
        config=ServeConfig(
            max_upload_mb=max_upload_mb,
            max_seconds=max_seconds,
            batch_size=batch_size,
            batch_seconds=batch_seconds,
            access_log=not no_access_log,
        ),
    )


# ------------------------------------------------------------------------------ demo
@main.command()
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=Path("demo"),
    show_default=True,
    help="Working directory for the corpus, manifest, runs and model.",
)
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    default=None,
    help="Run config (default: the packaged tiny demo preset).",
)
@click.option("--seed", default=0, show_default=True)
@click.argument("overrides", nargs=-1)
def demo(out: Path, config: Path | None, seed: int, overrides: tuple[str, ...]) -> None:
    """The whole pipeline offline: synthesize, prepare, 5-fold two-stage training, export.

    \b
    For figures that agree across CPUs as far as torch allows, the demo pins the CPU kernels
    before torch loads: ATEN_CPU_CAPABILITY=avx2 and MKL_CBWR=AVX2 (unless already set).
    """
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
    os.environ.setdefault("MKL_CBWR", "AVX2")
    from metaser.experiments.demo import run_demo

    run_demo(out, config=config, seed=seed, overrides=list(overrides), console=console)


# ----------------------------------------------------------------------------- bench
@main.group(cls=MetaserGroup)
def bench() -> None:
    """Benchmarks: training throughput (tuned vs naive) and inference speed."""


@bench.command("train")
@_config
@_overrides
@click.option("--steps", default=20, show_default=True, help="Timed optimizer steps per mode and stage.")
@click.option("--warmup", default=3, show_default=True, help="Untimed steps first.")
@click.option(
    "--modes",
    default="reference,tuned",
    show_default=True,
    help="Comma-separated: reference, tuned, tuned-nocache, tuned-eager.",
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Also write figures here.")
def bench_train(
    config: Path, overrides: tuple[str, ...], steps: int, warmup: int, modes: str, json_out: Path | None
) -> None:
    """Training throughput (audio-s per wall-s), padding, peak memory: tuned vs reference.

    \b
    reference = the SpeechBrain-recipe loop: fixed batches of 4 in random order, fp32, frozen parts
                requires_grad=False, speed perturbation in the loop, data in the main process
    tuned     = exactly what `metaser train` runs for this config (bucketed batches, the exact
                frozen-prefix feature cache, SDPA, the config's precision)
    """
    from metaser.bench.train import bench_train as run

    cfg = _load_run_config(config, overrides)
    run(
        cfg,
        steps=steps,
        warmup=warmup,
        json_out=json_out,
        console=console,
        modes=tuple(m.strip() for m in modes.split(",") if m.strip()),
    )


@bench.command("infer")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("audio", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--backend",
    "backends",
    type=click.Choice(["torch", "onnx", "onnx-int8"]),
    multiple=True,
    help="Backend(s) to time (repeat the option; default: torch, and onnx / onnx-int8 when model.onnx / "
    "model.int8.onnx exist).",
)
@click.option("--batch-sizes", default="1,2,4,8", show_default=True, help="Batch sizes tried per backend.")
@click.option(
    "--threads",
    default=None,
    help="torch / onnxruntime intra-op thread counts, comma-separated (default: all cores, then 1).",
)
@click.option("--repeats", default=3, show_default=True, help="Timed passes (the median is reported).")
@click.option("--no-reference", is_flag=True, help="Skip the plain transformers forward of the encoder.")
@click.option(
    "--int8", is_flag=True, help="Also time int8 copies of model.onnx made here by every method (static, dynamic)."
)
@click.option(
    "--onnx-opt",
    default="all",
    show_default=True,
    help="onnxruntime graph optimisation level(s) tried: disable, basic, extended, all (comma-separated).",
)
@click.option(
    "--onnx-spin",
    default="on",
    show_default=True,
    help="onnxruntime intra-op thread spinning tried: on, off (comma-separated).",
)
@click.option(
    "--onnx-apart",
    is_flag=True,
    help="Also time the onnx backends with a batch's files run apart, one per thread (single-threaded sessions).",
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def bench_infer(
    model_dir: Path,
    audio: tuple[Path, ...],
    backends: tuple[str, ...],
    batch_sizes: str,
    threads: str | None,
    repeats: int,
    no_reference: bool,
    int8: bool,
    onnx_opt: str,
    onnx_spin: str,
    onnx_apart: bool,
    json_out: Path | None,
) -> None:
    """Real-time factor of predict per backend, thread count and batch size, beside a plain transformers forward."""
    from metaser.bench.infer import bench_infer as run

    def ints(text: str, what: str) -> list[int]:
        try:
            return [int(b) for b in text.split(",") if b.strip()]
        except ValueError:
            raise click.BadParameter(f"comma-separated integers, got {text!r}", param_hint=what) from None

    run(
        model_dir,
        list(audio),
        backends=list(backends) or None,
        batch_sizes=ints(batch_sizes, "--batch-sizes"),
        threads=ints(threads, "--threads") if threads else None,
        repeats=repeats,
        reference=not no_reference,
        int8=int8,
        json_out=json_out,
        console=console,
        onnx_opt_levels=tuple(x.strip() for x in onnx_opt.split(",") if x.strip()),
        onnx_spin=tuple(x.strip() for x in onnx_spin.split(",") if x.strip()),
        onnx_apart=onnx_apart,
    )


@bench.command("serve")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("audio", nargs=-1, type=click.Path(path_type=Path))
@click.option("--clients", default=8, show_default=True, help="Concurrent clients.")
@click.option("--requests", "requests", default=200, show_default=True, help="Requests in all (timed).")
@click.option("--warmup", default=None, type=int, help="Untimed requests first (default: 2 x --clients).")
@click.option(
    "--long",
    "long",
    type=click.Path(path_type=Path),
    default=None,
    help="A long recording uploaded again and again while the short requests are timed.",
)
@click.option("--long-clients", default=1, show_default=True, help="Clients uploading --long concurrently.")
@click.option(
    "--max-rss-growth",
    type=float,
    default=None,
    help="Fail when the server's RSS grows by more than this fraction after the warm-up (0.05: 5 %).",
)
@click.option("--backend", type=click.Choice(["torch", "onnx", "onnx-int8"]), default="torch", show_default=True)
@click.option("--port", default=0, help="Port for the server (0: a free one).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def bench_serve(
    model_dir: Path,
    audio: tuple[Path, ...],
    clients: int,
    requests: int,
    warmup: int | None,
    long: Path | None,
    long_clients: int,
    max_rss_growth: float | None,
    backend: str,
    port: int,
    json_out: Path | None,
) -> None:
    """Latency (p50 / p95), requests/s, errors and server RSS of `metaser serve` on loopback."""
    from metaser.bench.serve import bench_serve as run

    run(
        model_dir,
        list(audio),
        clients=clients,
        requests=requests,
        warmup=warmup,
        long=long,
        long_clients=long_clients,
        max_rss_growth=max_rss_growth,
        backend=backend,
        port=port,
        json_out=json_out,
        console=console,
    )


if __name__ == "__main__":
    main()
