"""The ``metaser`` command line.

Exit codes: 0 success; 1 the command ran but some inputs failed (e.g. predict on a bad file);
2 usage or input error (bad config key, missing corpus directory, ...). Errors print one
clear message, never a traceback (set METASER_DEBUG=1 to see one).
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


def _prepare(name: str, root: Path, out: Path, strict: bool, **kw) -> None:
    from metaser.data.recipes import RECIPES

    RECIPES[name](root, out, strict=strict, console=console, **kw)
    console.print(f"[green]wrote[/] {out / 'cuts.jsonl.gz'} and {out / 'summary.json'}")


_root = click.argument("root", type=click.Path(path_type=Path))
_out = click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path),
                    help="Output directory for cuts.jsonl.gz and summary.json.")
_strict = click.option("--strict", is_flag=True, help="Fail on any missing/empty/corrupt audio file "
                       "instead of skipping it (skips are always listed in summary.json).")


@prepare.command("iemocap")
@_root
@_out
@_strict
def prepare_iemocap(root: Path, out: Path, strict: bool) -> None:
    """IEMOCAP_full_release: 4 classes (neu, hap+exc, ang, sad), 5 sessions."""
    _prepare("iemocap", root, out, strict)


@prepare.command("emodb")
@_root
@_out
@_strict
def prepare_emodb(root: Path, out: Path, strict: bool) -> None:
    """Berlin EmoDB: 7 classes, 10 speakers (folds grouped by speaker)."""
    _prepare("emodb", root, out, strict)


@prepare.command("ravdess")
@_root
@_out
@_strict
def prepare_ravdess(root: Path, out: Path, strict: bool) -> None:
    """RAVDESS audio-speech: 8 classes, 24 actors (folds grouped by speaker)."""
    _prepare("ravdess", root, out, strict)


@prepare.command("csv")
@click.argument("file", type=click.Path(path_type=Path))
@_out
@click.option("--audio-root", type=click.Path(path_type=Path), default=None,
              help="Directory that relative paths in the table are resolved against.")
@_strict
def prepare_csv(file: Path, out: Path, audio_root: Path | None, strict: bool) -> None:
    """Any corpus described by a CSV/TSV with `path` and `emotion` columns."""
    _prepare("csv", file, out, strict, audio_root=audio_root)


@main.command("synth-demo")
@click.argument("out_root", type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same corpus).")
@click.option("--size", default=None, type=int, help="Approximate number of utterances.")
def synth_demo(out_root: Path, seed: int, size: int | None) -> None:
    """Synthesize the offline demo corpus (eSpeak NG) in the IEMOCAP layout."""
    from metaser.data.synth import synthesize_demo_corpus

    kw = {} if size is None else {"size": size}
    synthesize_demo_corpus(out_root, seed=seed, console=console, **kw)


# -------------------------------------------------------------------------- training
def _load_run_config(config: Path, overrides: tuple[str, ...]):
    from metaser.config import load_config
    from metaser.training.config import RunConfig

    cfg = load_config(RunConfig, config, list(overrides))
    if not sys.stdout.isatty() and cfg.trainer.enable_progress_bar and os.environ.get("CI"):
        from metaser.config import apply_overrides

        cfg = apply_overrides(cfg, ["trainer.enable_progress_bar=false"])
    return cfg


_config = click.argument("config", type=click.Path(path_type=Path))
_overrides = click.argument("overrides", nargs=-1)
_resume = click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")


@main.command()
@_config
@_overrides
@click.option("--fold", "fold", type=int, default=1, show_default=True, help="Fold to train (1-based).")
@_resume
def train(config: Path, overrides: tuple[str, ...], fold: int, resume: bool) -> None:
    """Train one fold (stage 1 + stage 2) into runs/<name>/fold<K>/.

    OVERRIDES are dotted key=value pairs, e.g. stage1.epochs=5 model.fusion.layers=weighted_sum
    """
    from metaser.training.fold import fold_dir, train_fold

    cfg = _load_run_config(config, overrides)
    m = train_fold(cfg, fold, resume=resume)
    t = m["test"]
    console.print(f"fold {fold}: test UA {100 * t['ua']:.2f}  WA {100 * t['wa']:.2f}  -> {fold_dir(cfg, fold)}")


@main.command()
@_config
@_overrides
@_resume
def cv(config: Path, overrides: tuple[str, ...], resume: bool) -> None:
    """Cross-validate: every fold, both stages; writes results.json, report.md and plots."""
    from metaser.experiments.cv import run_cv, run_dir

    cfg = _load_run_config(config, overrides)

    def on_fold(k: int, n: int, m: dict | None) -> None:
        if m is None:
            console.rule(f"fold {k}/{n}")
        elif m.get("skipped"):
            console.print(f"fold {k}: already finished, skipped ({m['dir']})")
        else:
            console.print(f"fold {k}: test UA {100 * m['test']['ua']:.2f}  WA {100 * m['test']['wa']:.2f}")

    res = run_cv(cfg, resume=resume, on_fold=on_fold)
    if not res:  # an extra DDP process: rank 0 reports
        return
    _print_results(res)
    console.print(f"report: {run_dir(cfg) / 'report.md'}")


@main.command()
@_config
@_overrides
@click.option("--study", type=click.Choice(["modules", "fusion", "tasks"]), required=True,
              help="modules = Table II, fusion = Table III, tasks = Table IV.")
@_resume
def ablate(config: Path, overrides: tuple[str, ...], study: str, resume: bool) -> None:
    """Run one of the paper's ablation studies (each variant a full CV run)."""
    from metaser.experiments.ablation import run_ablation

    cfg = _load_run_config(config, overrides)
    summary = run_ablation(cfg, study, resume=resume,
                           on_variant=lambda v, i, n: console.rule(f"variant {i}/{n}: {v.label}"))
    if not summary:  # an extra DDP process: rank 0 reports
        return
    root = Path(cfg.output_dir) / cfg.name / f"ablate-{study}"
    console.print((root / "summary.md").read_text())
    console.print(f"summary: {root / 'summary.md'}  ({len(summary['variants'])} variants)")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def report(run_dir: Path) -> None:
    """Rebuild results.json, report.md and plots of a run from its saved results."""
    from metaser.experiments.report import write_report

    res = write_report(run_dir)
    _print_results(res)
    console.print(f"report: {run_dir / 'report.md'}")


