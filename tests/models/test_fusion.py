"""Layer fusion: ARI (Eq. 3), the weighted-sum baseline, the last layer."""

from __future__ import annotations

import pytest
import torch

from metaser.errors import ConfigError
from metaser.models.fusion import (
    AugmentedResidualIntegration,
    LastLayer,
    WeightedLayerSum,
    build_layer_fusion,
)

L, B, T, D = 5, 2, 3, 4


def hidden_states() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(3)
    return tuple(torch.randn(B, T, D, generator=g) + i for i in range(L))


def test_ari_is_concat_of_last_layer_and_softmax_weighted_lower_layers():
    ari = AugmentedResidualIntegration(L)
    with torch.no_grad():
        ari.logits.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
    hs = hidden_states()
    w = torch.exp(torch.tensor([0.5, -1.0, 2.0, 0.0]))
    w = w / w.sum()
    residual = sum(w[i] * hs[i] for i in range(L - 1))
    expected = torch.cat([hs[-1], residual], dim=-1)
    out = ari(hs)
    assert out.shape == (B, T, 2 * D) and ari.output_dim(D) == 2 * D
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(ari.weights(), w, rtol=0, atol=1e-7)


def test_ari_weights_start_uniform_and_sum_to_one():
    ari = AugmentedResidualIntegration(12)
    assert ari.logits.shape == (11,)
    torch.testing.assert_close(ari.weights(), torch.full((11,), 1 / 11))
    with torch.no_grad():
        ari.logits.normal_()
    assert abs(float(ari.weights().sum()) - 1.0) < 1e-6
    assert bool((ari.weights() > 0).all())


def test_weighted_sum_over_all_layers():
    ws = WeightedLayerSum(L)
    logits = torch.tensor([1.0, 0.0, -2.0, 0.5, 3.0])
    with torch.no_grad():
        ws.logits.copy_(logits)
    hs = hidden_states()
    w = torch.softmax(logits, 0)
    expected = sum(w[i] * hs[i] for i in range(L))
    torch.testing.assert_close(ws(hs), expected, rtol=0, atol=1e-6)
    assert ws.output_dim(D) == D and ws.weights().shape == (L,)
    assert abs(float(ws.weights().sum()) - 1.0) < 1e-6


def test_raw_weights_are_used_as_they_are_and_start_uniform():
    """fusion.weights=raw: Eq. (3)'s W read literally (no softmax), for ARI and the weighted sum."""
    hs = hidden_states()
    raw = torch.tensor([0.7, -0.2, 1.5, 0.0])
    ari = AugmentedResidualIntegration(L, weighting="raw")
    torch.testing.assert_close(ari.weights(), torch.full((L - 1,), 1 / (L - 1)))
    with torch.no_grad():
        ari.logits.copy_(raw)
    expected = torch.cat([hs[-1], sum(raw[i] * hs[i] for i in range(L - 1))], dim=-1)
    torch.testing.assert_close(ari(hs), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(ari.weights(), raw)
    ws = WeightedLayerSum(L, weighting="raw")
    torch.testing.assert_close(ws.weights(), torch.full((L,), 1 / L))
    torch.testing.assert_close(ws(hs), sum(hs[i] / L for i in range(L)), rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="fusion.weights"):
        AugmentedResidualIntegration(L, weighting="sigmoid")


def test_last_layer():
    hs = hidden_states()
    last = LastLayer(L)
    assert torch.equal(last(hs), hs[-1]) and last.output_dim(D) == D
    assert last.weights() is None and len(list(last.parameters())) == 0


def test_fusion_weights_receive_gradients():
    for fusion in (AugmentedResidualIntegration(L), WeightedLayerSum(L)):
        hs = hidden_states()
        (fusion(hs) * torch.arange(fusion.output_dim(D)).float()).sum().backward()
        assert fusion.logits.grad is not None and fusion.logits.grad.abs().sum() > 0


def test_factory_and_errors():
    assert isinstance(build_layer_fusion("ari", 12), AugmentedResidualIntegration)
    assert isinstance(build_layer_fusion("weighted_sum", 12), WeightedLayerSum)
    assert isinstance(build_layer_fusion("last", 12), LastLayer)
    with pytest.raises(ConfigError, match="fusion.layers"):
        build_layer_fusion("mean", 12)
    with pytest.raises(ConfigError):
        AugmentedResidualIntegration(1)
    with pytest.raises(ValueError, match="expected 5 hidden states"):
        AugmentedResidualIntegration(L)(hidden_states()[:4])


def test_masked_batchnorm_standardises_valid_frames_and_keeps_padding_zero():
    from metaser.models.fusion import MaskedBatchNorm

    torch.manual_seed(0)
    x = torch.randn(3, 7, 5) * 4 + 10  # (B, T, D): large common offset
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5], dtype=torch.bool)
    x[~mask] = 123.0  # padding must not leak into the statistics
    bn = MaskedBatchNorm(5).train()
    y = bn(x, mask)
    valid = y[mask]  # (13, D)
    assert torch.allclose(valid.mean(0), torch.zeros(5), atol=1e-5)
    assert torch.allclose(valid.var(0, unbiased=False), torch.ones(5), atol=1e-3)
    assert (y[~mask] == 0).all()
    # eval: running statistics, so an utterance alone equals the same utterance padded
    bn.eval()
    alone = bn(x[1:2, :4], mask[1:2, :4])
    padded = bn(x, mask)[1:2, :4]
    assert torch.allclose(alone, padded, atol=1e-6)


def test_fusion_normalize_batch_is_in_the_model_and_round_trips(tmp_path):
    from metaser.models.config import EncoderConfig, FusionConfig, ModelConfig, TaskSpec
    from metaser.models.factory import load_ser_model
    from metaser.models.metaser import MetaSERModel

    cfg = ModelConfig(encoder=EncoderConfig(name_or_path="tiny-wavlm"), fusion=FusionConfig(normalize="batch"))
    m = MetaSERModel.build(cfg, ["a", "b"], [TaskSpec("gender", "classification", ["f", "m"])])
    assert m.fused_norm is not None
    w = torch.randn(2, 8000) * 0.1
    lengths = torch.tensor([8000, 6000])
    m.train()
    m.from_audio(w, lengths)  # updates running statistics
    m.eval()
    m.save_pretrained(tmp_path / "m")
    m2 = load_ser_model(tmp_path / "m")
    with torch.no_grad():
        a, b = m.from_audio(w, lengths), m2.from_audio(w, lengths)
    assert torch.allclose(a.emotion_logits, b.emotion_logits, atol=1e-6)
    assert torch.equal(m.fused_norm.bn.running_mean, m2.fused_norm.bn.running_mean)
