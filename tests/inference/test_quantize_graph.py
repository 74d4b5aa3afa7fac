"""The static int8 rewrite (metaser.inference.int8_graph) on a small exported graph with every case."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from metaser.inference.int8_graph import collect_ranges, plan_int8, rewrite_static  # noqa: E402


class _Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.wave = nn.Conv1d(1, 16, 10, stride=5, bias=False)  # the waveform conv: stays fp32
        self.conv = nn.Conv1d(16, 24, 3, stride=2, bias=False)  # plain: taps
        self.last = nn.Conv1d(24, 24, 2, stride=2)  # plain, kernel = stride, with bias: taps
        self.pos = nn.Conv1d(24, 24, 8, padding=4, groups=4)  # grouped, padded: QLinearConv
        self.proj = nn.Linear(24, 32)  # linear + bias: MatMulIntegerToFloat, the Add folded in
        self.gate = nn.Linear(32, 8)  # too small: fp32

    def forward(self, waveforms):
        gelu = torch.nn.functional.gelu
        x = gelu(self.wave(waveforms[:, None]))  # (B, 16, T)
        x = gelu(self.last(gelu(self.conv(x))))  # (B, 24, T')
        x = x + self.pos(x)[..., : x.shape[-1]]
        h = self.proj(x.transpose(1, 2))  # (B, T', 32)
        return h * torch.sigmoid(self.gate(h)).mean(-1, keepdim=True)


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = _Encoder()
        self.head = nn.Linear(32, 4)  # not in the encoder: fp32

    def forward(self, waveforms, lengths):
        return torch.softmax(self.head(self.encoder(waveforms).mean(1)), -1)  # (B, 4)


def _audio(seed: int, n: int = 8000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float32) * 0.3
    x[: n // 3] *= 1e-3  # a near-silent start
    return x


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("toy") / "toy.onnx"
    wav = torch.from_numpy(_audio(0))[None]
    torch.onnx.export(
        _Toy().eval(),
        (wav, torch.tensor([wav.shape[1]])),
        str(path),
        input_names=["waveforms", "lengths"],
        output_names=["emotion_probs"],
        dynamic_axes={"waveforms": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return onnx.load(str(path))


def _run(model, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"waveforms": x})[0]  # (the toy ignores lengths: the exporter drops the input)


def test_plan_picks_each_rewrite_and_leaves_the_rest(toy):
    plan = plan_int8(toy)
    assert [n.split("/")[2] for n in plan.taps] == ["conv", "last"]
    assert [n.split("/")[2] for n in plan.qlinearconv] == ["pos"]
    assert [n.split("/")[2] for n in plan.matmul] == ["proj"]  # not the 32 x 8 gate, not the head


def test_rewrite_is_close_to_fp32_and_really_int8(toy):
    plan = plan_int8(toy)
    ranges = collect_ranges(toy, plan, [_audio(s) for s in range(1, 5)])
    q = rewrite_static(toy, plan, ranges)
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("MatMulIntegerToFloat") == 3 + 2 + 1  # conv: 3 taps, last: 2 taps, proj
    assert ops.count("QLinearConv") == 1 and ops.count("Conv") == 1  # only the waveform conv stays
    assert "Add" not in [n.op_type for n in q.graph.node if "proj" in n.name]  # the bias is folded in
    x = np.stack([_audio(10), _audio(11)])
    ref, got = _run(toy, x), _run(q, x)
    assert np.abs(got - ref).max() < 5e-3 and not np.array_equal(got, ref)


def test_per_frame_ranges_keep_quiet_frames(toy):
    """The same audio 60 dB quieter: per-frame ranges give the same relative error, not noise."""
    plan = plan_int8(toy)
    q = rewrite_static(toy, plan, collect_ranges(toy, plan, [_audio(s) for s in range(1, 5)]))
    names = [n.output[0] for n in toy.graph.node if n.name == plan.taps[0]]  # the first tap conv's output
    probe = [onnx.ModelProto(), onnx.ModelProto()]
    for p, m in zip(probe, (toy, q)):
        p.CopyFrom(m)
        p.graph.output.extend([onnx.helper.make_tensor_value_info(names[0], onnx.TensorProto.FLOAT, None)])
    for level in (1.0, 1e-3):
        x = (_audio(12) * level)[None]
        ref = ort.InferenceSession(probe[0].SerializeToString()).run([names[0]], {"waveforms": x})[0]
        got = ort.InferenceSession(probe[1].SerializeToString()).run([names[0]], {"waveforms": x})[0]
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.05
