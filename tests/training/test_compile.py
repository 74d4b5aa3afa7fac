"""trainer.compile: compiled encoder layers give the plain model's outputs and gradients."""

from __future__ import annotations

import pytest
import torch

from metaser.models.config import EncoderConfig, HeadConfig, ModelConfig, TaskSpec
from metaser.models.metaser import MetaSERModel
from metaser.training.stages import compile_encoder_layers


@pytest.mark.slow  # inductor compiles C++ kernels on the CPU: about a minute
def test_compiled_layers_match_the_plain_model():
    def build():
        torch.manual_seed(0)
        cfg = ModelConfig(
            encoder=EncoderConfig(name_or_path="tiny-wavlm", dropout=0.0),
            aux_head=HeadConfig(dropout=0.0),
            emotion_head=HeadConfig(dropout=0.0),
        )
        m = MetaSERModel.build(cfg, ["a", "b"], [TaskSpec("gender", "classification", ["f", "m"])])
        m.freeze_encoder_layers(4)
        return m

    plain, compiled = build(), build()
    compile_encoder_layers(compiled)
    assert plain.state_dict().keys() == compiled.state_dict().keys()
    w = torch.randn(2, 16000) * 0.1
    lengths = torch.tensor([16000, 12000])
    outs = []
    for m in (plain, compiled):
        m.train()
        torch.manual_seed(1)
        out = m(w, lengths)
        out.task_logits["gender"].sum().backward()
        outs.append(
            (
                out.emotion_logits.detach(),
                m.encoder.model.encoder.layers[11].feed_forward.output_dense.weight.grad.clone(),
            )
        )
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-4)
    assert torch.allclose(outs[0][1], outs[1][1], atol=1e-4)
