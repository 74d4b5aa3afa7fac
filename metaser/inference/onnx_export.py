"""``metaser export-onnx``: write ``model.onnx`` beside a model directory's safetensors.

The graph takes ``waveforms`` (B, S) float32 zero-padded 16 kHz audio and ``lengths`` (B,)
int64, and returns ``emotion_probs`` (B, C) (not for a regression main task), one
``<task>_probs`` (B, C_k) per classification task (gender, style, ...), one ``<task>_values``
(B,) per regression head (valence, arousal, ...: the aux heads and a regression main task, whose
value wins when it is an aux task too) and, for a model with an ASR head, ``ctc_log_probs``
(B, T, V+1) with ``ctc_lengths`` (B,). Batch, sample and frame axes are dynamic.

Exporter: torch's TorchScript-based ``torch.onnx.export(..., dynamo=False)``, on the eval-mode
model under ``torch.no_grad``. (The dynamo exporter stops at the encoder's data-dependent check
that no utterance is shorter than the receptive field; the recognizer checks that before the
forward anyway.) WavLM's relative position bias and the encoder's frozen-prefix grad hooks trace
to plain graph ops.

Every export is checked against torch before it is kept: two single inputs of different lengths
and one zero-padded batch of three, all probabilities within ``atol`` (1e-4). A failing export
is deleted and refused with :class:`OnnxExportError`. ``config.json`` then records
``"onnx": {"file", "opset", "exporter", "inputs", "outputs", "parity"}``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from metaser.constants import SAMPLE_RATE
from metaser.errors import MetaserError

__all__ = [
    "OnnxExportError",
    "export_onnx",
    "check_parity",
    "DEFAULT_OPSET",
    "ONNX_NAME",
    "PARITY_ATOL",
]

ONNX_NAME = "model.onnx"
DEFAULT_OPSET = 17
PARITY_ATOL = 1e-4


class OnnxExportError(MetaserError):
    """The ONNX graph could not be written, or it disagrees with the torch model."""


def _wrapper(model):
    """The model as a module returning a flat tuple (what the exporter needs), with output names."""
    import torch

    cls_tasks = [t.name for t in model.tasks if t.kind == "classification"]
    main = model.main_task if model.main_regression else None
    reg_tasks = [t.name for t in model.tasks if t.kind == "regression" and t.name != main]
    has_ctc = any(t.kind == "ctc" for t in model.tasks)
    names = [f"{main}_values" if main else "emotion_probs"] + [f"{n}_probs" for n in cls_tasks]
    names += [f"{n}_values" for n in reg_tasks]
    if has_ctc:
        names += ["ctc_log_probs", "ctc_lengths"]

    class Exported(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor):
            o = self.m.infer(waveforms, lengths)  # batch-independent, as the torch backend
            outs = [o.main_value.float() if main else torch.softmax(o.emotion_logits.float(), -1)]  # (B,) / (B, C)
            outs += [torch.softmax(o.task_logits[n].float(), -1) for n in cls_tasks]  # (B, C_k)
            outs += [o.task_values[n].float() for n in reg_tasks]  # (B,)
            if has_ctc:
                outs += [o.ctc_log_probs.float(), o.ctc_lengths]  # (B, T, V+1), (B,)
            return tuple(outs)

    return Exported(model).eval(), names


def _probe_batches(min_samples: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two single inputs of different lengths and a zero-padded batch of three (float32, int64)."""
    rng = np.random.default_rng(seed)

    def sig(n: int) -> np.ndarray:
        t = np.arange(n) / SAMPLE_RATE
        x = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) * (1 + np.sin(2 * np.pi * 3 * t))
        return (x + 0.02 * rng.standard_normal(n)).astype(np.float32)

    out = []
    for n in (int(0.7 * SAMPLE_RATE), int(1.9 * SAMPLE_RATE)):
        out.append((sig(n)[None], np.array([n], dtype=np.int64)))
    lens = [int(1.6 * SAMPLE_RATE), int(0.9 * SAMPLE_RATE), max(min_samples, int(0.3 * SAMPLE_RATE))]
    wav = np.zeros((3, max(lens)), dtype=np.float32)  # (B, S)
    for j, n in enumerate(lens):
        wav[j, :n] = sig(n)
    out.append((wav, np.array(lens, dtype=np.int64)))
    return out


