"""Rich tables of results for the console (``metaser cv``, ``report``, ``demo``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from metaser.experiments.report import fmt_metric, paper_cells, report_columns, table_unit

__all__ = ["print_results"]


def print_results(res: dict[str, Any], console: Console) -> None:
    """Per-fold test metrics, mean ± std, pooled over folds and, for the paper's encoders, the
    paper's figure and Δ (ours: the mean over folds)."""
    cols = report_columns(res)
    table = Table(title=f"{res['run']}: test folds, {table_unit(cols)}")
    table.add_column("fold")
    table.add_column("test")
    for _, n in cols:
        table.add_column(n, justify="right")
    for f in res["folds"]:
        table.add_row(str(f["fold"]), str(f["test_group"]), *[fmt_metric(k, f["test"].get(k)) for k, _ in cols])
    table.add_section()
    table.add_row("mean", "", *[fmt_metric(k, res["test"][k]["mean"]) for k, _ in cols], style="bold")
    table.add_row("± std", "", *[fmt_metric(k, res["test"][k]["std"]) for k, _ in cols], style="dim")
    pooled = res.get("test_pooled") or {}
    if pooled:
        table.add_row("pooled", "", *[fmt_metric(k, pooled.get(k)) for k, _ in cols])
    cells = paper_cells(res, [k for k, _ in cols])
    if cells:
        table.add_section()
        table.add_row("paper", ":".join(res["paper_row"]), *cells[0])
        table.add_row("Δ", "", *cells[1], style="dim")
    console.print(table)
    console.print(f"[dim]{res['definitions']}[/]")
