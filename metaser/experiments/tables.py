"""Rich tables of results for the console (``metaser cv``, ``report``, ``demo``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from metaser.experiments.report import TEST_COLUMNS, paper_cells, pct

__all__ = ["print_results"]


def print_results(res: dict[str, Any], console: Console) -> None:
    """Per-fold test metrics, mean ± std, pooled over folds and, for the paper's encoders, the
    paper's figure and Δ (ours: the mean over folds)."""
    cols = [(k, n) for k, n in TEST_COLUMNS if k in res["test"]]
    table = Table(title=f"{res['run']}: test folds, %")
    table.add_column("fold")
    table.add_column("test")
    for _, n in cols:
        table.add_column(n, justify="right")
    for f in res["folds"]:
        table.add_row(str(f["fold"]), str(f["test_group"]), *[pct(f["test"].get(k)) for k, _ in cols])
    table.add_section()
    table.add_row("mean", "", *[pct(res["test"][k]["mean"]) for k, _ in cols], style="bold")
    table.add_row("± std", "", *[pct(res["test"][k]["std"]) for k, _ in cols], style="dim")
    pooled = res.get("test_pooled") or {}
    if pooled:
        table.add_row("pooled", "", *[pct(pooled.get(k)) for k, _ in cols])
    cells = paper_cells(res, [k for k, _ in cols])
    if cells:
        table.add_section()
        table.add_row("paper", ":".join(res["paper_row"]), *cells[0])
        table.add_row("Δ", "", *cells[1], style="dim")
    console.print(table)
    console.print(f"[dim]{res['definitions']}[/]")
