"""Small CPU timings behind side remarks of docs/benchmarks.md (not `metaser bench`: each
isolates one operation of a base-size WavLM with random weights).

    python scripts/cpu_micro.py adam        # one Adam step over the encoder's 90 M params: loop / foreach / fused
    python scripts/cpu_micro.py bf16        # forward + backward, fp32 vs bf16 autocast
    python scripts/cpu_micro.py attention   # forward + backward, eager vs SDPA, repeated (the machine's noise)
    python scripts/cpu_micro.py profile     # torch.profiler table of one 4-layer step, eager and SDPA, 1 thread
    python scripts/cpu_micro.py dropout     # 8 trainable layers forward + backward: no dropout, torch's, metaser's
    python scripts/cpu_micro.py posconv     # the positional convolution forward + backward: direct vs FFT
    python scripts/cpu_micro.py gemm        # fp32 matrix-product GFLOP/s at a base layer's shapes (the ceiling)
    python scripts/cpu_micro.py compile     # 4 layers forward + backward on 3 bucket shapes: eager vs torch.compile

Timings are medians of 3 repeats after one warm-up; 2 threads unless stated.
"""

from __future__ import annotations

import sys

import torch
from transformers import WavLMConfig, WavLMModel

from metaser.bench.common import median_seconds
from metaser.models.dropout import set_fast_dropout
from metaser.models.encoder.fft_conv import set_fft_pos_conv
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
        print(f"{'bf16' if enabled else 'fp32'}: {_median(lambda enabled=enabled: step(enabled)):.2f} s")


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
            print(f"attention_dropout {drop} {impl}: {_median(lambda m=m, feats=feats: _encoder_step(m, feats)):.3f} s")


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


def dropout() -> None:
    models = {
        "no dropout": _model(
            num_hidden_layers=8, layerdrop=0.0, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0
        ),
        "torch dropout": _model(num_hidden_layers=8, layerdrop=0.0),
        "metaser dropout": _model(num_hidden_layers=8, layerdrop=0.0),
    }
    for m in models.values():
        set_wavlm_attention(m, "sdpa")
    set_fast_dropout(models["metaser dropout"], True)
    hidden = torch.randn(BATCH, SAMPLES // 320, 768)  # (B, T, D): the frames of 12 x 2.2 s

    def step(m: WavLMModel) -> None:
        m.encoder(hidden).last_hidden_state.pow(2).mean().backward()

    for _ in range(2):  # interleaved, twice: the machine's drift shows
        for name, m in models.items():
            print(f"{name}: {_median(lambda m=m: step(m)):.3f} s")


def posconv() -> None:
    m = _model()
    pos = m.encoder.pos_conv_embed
    for batch, frames in ((BATCH, SAMPLES // 320), (4, 250)):
        x = torch.randn(batch, frames, 768, requires_grad=True)  # (B, T, D)
        for fft in (False, True, False, True):
            set_fft_pos_conv(m, fft)
            t = _median(lambda x=x: pos(x).pow(2).mean().backward())
            print(f"({batch}, {frames}) {'fft' if fft else 'direct'}: {t:.3f} s")


def compile_layers() -> None:
    import time

    m = _model(num_hidden_layers=4, layerdrop=0.0)
    set_wavlm_attention(m, "sdpa")
    hidden = [torch.randn(b, t, 768) for b, t in ((11, 90), (12, 110), (9, 130))]  # (B, T, D) bucket shapes

    def steps() -> None:
        for h in hidden:
            m.encoder(h).last_hidden_state.pow(2).mean().backward()

    print(f"eager: {_median(steps) / len(hidden):.3f} s per step")
    for layer in m.encoder.layers:
        layer.compile(dynamic=True)
    t0 = time.perf_counter()
    steps()
    print(f"compile + first steps: {time.perf_counter() - t0:.0f} s")
    print(f"compiled: {_median(steps) / len(hidden):.3f} s per step")


def gemm() -> None:
    rows = BATCH * (SAMPLES // 320)  # the frames of 12 x 2.2 s
    for m, k, n in ((4096, 4096, 4096), (rows, 768, 768), (rows, 768, 3072), (rows, 3072, 768)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        t = _median(lambda a=a, b=b: a @ b)
        print(f"({m} x {k}) @ ({k} x {n}): {2 * m * k * n / t / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
    torch.set_num_threads(2)
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    jobs = {
        "adam": adam,
        "bf16": bf16,
        "attention": attention,
        "profile": profile,
        "dropout": dropout,
        "posconv": posconv,
        "gemm": gemm,
        "compile": compile_layers,
    }
    if what not in jobs:
        sys.exit(f"usage: python scripts/cpu_micro.py {{{'|'.join(jobs)}}}")
    jobs[what]()
