"""Markdown tables from the JSON files of scripts/cpu-bench.sh (what docs/benchmarks.md shows).

python scripts/render_bench.py bench
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def train_table(doc: dict) -> str:
    rows = [
        "| stage | mode | audio s / wall s | × reference | padding | utt / batch | median step (s) | cache "
        "| attention | Adam | dropout, pos conv | peak RSS (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|---|---:|",
    ]
    ref = {r["stage"]: r["throughput"] for r in doc["results"] if r["mode"] == "reference"}
    for r in doc["results"]:
        x = r["throughput"] / ref[r["stage"]] if r["stage"] in ref else None
        rows.append(
            f"| {r['stage']} | {r['mode']} | {r['throughput']:.2f} | {'–' if x is None else f'{x:.2f}x'} | "
            f"{r['padding_ratio']:.3f} | {r['batch_utterances_mean']:.1f} | {r['median_step_s']:.3f} | "
            f"{'–' if r['cached_layer'] is None else 'L' + str(r['cached_layer'])} | {r['attention']} | "
            f"{'fused' if r.get('fused_optimizer') else 'loop'} | "
            f"{'pcg64' if r.get('fast_dropout') else 'torch'}, {'fft' if r.get('fft_conv') else 'direct'} | "
            f"{r['peak_memory_mb']:.0f} |"
        )
    return "\n".join(rows)


def main(root: Path) -> None:
    for name in ("train-tiny", "train-base"):
        f = root / f"{name}.json"
        if f.is_file():
            print(f"### {name}\n\n{train_table(json.loads(f.read_text()))}\n")
    secs = {k: (root / f"ablate-{k}.seconds") for k in ("reuse", "no-reuse")}
    if all(p.is_file() and p.read_text().strip() for p in secs.values()):
        a, b = (float(p.read_text().split()[-1]) for p in secs.values())
        print(f"### ablate modules\n\nreuse {a:.0f} s, --no-reuse {b:.0f} s, ratio {b / a:.2f}x\n")
    f = root / "infer-base.json"
    if f.is_file():
        print("### infer-base\n\n```json\n" + json.dumps(json.loads(f.read_text()), indent=1)[:4000] + "\n```")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
