"""``--int8``: an int8 copy of ``model.onnx``, kept only when it gives the fp32 graph's answers.

Methods:

* ``static`` (default; :mod:`metaser.inference.int8_graph`): the encoder's CNN convolutions
  (all but the waveform one) as int8 taps with per-frame input ranges, its positional
  convolution as ``QLinearConv`` and its linear layers as ``MatMulIntegerToFloat``, both with
  fixed input ranges (min / max over up to :data:`RANGE_FILES` calibration files). Weights int8
  per output channel. Norms, GELU, attention products and the heads stay fp32. No range
  depends on the batch, so a file's answer does not depend on the files batched with it.
* ``dynamic``: the encoder's linear layers only, with onnxruntime's ``quantize_dynamic``
  (activation ranges computed per forward over the whole batch). No calibration needed, but
  slower (the CNN stays fp32) and an answer can depend on the batch.

The guard: both graphs run on every calibration file, one at a time. Label agreement (argmax)
is measured per head (emotion and each classification task) together with the largest
probability difference. Below ``min_agreement`` on any head the int8 graph is deleted and
:class:`Int8Refused` is raised with the numbers; otherwise ``config.json`` gets an ``"int8"``
entry with them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from metaser.errors import MetaserError
from metaser.inference.calibration import CalibrationSet

__all__ = [
    "INT8_NAME",
    "METHODS",
    "DEFAULT_METHOD",
    "DEFAULT_MIN_AGREEMENT",
    "RANGE_FILES",
    "Int8Refused",
    "quantize_int8",
    "compare_graphs",
    "export_int8",
    "calibration_for",
    "describe",
]

INT8_NAME = "model.int8.onnx"
METHODS = ("static", "dynamic")
DEFAULT_METHOD = "static"
DEFAULT_MIN_AGREEMENT = 0.99
RANGE_FILES = 32  # calibration files whose activation ranges set the static scales


class Int8Refused(MetaserError):
    """The int8 graph disagrees with fp32 on the calibration set more than allowed."""


def _range_items(calibration: CalibrationSet, n: int = RANGE_FILES) -> list[np.ndarray]:
    """At most ``n`` items, evenly spread over the set."""
    idx = np.unique(np.linspace(0, len(calibration) - 1, num=min(n, len(calibration))).round().astype(int))
    return [calibration.audio[i] for i in idx]


@contextlib.contextmanager
def _quiet():
    """onnxruntime.quantization logs its advice (pre-processing) through the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(
    src: str | Path, dst: str | Path, *, method: str = DEFAULT_METHOD, calibration: CalibrationSet | None = None
) -> dict[str, Any]:
    """Write the int8 graph of ``src`` to ``dst``; returns ``{"method", "quantized": {kind: count}}``.

    ``static`` needs ``calibration`` (:data:`RANGE_FILES` of its files, evenly spread, set the ranges).
    """
    import onnx

    from metaser.inference.int8_graph import collect_ranges, plan_int8, rewrite_static

    if method not in METHODS:
        raise MetaserError(f"--int8-method: {method!r} is not one of {', '.join(METHODS)}")
    model = onnx.load(str(src))
    plan = plan_int8(model)
    if method == "dynamic":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _quiet():
            quantize_dynamic(
                str(src),
                str(dst),
                weight_type=QuantType.QInt8,
                nodes_to_quantize=plan.matmul,
                op_types_to_quantize=["MatMul"],
            )
        return {"method": "dynamic", "quantized": {"linear": len(plan.matmul)}}
    if calibration is None or not len(calibration):
        raise MetaserError("static int8 quantisation needs calibration audio", hint="give --calib DIR")
    ranges = collect_ranges(model, plan, _range_items(calibration))
    onnx.save(rewrite_static(model, plan, ranges), str(dst))
    return {"method": "static", "quantized": plan.counts()}


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def compare_graphs(fp32: str | Path, int8: str | Path, calibration: CalibrationSet) -> dict[str, Any]:
    """Run both graphs on every item (batch 1); returns ``{"agreement": {head: fraction},
    "agree": {head: count}, "max_abs_diff": float, "max_abs_diff_per_head": {head: float}}``.

    Heads: ``emotion`` and every classification task (the graph's ``<head>_probs`` outputs).
    """
    a, b = _session(Path(fp32)), _session(Path(int8))
    heads = [o.name for o in a.get_outputs() if o.name.endswith("_probs") and o.name != "ctc_log_probs"]
    agree = {h: 0 for h in heads}
    diff = {h: 0.0 for h in heads}
    for x in calibration.audio:
        feed = {"waveforms": x[None], "lengths": np.array([x.shape[0]], dtype=np.int64)}
        for h, p, q in zip(heads, a.run(heads, feed), b.run(heads, feed)):
            agree[h] += int(p[0].argmax() == q[0].argmax())
            diff[h] = max(diff[h], float(np.abs(p - q).max()))
    n = max(len(calibration), 1)
    name = {h: h[: -len("_probs")] for h in heads}
    return {
        "agreement": {name[h]: round(agree[h] / n, 6) for h in heads},
        "agree": {name[h]: agree[h] for h in heads},
        "max_abs_diff": max(diff.values(), default=0.0),
        "max_abs_diff_per_head": {name[h]: diff[h] for h in heads},
    }