def _print_results(res: dict) -> None:
    from rich.table import Table

    from metaser.experiments.report import TEST_COLUMNS, _pct

    cols = [(k, n) for k, n in TEST_COLUMNS if k in res["test"]]
    table = Table(title=f"{res['run']}: test folds, %")
    table.add_column("fold")
    table.add_column("test")
    for _, n in cols:
        table.add_column(n, justify="right")
    for f in res["folds"]:
        table.add_row(str(f["fold"]), str(f["test_group"]), *[_pct(f["test"].get(k)) for k, _ in cols])
    table.add_section()
    table.add_row("mean", "", *[_pct(res["test"][k]["mean"]) for k, _ in cols], style="bold")
    table.add_row("± std", "", *[_pct(res["test"][k]["std"]) for k, _ in cols], style="dim")
    console.print(table)
    console.print(f"[dim]{res['definitions']}[/]")


# ------------------------------------------------------------------------- inference
@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="Model directory to write.")
@click.option("--fold", type=int, default=None, help="Fold whose model to export (default: best validation UA).")
@click.option("--onnx", "onnx", is_flag=True, help="Also write model.onnx (checked against torch).")
@click.option("--opset", default=17, show_default=True, help="ONNX opset (with --onnx).")
def export(run_dir: Path, out: Path, fold: int | None, onnx: bool, opset: int) -> None:
    """Export a trained run's selected stage-2 model as a self-contained model directory."""
    from metaser.inference.export import export_model

    info = export_model(run_dir, out, fold=fold)
    console.print(f"[green]exported[/] fold {info['fold']} (valid UA {100 * info['valid_ua']:.2f}) -> {out}")
    if onnx:
        _export_onnx(out, opset)


def _export_onnx(model_dir: Path, opset: int) -> None:
    from metaser.inference.onnx_export import export_onnx

    e = export_onnx(model_dir, opset=opset)
    worst = max(v for k, v in e["parity"]["max_abs_diff"].items() if k.endswith("_probs") and k != "ctc_log_probs")
    console.print(f"[green]wrote[/] {model_dir / e['file']} (opset {e['opset']}; largest probability difference "
                  f"to torch {worst:.1e} over {len(e['parity']['cases'])} checks)")


@main.command("export-onnx")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--opset", default=17, show_default=True, help="ONNX opset.")
def export_onnx_cmd(model_dir: Path, opset: int) -> None:
    """Write MODEL_DIR/model.onnx for an exported model directory (checked against torch:
    two lengths and a padded batch, probabilities within 1e-4; a failing export is refused)."""
    _export_onnx(model_dir, opset)


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("audio", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), default=None,
              help="Write the results to this file instead of stdout.")
@click.option("--batch-size", default=8, show_default=True, help="Files per forward pass.")
@click.option("--max-seconds", default=30.0, show_default=True,
              help="Longer recordings are split into segments (silero-vad, else fixed windows).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... or auto.")
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True,
              help="onnx: run MODEL_DIR/model.onnx with onnxruntime (write it with `metaser export-onnx`).")
