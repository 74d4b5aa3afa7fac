"""Every command the docs show runs, as its rule in ``tests/docs/rules.py`` says (``-m docs``).

One test per distinct command, in the order of the docs (README.md, docs/*.md, the presets):
a command shown in several places runs once. Commands that build on others (a trained run, an
exported model, a server) find them made by the commands that provide them.
"""

from __future__ import annotations

import re

import pytest

from tests.docs.checks import run_check
from tests.docs.extract import DocCommand, all_commands
from tests.docs.rules import normalise, rule_for

pytestmark = pytest.mark.docs


class KnownFailure(AssertionError):
    """The failure a rule's ``xfail`` names (any other failure of that command fails the test)."""


def _distinct() -> list[tuple[DocCommand, list[str]]]:
    seen: dict[str, tuple[DocCommand, list[str]]] = {}
    for cmd in all_commands():
        seen.setdefault(normalise(cmd.text), (cmd, []))[1].append(cmd.where)
    return list(seen.values())


def _param(cmd: DocCommand, where: list[str]):
    rules = rule_for(cmd.text)
    marks = []
    if len(rules) == 1 and rules[0].xfail:
        marks.append(pytest.mark.xfail(strict=True, reason=rules[0].xfail, raises=KnownFailure))
    short = re.sub(r"\s+", " ", cmd.text.splitlines()[0])[:70]
    return pytest.param(cmd, marks=marks, id=f"{cmd.where} {short}")


@pytest.mark.parametrize("cmd", [_param(c, w) for c, w in _distinct()])
def test_doc_command_runs(cmd, docs_ws):
    rules = rule_for(cmd.text)
    assert len(rules) == 1, "see test_docs_coverage.py: every command needs exactly one rule"
    rule = rules[0]
    if rule.how == "skip":
        pytest.skip(f"not run here: {rule.reason}")
    outcomes = docs_ws.run(cmd)
    for outcome in outcomes:
        if rule.xfail and outcome.exit_code != rule.exit_code and re.search(rule.xfail_output or "", outcome.output):
            raise KnownFailure(f"{rule.xfail}\n{outcome.describe()}")
        assert outcome.exit_code == rule.exit_code, outcome.describe()
    if rule.check:
        run_check(docs_ws, rule.check, outcomes[-1])
