"""Imports only go down: data, models < training, inference, launch < experiments, bench < cli.

Base modules (config, errors, constants, rundir, masks, boundary, paper) may be imported by every layer
and import no layer themselves. ``metaser/__init__.py`` is the public facade (it exposes
``EmotionRecognizer`` lazily) and the bare ``metaser`` package (its ``__version__``) may be
imported by anyone. Read from the source with ``ast`` (function-level imports count).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "metaser"
BASE = {"config", "errors", "constants", "rundir", "masks", "boundary", "paper"}
RANK = {"data": 1, "models": 1, "training": 2, "inference": 2, "launch": 2, "experiments": 3, "bench": 3, "cli": 4}
#: same-rank pairs that must not import each other: the launcher runs any task and knows no
#: training or inference; the benchmarks time training and inference, never the experiments
SAME_LEVEL_FORBIDDEN = {
    ("training", "inference"),
    ("inference", "training"),
    ("data", "models"),
    ("models", "data"),
    *{(a, b) for a in ("launch",) for b in ("training", "inference")},
    *{(b, a) for a in ("launch",) for b in ("training", "inference")},
    ("bench", "experiments"),
    ("experiments", "bench"),
}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "metaser":
        return None
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def test_imports_only_go_down():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        own = rel.parts[0].removesuffix(".py")
        for line, mod in imports(path):
            target = layer_of(mod)
            if target is None or target == own or own == "__init__" or target == "__init__":
                continue
            where = f"{rel}:{line} imports {mod}"
            if own in BASE:
                if target not in BASE:
                    bad.append(f"{where} (a base module imports a layer)")
                continue
            if target in BASE:
                continue
            if (own, target) in SAME_LEVEL_FORBIDDEN or RANK[target] > RANK[own]:
                bad.append(where)
    assert not bad, "imports that go up or sideways:\n" + "\n".join(bad)


def test_no_private_names_imported_across_modules():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("metaser"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{path.relative_to(PKG)}:{node.lineno} imports {node.module}.{a.name}")
    assert not bad, "\n".join(bad)


def test_the_layer_test_catches_an_upward_import(tmp_path):
    """The checker itself: a data module importing training is reported."""
    fake = tmp_path / "x.py"
    fake.write_text("from metaser.training.fold_run import train_fold\nimport metaser.cli\n")
    mods = [m for _, m in imports(fake)]
    assert [RANK[layer_of(m)] > RANK["data"] for m in mods] == [True, True]


def test_no_module_is_over_450_lines_but_the_cli():
    """One file, one job: a module past 450 lines holds two (cli.py says in its docstring why it
    is one file of click declarations)."""
    root = Path(__file__).resolve().parents[1] / "metaser"
    long = {
        str(p.relative_to(root)): n
        for p in root.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 450 and p.name != "cli.py"
    }
    assert not long, f"split these modules: {long}"