def predict(model_dir: Path, audio: tuple[Path, ...], fmt: str, output: Path | None, batch_size: int,
            max_seconds: float, device: str, backend: str) -> None:
    """Recognise emotion (and gender, style, transcript) in audio files or directories.

    \b
    Output per file (json):
      {"path": ..., "emotion": "ang", "probs": {"ang": 0.81, ...},
       "gender": "female", "gender_prob": 0.97, "style": "impro", "transcript": "...",
       "duration": 3.2, "segments": [...]}   or   {"path": ..., "error": "reason"}
    Exit code 1 if any file failed, 2 for a usage error.
    """
    from metaser.inference.predict import run_predict

    n_failed = run_predict(model_dir, list(audio), fmt=fmt, output=output, batch_size=batch_size,
                           max_seconds=max_seconds, device=device, backend=backend, console=console,
                           err_console=err_console)
    if n_failed:
        sys.exit(1)


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (loopback by default; for the internet put a TLS + auth proxy in front).")
@click.option("--port", default=8000, show_default=True)
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, ... or auto.")
@click.option("--max-upload-mb", default=50.0, show_default=True, help="Larger uploads get 413.")
@click.option("--max-seconds", default=600.0, show_default=True, help="Longer audio gets 422 (too_long).")
@click.option("--batch-size", default=8, show_default=True, help="Most requests per micro-batched forward.")
def serve(model_dir: Path, host: str, port: int, backend: str, device: str, max_upload_mb: float,
          max_seconds: float, batch_size: int) -> None:
    """HTTP service and web page: POST /v1/predict, GET /health, the page at /, API docs at /docs."""
    from metaser.inference.serve.app import ServeConfig, run_server

    run_server(model_dir, host=host, port=port, backend=backend, device=device, console=console,
               config=ServeConfig(max_upload_mb=max_upload_mb, max_seconds=max_seconds, batch_size=batch_size))


# ------------------------------------------------------------------------------ demo
@main.command()
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("demo"), show_default=True,
              help="Working directory for the corpus, manifest, runs and model.")
@click.option("--config", "config", type=click.Path(path_type=Path), default=None,
              help="Run config (default: the packaged tiny demo preset).")
@click.option("--seed", default=0, show_default=True)
@click.argument("overrides", nargs=-1)
def demo(out: Path, config: Path | None, seed: int, overrides: tuple[str, ...]) -> None:
    """The whole pipeline offline: synthesize, prepare, 5-fold two-stage training, export."""
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
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Also write figures here.")
def bench_train(config: Path, overrides: tuple[str, ...], steps: int, warmup: int, json_out: Path | None) -> None:
    """Training throughput (audio-s per wall-s), padding ratio, peak memory: tuned vs naive.

    \b
    naive = random order, fixed batches of 4, full autograd graph through the frozen CNN and
            layers, fp32, data in the main process
    tuned = the config's sampler (length buckets), frozen parts under no_grad, and on CUDA
            bf16 autocast, TF32 and fused Adam
    """
    from metaser.experiments.bench import bench_train as run

    cfg = _load_run_config(config, overrides)
    run(cfg, steps=steps, warmup=warmup, json_out=json_out, console=console)


@bench.command("infer")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("audio", nargs=-1, type=click.Path(path_type=Path))
@click.option("--backend", "backends", type=click.Choice(["torch", "onnx"]), multiple=True,
              help="Backend(s) to time (repeat the option; default: torch, and onnx when model.onnx exists).")
@click.option("--batch-sizes", default="1,2,4,8", show_default=True, help="Batch sizes tried per backend.")
@click.option("--threads", type=int, default=None, help="torch / onnxruntime intra-op threads (default: all cores).")
@click.option("--repeats", default=3, show_default=True, help="Timed passes (the median is reported).")
@click.option("--no-reference", is_flag=True, help="Skip the plain transformers forward of the encoder.")
@click.option("--int8", is_flag=True, help="Also time dynamic int8 quantisation of model.onnx (and its drift).")
@click.option("--onnx-opt", default="all", show_default=True,
              help="onnxruntime graph optimisation level(s) tried: disable, basic, extended, all (comma-separated).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def bench_infer(model_dir: Path, audio: tuple[Path, ...], backends: tuple[str, ...], batch_sizes: str,
                threads: int | None, repeats: int, no_reference: bool, int8: bool, onnx_opt: str,
                json_out: Path | None) -> None:
    """Real-time factor of predict per backend and batch size, beside a plain transformers forward."""
    from metaser.experiments.bench_infer import bench_infer as run

    sizes = [int(b) for b in batch_sizes.split(",") if b.strip()]
    run(model_dir, list(audio), backends=list(backends) or None, batch_sizes=sizes, threads=threads,
        repeats=repeats, reference=not no_reference, int8=int8, json_out=json_out, console=console,
        onnx_opt_levels=tuple(x.strip() for x in onnx_opt.split(",") if x.strip()))


@bench.command("serve")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("audio", nargs=-1, type=click.Path(path_type=Path))
@click.option("--clients", default=8, show_default=True, help="Concurrent clients.")
@click.option("--requests", "requests", default=200, show_default=True, help="Requests in all.")
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True)
@click.option("--port", default=0, help="Port for the server (0: a free one).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def bench_serve(model_dir: Path, audio: tuple[Path, ...], clients: int, requests: int, backend: str, port: int,
                json_out: Path | None) -> None:
    """Latency (p50 / p95), requests/s, errors and server RSS of `metaser serve` on loopback."""
    from metaser.experiments.bench_infer import bench_serve as run

    run(model_dir, list(audio), clients=clients, requests=requests, backend=backend, port=port,
        json_out=json_out, console=console)


if __name__ == "__main__":
    main()
