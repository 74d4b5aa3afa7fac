"""Small CPU timings behind side remarks of docs/benchmarks.md (not `metaser bench`: each
isolates one operation of a base-size WavLM with random weights).

    python scripts/cpu_micro.py adam        # one Adam step over the encoder's 90 M params: loop / foreach / fused
    python scripts/cpu_micro.py bf16        # forward + backward, fp32 vs bf16 autocast
    python scripts/cpu_micro.py attention   # forward + backward, eager vs SDPA, repeated (the machine's noise)
    python scripts/cpu_micro.py profile     # torch.profiler table of one 4-layer step, eager and SDPA, 1 thread

Timings are medians of 3 repeats after one warm-up; 2 threads unless stated.
"""

from __future__ import annotations

import sys

import torch
from transformers import WavLMConfig, WavLMModel

from metaser.experiments.bench_infer import median_seconds
from metaser.models.encoder.wavlm_sdpa import set_wavlm_attention

BATCH, SAMPLES = 12, 35200  # 12 utterances of 2.2 s


def _median(fn) -> float:
    return median_seconds(fn, repeats=3)


def _model(**kw) -> WavLMModel:
    torch.manual_seed(0)
    m = WavLMModel(WavLMConfig(**kw))
    m.train()
    m.feature_extractor.requires_grad_(False)
    return m


def adam() -> None:
    m = _model()
    ps = [p for n, p in m.named_parameters() if not n.startswith("feature_extractor")]
    for p in ps:
        p.grad = torch.randn_like(p)
    print(f"{sum(p.numel() for p in ps) / 1e6:.1f} M parameters")
    for name, kw in (("loop", {"foreach": False}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
        opt = torch.optim.Adam(ps, lr=1e-5, **kw)
        print(f"adam {name}: {_median(opt.step):.3f} s per step")


def bf16() -> None:
    m = _model()
    x = torch.randn(BATCH, SAMPLES)

    def step(enabled: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            out = m(x).last_hidden_state  # (B, T, D)
        out.float().pow(2).mean().backward()

    for enabled in (False, True, False, True):
        print(f"{'bf16' if enabled else 'fp32'}: {_median(lambda: step(enabled)):.2f} s")


def _encoder_step(m: WavLMModel, feats: torch.Tensor) -> None:
    h, _ = m.feature_projection(feats)  # (B, T, D)
    m.encoder(h).last_hidden_state.pow(2).mean().backward()


def attention() -> None:
    for drop in (0.1, 0.0):
        m = _model(attention_dropout=drop)
        with torch.no_grad():
            feats = m.feature_extractor(torch.randn(BATCH, SAMPLES)).transpose(1, 2)  # (B, T, C)
        for impl in ("eager", "sdpa", "eager", "sdpa"):
            set_wavlm_attention(m, impl)
            print(f"attention_dropout {drop} {impl}: {_median(lambda: _encoder_step(m, feats)):.3f} s")


def profile() -> None:
    torch.set_num_threads(1)
    m = _model(num_hidden_layers=4)
    with torch.no_grad():
        feats = m.feature_extractor(torch.randn(BATCH, SAMPLES)).transpose(1, 2)  # (B, T, C)
    for impl in ("eager", "sdpa"):
        set_wavlm_attention(m, impl)
        _encoder_step(m, feats)
        with torch.profiler.profile() as prof:
            _encoder_step(m, feats)
        print(impl)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    torch.set_num_threads(2)
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    jobs = {"adam": adam, "bf16": bf16, "attention": attention, "profile": profile}
    if what not in jobs:
        sys.exit(f"usage: python scripts/cpu_micro.py {{{'|'.join(jobs)}}}")
    jobs[what]()
