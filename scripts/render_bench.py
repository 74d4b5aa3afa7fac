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
    infer = sorted(root.glob("infer-base*.json"))
    for f in infer:
        print(f"### {f.stem}\n\n{infer_table(json.loads(f.read_text()))}\n")
    serve = sorted(root.glob("serve-*.json"))
    if serve:
        print("### serve\n\n" + serve_table({f.stem: json.loads(f.read_text()) for f in serve}) + "\n")
    mem = {
        f.name.split("-")[1].split(".")[0]: int(f.read_text().split()[-1])
        for f in root.glob("predict-*.maxrss-kb")
        if f.read_text().strip()
    }
    if mem:
        print("### predict peak RSS\n")
        for sec, kb in sorted(mem.items(), key=lambda kv: int(kv[0])):
            print(f"- {sec} s recording (+ one short file), --max-seconds 1200: peak RSS {kb / 1024:.0f} MB")


def infer_table(doc: dict) -> str:
    rows = [
        "| backend | variant | threads | batch | RTF | × plain forward | × one at a time | max Δp | same label |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["reference"]:
        rows.append(
            f"| transformers plain forward | encoder only | {r['threads']} | 1 | {r['rtf']:.4f} | 1.00x | | | |"
        )
    for r in doc["results"]:
        rows.append(
            f"| {r['backend']} | {r['variant']} | {r['threads']} | {r['batch_size']} | {r['rtf']:.4f} | "
            f"{r.get('vs_reference', float('nan')):.2f}x | {r['vs_one_at_a_time']:.2f}x | {r['max_prob_diff']:.1e} | "
            f"{round(r['label_agreement'] * doc['files'])} / {doc['files']} |"
        )
    best = doc.get("best") or {}
    rows.append("")
    rows.append(f"best: {best} (load {doc['results'][0].get('load')} .. {doc['results'][-1].get('load')})")
    return "\n".join(rows)


def serve_table(docs: dict) -> str:
    rows = [
        "| run | model | backend | clients | requests | errors | short p50 ms | short p95 ms | req/s | long uploads "
        "(p50 s) | RSS after warm-up → end (MB) | growth |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for name, d in docs.items():
        lg = d.get("long")
        long_txt = "–" if not lg else f"{lg['requests']} ({(lg['p50_ms'] or 0) / 1000:.1f})"
        growth = d.get("rss_growth")
        rows.append(
            f"| {name} | {Path(d['model']).name} | {d['backend']} | {d['clients']} | {d['requests']} | {d['errors']} | "
            f"{d['p50_ms']:.0f} | {d['p95_ms']:.0f} | {d['requests_per_second']:.2f} | {long_txt} | "
            f"{d['rss_before_mb']:.0f} → {d['rss_after_mb']:.0f} | "
            f"{'–' if growth is None else f'{100 * growth:+.1f} %'} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
