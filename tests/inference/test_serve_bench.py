"""``metaser bench serve``: the long-upload mix and the memory rule."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from metaser.bench.serve import check_rss_growth
from metaser.cli import main
from metaser.errors import MetaserError
from tests.inference.helpers import babble, write


def test_rss_growth_rule():
    check_rss_growth(400.0, 419.0, 0.05, 1000)  # +4.75 %: fine
    check_rss_growth(400.0, 800.0, None, 1000)  # no rule
    with pytest.raises(MetaserError, match=r"grew by \+5\.5 % \(400\.0 -> 422\.0 MB\).*--max-rss-growth 0\.05"):
        check_rss_growth(400.0, 422.0, 0.05, 1000)
    with pytest.raises(MetaserError, match="unknown"):
        check_rss_growth(None, 422.0, 0.05, 1000)


def test_bench_serve_with_a_long_upload_reports_short_and_long_apart(model_dir, tmp_path):
    long = write(tmp_path / "long.wav", babble(45.0, seed=3), subtype="PCM_16")
    out = tmp_path / "serve.json"
    args = ["bench", "serve", str(model_dir), "--clients", "2", "--requests", "8", "--warmup", "2"]
    r = CliRunner().invoke(main, [*args, "--long", str(long), "--max-rss-growth", "10", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["requests"] == 8 and res["errors"] == 0 and res["warmup"] == 2
    assert res["long"]["requests"] >= 1 and res["long"]["errors"] == 0 and res["long"]["p50_ms"] > 0
    assert res["rss_growth"] is not None and res["max_rss_growth"] == 10
    assert "long uploads (long.wav, 1 client(s))" in r.output
    r = CliRunner().invoke(main, [*args, "--long", str(tmp_path / "nope.wav")])
    assert r.exit_code == 2 and "--long" in r.output
