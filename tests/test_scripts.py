"""The report scripts of scripts/ on hand-made bench JSON (their arithmetic, not timings)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def row(stage: str, mode: str, throughput: float, build: float = 0.0, audio: float = 0.0) -> dict:
    return {
        "stage": stage,
        "mode": mode,
        "throughput": throughput,
        "padding_ratio": 0.1,
        "cached_layer": None,
        "attention": "sdpa",
        "mfu": None,
        "peak_memory_mb": 1024.0,
        "batch_utterances_mean": 4.0,
        "median_step_s": 0.5,
        "fused_optimizer": mode != "reference",
        "cache_build_seconds": build,
        "cache_audio_seconds": audio,
        "fast_dropout": mode != "reference",
        "fft_conv": mode != "reference",
    }


def test_gpu_report_projects_training_and_cache_builds(tmp_path, capsys):
    # IEMOCAP 7 h, 72 % of it trained per epoch, 100 epochs, 5 folds: 907,200 audio-s per stage x 5 folds
    doc = {
        "encoder": "enc",
        "results": [
            row("stage1", "reference", 100.0),
            row("stage1", "tuned", 2520.0, build=10.0, audio=1000.0),
            row("stage2", "reference", 100.0),
            row("stage2", "tuned", 5040.0, build=5.0, audio=1000.0),
        ],
    }
    f = tmp_path / "train-enc.json"
    f.write_text(json.dumps(doc))
    load("gpu_report").main([str(f)])
    out = capsys.readouterr().out
    audio = 7 * 3600 * 0.72 * 100 * 5
    train_h = (audio / 2520 + audio / 5040) / 3600  # 1.0 + 0.5 h
    build_h = (7 * 3600 * 3.0 * 10 / 1000 + 5 * 7 * 3600 * (0.72 * 3.0 + 0.28) * 5 / 1000) / 3600
    assert f"**{train_h:.2f} h**" in out and f"feature-cache builds {build_h:.2f} h" in out
    assert f"total **{train_h + build_h:.2f} h**" in out
    assert "| enc | stage1 | tuned | 2520 | 25.20x |" in out


def test_render_bench_ratios_and_columns(tmp_path, capsys):
    doc = {"results": [row("stage1", "reference", 2.0), row("stage1", "tuned", 5.0)]}
    (tmp_path / "train-tiny.json").write_text(json.dumps(doc))
    (tmp_path / "ablate-reuse.seconds").write_text("60.0\n")
    (tmp_path / "ablate-no-reuse.seconds").write_text("")  # still running: no ablate line, no crash
    load("render_bench").main(tmp_path)
    out = capsys.readouterr().out
    assert "| stage1 | tuned | 5.00 | 2.50x |" in out
    assert "| sdpa | fused | pcg64, fft |" in out and "| sdpa | loop | torch, direct |" in out
    assert "ablate modules" not in out
