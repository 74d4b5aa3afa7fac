"""Where the forward pass runs: torch (the saved ``MetaSERModel``) or onnxruntime (``model.onnx``).

Both backends take one zero-padded batch, ``wav`` (B, S) float32 and ``lens`` (B,) int64, and
return numpy arrays: ``"emotion"`` (B, C) probabilities (absent when the main task is a
regression), one ``"<task>"`` (B, C_k) entry per classification task, one ``"<task>_values"``
(B,) entry per regression head (aux or main; a main task that is an aux task too gives the main
head's value), and for a model with a CTC head ``"ctc_ids"`` (B, T) greedy labels with
``"ctc_lengths"`` (B,) valid frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from metaser.errors import ConfigError, MetaserError

__all__ = ["BACKENDS", "ONNX_FILES", "resolve_device", "TorchBackend", "OnnxBackend", "onnx_providers"]

BACKENDS = ("torch", "onnx", "onnx-int8")
#: the file each onnxruntime backend runs, in the model directory
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
ONNX_OPT_LEVELS = ("disable", "basic", "extended", "all")


def resolve_device(device: str | None = "auto"):
    """``auto`` -> cuda when available, else cpu. Raises ConfigError for unknown or absent devices."""
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"--device: unknown device {device!r} ({e})", hint="cpu, cuda, cuda:1, mps or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available here", hint="use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {device}: MPS is not available here", hint="use --device cpu or auto")
    return dev


class TorchBackend:
    """The model (an SERModel) in eval mode under ``torch.inference_mode``, run batch-independent
    (``SERModel.infer``)."""

    name = "torch"

    def __init__(self, model, device):
        import torch

        self.device = device if isinstance(device, torch.device) else torch.device(device)
        self.model = model.to(self.device).eval()

    def run(self, wav: np.ndarray, lens: np.ndarray) -> dict[str, Any]:
        import torch

        with torch.inference_mode():
            w = torch.from_numpy(wav).to(self.device)  # (B, S)
            n = torch.from_numpy(lens).to(self.device)  # (B,)
            res = self.model.infer(w, n)  # every utterance as if alone: batching changes no answer
            out: dict[str, Any] = {}
            if res.emotion_logits is not None:
                out["emotion"] = torch.softmax(res.emotion_logits.float(), -1).cpu().numpy()  # (B, C)
            out.update(
                {
                    k: torch.softmax(v.float(), -1).cpu().numpy()  # (B, C_k)
                    for k, v in (res.task_logits or {}).items()
                }
            )
            out.update({f"{k}_values": v.float().cpu().numpy() for k, v in (res.task_values or {}).items()})  # (B,)
            if res.main_value is not None:
                out[f"{self.model.main_task}_values"] = res.main_value.float().cpu().numpy()  # (B,)
            if getattr(res, "ctc_log_probs", None) is not None:
                out["ctc_ids"] = res.ctc_log_probs.argmax(dim=-1).cpu().numpy()  # (B, T)
                out["ctc_lengths"] = res.ctc_lengths.cpu().numpy()  # (B,)
        return out


def onnx_providers(device: str | None) -> list[str]:
    """onnxruntime providers for ``device``: CPU unless CUDA is asked for (``cuda``, ``cuda:N``)
    and onnxruntime's CUDA provider is installed; ``auto`` takes CUDA only when it is installed."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    dev = (device or "auto").lower()
    if dev.startswith("cuda"):
        if "CUDAExecutionProvider" not in have:
            raise ConfigError(
                f"--device {device}: onnxruntime here has no CUDA provider ({', '.join(have)})",
                hint="install onnxruntime-gpu, or use --device cpu",
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if dev == "auto" and "CUDAExecutionProvider" in have:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if dev not in ("auto", "cpu"):
        raise ConfigError(f"--device {device}: the onnx backend runs on cpu or cuda", hint="use --device cpu")
    return ["CPUExecutionProvider"]


class OnnxBackend:
    """``model.onnx`` (or ``model.int8.onnx``) in an onnxruntime session.

    threads: intra-op threads (None: onnxruntime's default, one per core); optimization: the
    graph optimisation level (``disable``, ``basic``, ``extended``, ``all``); name: what
    :attr:`EmotionRecognizer.backend_name` reports (``onnx``, ``onnx-int8``); spin: whether idle
    intra-op threads spin-wait (None: onnxruntime's default, yes).

    files_at_once: with N > 1, the session runs single-threaded and a batch's utterances run N at
    a time, each alone (unpadded) on its own thread, instead of one padded forward spread over
    ``threads`` threads. Same answers as one at a time; on a CPU it trades the intra-op
    threads' synchronisation for independent work. Batches of one run single-threaded.
    """

    def __init__(
        self,
        onnx_file: str | Path,
        *,
        device: str | None = "cpu",
        threads: int | None = None,
        optimization: str = "all",
        name: str = "onnx",
        spin: bool | None = None,
        files_at_once: int = 1,
    ):
        import onnxruntime as ort

        if optimization not in ONNX_OPT_LEVELS:
            raise ConfigError(f"onnx optimization: {optimization!r} is not one of {', '.join(ONNX_OPT_LEVELS)}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[optimization]
        self.files_at_once = max(1, int(files_at_once))
        if self.files_at_once > 1:
            opts.intra_op_num_threads = 1
        elif threads:
            opts.intra_op_num_threads = int(threads)
        if spin is not None:  # idle intra-op threads spin (onnxruntime's default) or sleep
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        opts.log_severity_level = 3  # errors only
        self.name = name
        self.providers = onnx_providers(device)
        try:
            self.session = ort.InferenceSession(str(onnx_file), sess_options=opts, providers=self.providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise MetaserError(
                f"cannot load {onnx_file}: {type(e).__name__}: {e}",
                hint="re-export it with `metaser export-onnx MODEL_DIR`" + (" --int8" if "int8" in name else ""),
            ) from None
        self.device = "cuda" if self.providers[0].startswith("CUDA") else "cpu"
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, wav: np.ndarray, lens: np.ndarray) -> dict[str, Any]:
        if self.files_at_once > 1 and wav.shape[0] > 1:
            return self._run_apart(wav, lens)
        res = dict(zip(self.outputs, self.session.run(None, {"waveforms": wav, "lengths": lens})))
        out: dict[str, Any] = {}
        for name, v in res.items():
            if name == "ctc_log_probs":
                out["ctc_ids"] = v.argmax(axis=-1)  # (B, T)
            elif name == "ctc_lengths":
                out["ctc_lengths"] = v  # (B,)
            elif name.endswith("_probs"):
                out[name[: -len("_probs")]] = v  # (B, C) / (B, C_k)
            elif name.endswith("_values"):
                out[name] = v  # (B,)
        return out

    def _run_apart(self, wav: np.ndarray, lens: np.ndarray) -> dict[str, Any]:
        """Each utterance alone, ``files_at_once`` at a time; outputs stacked as one batch's."""
        from concurrent.futures import ThreadPoolExecutor

        if getattr(self, "_pool", None) is None:
            self._pool = ThreadPoolExecutor(self.files_at_once, thread_name_prefix="onnx")
        parts = list(
            self._pool.map(lambda j: self.run(wav[j : j + 1, : int(lens[j])], lens[j : j + 1]), range(wav.shape[0]))
        )
        out: dict[str, Any] = {}
        for k in parts[0]:
            if k == "ctc_ids":  # (1, T_j) each: padded to the longest (the recognizer reads ctc_lengths of them)
                t = max(p[k].shape[1] for p in parts)
                out[k] = np.concatenate([np.pad(p[k], ((0, 0), (0, t - p[k].shape[1]))) for p in parts])  # (B, T)
            else:
                out[k] = np.concatenate([p[k] for p in parts])  # (B, ...)
        return out
