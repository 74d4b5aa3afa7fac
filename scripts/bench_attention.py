"""Eager vs SDPA attention for WavLM: encoder forward + backward time on CPU (or CUDA).

Both runs use the same random weights (``base-random-wavlm`` by default). One step is a forward
of the whole encoder on B utterances of S seconds plus a backward from the sum of squares of all
layer outputs; the first `--warmup` steps are discarded, the median of `--steps` is printed (eager and SDPA
steps alternate).

    PYTHONPATH=. python scripts/bench_attention.py --threads 1 2 --steps 3

This is a quick check of the attention kernel; ``metaser bench`` measures training throughput.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from metaser.constants import SAMPLE_RATE
from metaser.models.config import EncoderConfig
from metaser.models.encoder import SSLEncoder


def one_step(enc: SSLEncoder, waves, lengths, backward: bool) -> float:
    t0 = time.perf_counter()
    if backward:
        res = enc(waves, lengths)
        sum(h.pow(2).mean() for h in res.hidden_states).backward()
        enc.zero_grad(set_to_none=True)
    else:
        with torch.no_grad():
            enc(waves, lengths)
    if waves.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def median_times(encs: dict[str, SSLEncoder], waves, lengths, steps: int, warmup: int, backward: bool):
    """Median step time per implementation; the implementations alternate step by step, so a
    change in the machine's load (shared CPUs) hits both alike."""
    times: dict[str, list[float]] = {k: [] for k in encs}
    for i in range(warmup + steps):
        for k, enc in encs.items():
            t = one_step(enc, waves, lengths, backward)
            if i >= warmup:
                times[k].append(t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="base-random-wavlm")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--freeze", type=int, default=0, help="frozen transformer layers (stage 2: 4)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    device = torch.device(args.device)
    encs = {}
    for impl in ("eager", "sdpa"):
        enc = SSLEncoder.from_pretrained(EncoderConfig(name_or_path=args.preset, attn_implementation=impl, dropout=0.0))
        enc.freeze_layers(args.freeze)
        encs[impl] = enc.to(device).train()
        assert enc.attn_implementation == impl, enc.attn_implementation
    g = torch.Generator().manual_seed(0)
    s = int(args.seconds * SAMPLE_RATE)
    lengths = torch.tensor([s - i * SAMPLE_RATE // 4 for i in range(args.batch)])  # padded batch
    waves = 0.1 * torch.randn(args.batch, s, generator=g)
    waves, lengths = waves.to(device), lengths.to(device)
    with torch.no_grad():  # same function
        a, b = (encs[k].eval()(waves, lengths).hidden_states[-1] for k in ("eager", "sdpa"))
        diff = (a - b).abs().max().item()
    for enc in encs.values():
        enc.train()
    print(
        f"{args.preset}, {args.batch} x {args.seconds:g} s (padded), freeze_layers={args.freeze}, "
        f"device={device}, torch {torch.__version__}; max |eager - sdpa| last layer = {diff:.2e}"
    )
    print("| threads | pass | eager (s) | sdpa (s) | eager / sdpa |")
    print("|---|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for backward in (False, True):
            med = median_times(encs, waves, lengths, args.steps, args.warmup, backward)
            name = "fwd+bwd" if backward else "fwd (no grad)"
            print(
                f"| {threads} | {name} | {med['eager']:.3f} | {med['sdpa']:.3f} | {med['eager'] / med['sdpa']:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
