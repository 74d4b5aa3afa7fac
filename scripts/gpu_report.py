"""Markdown table of `metaser bench train --json` files, with the projected full-protocol wall time.

    python scripts/gpu_report.py gpu-bench/train-*.json

Projection: IEMOCAP holds about 7 h of audio; a fold trains on 4 of 5 sessions less the 10 %
validation split (0.72 x 7 h per epoch); the protocol is 5 folds x 2 stages x 100 epochs. Each
stage's time = its training audio / the tuned throughput of that stage (validation and the
one-off cache build are left out of that sum). The cache builds are projected separately, at
the bench's build rate (``cache_build_seconds`` / ``cache_audio_seconds``): the CNN store once
(all of IEMOCAP at the 3 speeds) and the stage-2 store once per fold (training audio at 3 speeds,
validation and test at 1.0). With group-norm encoders every utterance is built alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

IEMOCAP_HOURS, TRAIN_SHARE, FOLDS, EPOCHS = 7.0, 0.8 * 0.9, 5, 100


def main(paths: list[str]) -> None:
    print("| encoder | stage | mode | audio h / h | vs reference | padding | cache | attention | MFU | peak GB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    projections = []
    for path in paths:
        doc = json.loads(Path(path).read_text())
        res = doc["results"]
        ref = {r["stage"]: r["throughput"] for r in res if r["mode"] == "reference"}
        for r in res:
            ratio = r["throughput"] / ref[r["stage"]] if r["stage"] in ref else None
            print(
                f"| {doc['encoder']} | {r['stage']} | {r['mode']} | {r['throughput']:.0f} | "
                f"{'–' if ratio is None else f'{ratio:.2f}x'} | {r['padding_ratio']:.3f} | "
                f"{'–' if r['cached_layer'] is None else 'L' + str(r['cached_layer'])} | {r['attention']} | "
                f"{'–' if r['mfu'] is None else format(100 * r['mfu'], '.1f') + '%'} | "
                f"{r['peak_memory_mb'] / 1024:.1f} |"
            )
        tuned = {r["stage"]: r["throughput"] for r in res if r["mode"] == "tuned"}
        audio_s = IEMOCAP_HOURS * 3600 * TRAIN_SHARE * EPOCHS * FOLDS
        if tuned:
            hours = sum(audio_s / tput for tput in tuned.values()) / 3600
            projections.append((doc["encoder"], hours, tuned, _build_hours(res)))
    print()
    for enc, hours, tuned, build in projections:
        per = ", ".join(f"{s}: {t:.0f} audio-s/s" for s, t in tuned.items())
        print(
            f"- {enc}: projected full protocol (5 folds x {len(tuned)} stages x {EPOCHS} epochs on "
            f"{IEMOCAP_HOURS:.0f} h of IEMOCAP, training steps only) = **{hours:.2f} h** ({per}); "
            f"feature-cache builds {build:.2f} h more; total **{hours + build:.2f} h**"
        )


def _build_hours(res: list[dict]) -> float:
    """Projected one-off cache builds for IEMOCAP, from the tuned rows' build rate."""
    corpus = IEMOCAP_HOURS * 3600
    speeds = 0.8 + 1.0 + 1.2  # seconds of audio per second of corpus at the 3 TDSA speeds
    need = {
        "stage1": corpus * speeds,  # the CNN store: once, every utterance, every speed
        "stage2": FOLDS * corpus * (TRAIN_SHARE * speeds + (1 - TRAIN_SHARE)),
    }  # once per fold
    total = 0.0
    for r in res:
        if r["mode"] == "tuned" and r.get("cache_audio_seconds") and r["stage"] in need:
            total += need[r["stage"]] * r["cache_build_seconds"] / r["cache_audio_seconds"]
    return total / 3600


if __name__ == "__main__":
    main(sys.argv[1:])