def _describe(check: dict[str, Any], n: int) -> str:
    heads = ", ".join(f"{h} {v:.3f} ({check['agree'][h]}/{n})" for h, v in check["agreement"].items())
    return f"label agreement {heads}; max |Δp| {check['max_abs_diff']:.2e}"


def export_int8(
    model_dir: str | Path,
    calibration: CalibrationSet,
    *,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    method: str = DEFAULT_METHOD,
    src: str = "model.onnx",
) -> dict[str, Any]:
    """Quantise ``model_dir/src`` into ``model_dir/model.int8.onnx`` and guard it (see the module doc).

    Returns the ``"int8"`` entry written to ``config.json``. Raises :class:`Int8Refused` (exit
    code 2) when agreement on a head is below ``min_agreement``: then no int8 file is left in
    the directory (an earlier one is removed too) and ``config.json`` has no ``"int8"`` entry.
    """
    import onnxruntime

    from metaser.models.saved import SavedModelConfig
    from metaser.models.saved import model_dir as resolve_model_dir

    model_dir = resolve_model_dir(model_dir)
    if not min_agreement >= 0.0:
        raise MetaserError(f"--min-agreement must be >= 0, got {min_agreement}")
    fp32 = model_dir / src
    if not fp32.is_file():
        raise MetaserError(
            f"{model_dir}: no {src} to quantise", hint=f"write it with `metaser export-onnx {model_dir}`"
        )
    if not len(calibration):
        raise MetaserError(f"{calibration.description}: no calibration audio", hint="give --calib DIR")
    dst = model_dir / INT8_NAME
    tmp = model_dir / f".{INT8_NAME}.tmp"
    try:
        info = quantize_int8(fp32, tmp, method=method, calibration=calibration)
        check = compare_graphs(fp32, tmp, calibration)
    except MetaserError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as e:  # onnxruntime raises its own types
        tmp.unlink(missing_ok=True)
        raise MetaserError(f"{model_dir}: int8 quantisation failed ({type(e).__name__}: {e})") from None
    n = len(calibration)
    low = {h: v for h, v in check["agreement"].items() if v < min_agreement}
    saved = SavedModelConfig.read(model_dir)
    if low:
        tmp.unlink(missing_ok=True)
        had = dst.is_file()
        dst.unlink(missing_ok=True)
        if saved.extras.pop("int8", None) is not None:
            saved.write(model_dir)
        raise Int8Refused(
            f"int8 refused: {_describe(check, n)} against fp32 on {n} files ({calibration.description}); "
            f"below --min-agreement {min_agreement:g} on {', '.join(low)}. No {INT8_NAME} written"
            + (" (the earlier one was removed)." if had else "."),
            hint="use the fp32 graph (--backend onnx), try --int8-method dynamic, or lower --min-agreement",
        )
    os.replace(tmp, dst)
    entry = {
        "file": INT8_NAME,
        "source": src,
        **info,
        "calibration": {
            **calibration.summary(),
            "range_files": min(RANGE_FILES, n) if info["method"] == "static" else 0,
        },
        "agreement": check["agreement"],
        "max_abs_diff": check["max_abs_diff"],
        "max_abs_diff_per_head": check["max_abs_diff_per_head"],
        "min_agreement": min_agreement,
        "onnxruntime_version": onnxruntime.__version__,
    }
    saved.extras["int8"] = entry
    saved.write(model_dir)
    return entry


def calibration_for(model_dir: str | Path, calib: str | Path | None = None) -> CalibrationSet:
    """``calib`` (a directory of audio files), else the validation part of the fold the model
    directory was exported from (``export.json``)."""
    from metaser.inference.calibration import directory_set, run_of_model, validation_set

    if calib is not None:
        return directory_set(calib)
    fold = run_of_model(model_dir)
    if fold is None:
        raise MetaserError(
            f"{model_dir}: no calibration audio for --int8 (no export.json naming a run directory that still exists)",
            hint="give calibration audio with --calib DIR",
        )
    return validation_set(fold)


def describe(entry: dict[str, Any]) -> str:
    """One line about an ``"int8"`` entry, for the console."""
    n = entry["calibration"]["size"]
    heads = ", ".join(f"{h} {v:.3f}" for h, v in entry["agreement"].items())
    return (
        f"{entry['method']}; label agreement with fp32 {heads}; max |Δp| {entry['max_abs_diff']:.1e} "
        f"on {n} files ({entry['calibration']['description']})"
    )