def check_parity(model, onnx_file: str | Path, *, atol: float = PARITY_ATOL) -> dict[str, Any]:
    """Run torch and onnxruntime on :func:`_probe_batches`; return ``{"max_abs_diff": {output:
    float}, "cases": [...], "atol", "ok"}``. Probabilities must agree within ``atol``; CTC
    log-probabilities (on valid frames) within ``100 * atol``; lengths exactly."""
    import onnxruntime as ort
    import torch

    wrapped, names = _wrapper(model)
    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    worst: dict[str, float] = {n: 0.0 for n in names}
    cases = []
    ok = True
    for wav, lens in _probe_batches(model.encoder.min_samples):
        with torch.inference_mode():
            ref = [t.numpy() for t in wrapped(torch.from_numpy(wav), torch.from_numpy(lens))]
        got = sess.run(names, {"waveforms": wav, "lengths": lens})
        cases.append({"batch": int(wav.shape[0]), "lengths": [int(n) for n in lens]})
        for name, r, g in zip(names, ref, got):
            if r.shape != g.shape:
                ok = False
                worst[name] = float("inf")
                continue
            if name == "ctc_lengths":
                d = float(np.abs(r.astype(np.int64) - g.astype(np.int64)).max())
                ok &= d == 0
            elif name == "ctc_log_probs":
                valid = np.arange(r.shape[1])[None, :] < ref[names.index("ctc_lengths")][:, None]  # (B, T)
                d = float(np.abs(r - g)[valid].max()) if valid.any() else 0.0
                ok &= d <= 100 * atol
            else:
                d = float(np.abs(r - g).max())
                ok &= d <= atol
            worst[name] = max(worst[name], d)
    return {"ok": bool(ok), "atol": atol, "max_abs_diff": worst, "cases": cases}


def export_onnx(
    model_dir: str | Path, *, opset: int = DEFAULT_OPSET, atol: float = PARITY_ATOL, out_name: str = ONNX_NAME
) -> dict[str, Any]:
    """Export ``model_dir``'s model to ``model_dir/out_name``, check it, record it in config.json.

    Returns the ``"onnx"`` entry written to config.json. Raises :class:`OnnxExportError` when the
    exporter fails or the parity check does not pass (no ONNX file is left behind then).
    """
    import torch

    from metaser.models.factory import load_ser_model
    from metaser.models.saved import SavedModelConfig
    from metaser.models.saved import model_dir as resolve_model_dir

    model_dir = resolve_model_dir(model_dir)
    saved = SavedModelConfig.read(model_dir)
    model = load_ser_model(model_dir, map_location="cpu", saved=saved).eval()
    wrapped, names = _wrapper(model)
    dst = model_dir / out_name
    tmp = model_dir / f".{out_name}.tmp"
    wav, lens = _probe_batches(model.encoder.min_samples)[2]
    dyn = {"waveforms": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}}
    for n in names:
        dyn[n] = {0: "batch", 1: "frames"} if n == "ctc_log_probs" else {0: "batch"}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side checks
            torch.onnx.export(
                wrapped,
                (torch.from_numpy(wav), torch.from_numpy(lens)),
                str(tmp),
                input_names=["waveforms", "lengths"],
                output_names=names,
                dynamic_axes=dyn,
                opset_version=int(opset),
                dynamo=False,
                do_constant_folding=True,
            )
    except Exception as e:  # the exporter raises many types
        tmp.unlink(missing_ok=True)
        raise OnnxExportError(
            f"{model_dir}: ONNX export failed ({type(e).__name__}: {e})",
            hint=f"try another --opset (default {DEFAULT_OPSET})",
        ) from None
    parity = check_parity(model, tmp, atol=atol)
    if not parity["ok"]:
        tmp.unlink(missing_ok=True)
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in parity["max_abs_diff"].items())
        raise OnnxExportError(
            f"{model_dir}: the ONNX graph disagrees with the torch model beyond "
            f"{atol:g} (max abs differences: {diffs}); no model.onnx written"
        )
    os.replace(tmp, dst)
    entry = {
        "file": out_name,
        "opset": int(opset),
        "exporter": "torch.onnx (TorchScript)",
        "torch_version": torch.__version__,
        "inputs": ["waveforms", "lengths"],
        "outputs": names,
        "dynamic_axes": dyn,
        "parity": parity,
    }
    saved.extras["onnx"] = entry
    saved.write(model_dir)
    return entry
