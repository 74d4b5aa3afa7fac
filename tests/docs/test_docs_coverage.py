"""The registry covers the docs: every command has exactly one rule, every rule a command.

These run in the default suite (no marker): a command added to the docs without a rule fails
``make test`` at once, with the way to add one.
"""

from __future__ import annotations

import re
import textwrap

from tests.docs.checks import CHECKS
from tests.docs.extract import DocCommand, all_commands, markdown_commands, yaml_commands
from tests.docs.rules import PLACEHOLDERS, RULES, normalise, rule_for
from tests.docs.workspace import STATES

HOW_TO_ADD = (
    "add a Rule to tests/docs/rules.py (export/predict/serve/bench: rules_serve.py) whose `match` "
    "(a regex over the whole command, whitespace collapsed) covers it, and say how it runs: "
    "how=cli|bash|python|heredoc|background, the placeholder substitutions, the shrinking overrides "
    "(append=TRAIN for training), needs=..., or how='skip' with the honest reason it cannot run here"
)


def test_every_doc_command_has_exactly_one_rule():
    problems = []
    for cmd in all_commands():
        rules = rule_for(cmd.text)
        if len(rules) != 1:
            what = "no rule" if not rules else f"{len(rules)} rules: " + " | ".join(r.match for r in rules)
            problems.append(f"{cmd.where}: {normalise(cmd.text)[:200]!r} has {what}")
    assert not problems, "\n".join(problems) + "\n\nTo fix: " + HOW_TO_ADD


def test_every_rule_matches_a_command():
    texts = [cmd.text for cmd in all_commands()]
    stale = [r.match for r in RULES if not any(re.fullmatch(r.match, normalise(t), flags=re.S) for t in texts)]
    assert not stale, "stale rules (the docs no longer show their command): remove or update them:\n" + "\n".join(stale)


def test_every_placeholder_is_used():
    texts = [normalise(c.text) for c in all_commands()]
    unused = [p for p, _ in PLACEHOLDERS if not any(re.search(p, t) for t in texts)]
    assert not unused, f"placeholders no command uses any more: {unused}"


def test_rules_are_complete():
    provided = {r.provides for r in RULES if r.provides}
    for r in RULES:
        for state in r.needs:
            assert state in STATES or state in provided, f"{r.match}: nothing provides {state!r}"
        if r.how == "skip":
            assert len(r.reason) > 20, f"{r.match}: a command that does not run needs its honest reason"
        if r.check:
            assert r.check.partition(":")[0] in CHECKS, r.check
        assert r.how in {"cli", "bash", "python", "heredoc", "background", "skip"}, r.how
        if r.xfail:
            assert r.xfail.startswith("issue"), "an xfail names the issue that fixes it"
    skipped = [r for r in RULES if r.how == "skip"]
    assert len(skipped) <= 8, "very few commands may be left out"


def test_extract_joins_continuations_drops_comments_and_ignores_output_blocks(tmp_path):
    md = tmp_path / "README.md"
    md.write_text(
        textwrap.dedent(
            """\
            intro
            ```bash
            # a comment line
            metaser cv a.yaml x=1 \\
                y=2   # trailing comment
            FILES=$(ls '#not a comment')
            python - <<'EOF'
            print("in the heredoc")
            EOF
            ```
            ```text
            metaser not-a-command
            ```
            ```python
            import metaser
            print(1)
            ```
            ```
            metaser layout-listing
            ```
            """
        )
    )
    got = [(c.line, c.kind, c.text) for c in markdown_commands(md, tmp_path)]
    assert got == [
        (4, "bash", "metaser cv a.yaml x=1 y=2"),
        (6, "bash", "FILES=$(ls '#not a comment')"),
        (7, "bash", "python - <<'EOF'\nprint(\"in the heredoc\")\nEOF"),
        (15, "python", "import metaser\nprint(1)"),
    ]


def test_extract_reads_preset_comments_and_expands_the_ellipsis(tmp_path):
    y = tmp_path / "p.yaml"
    y.write_text(
        "# A preset.\n#   metaser cv configs/p.yaml model.x=1\n#   ... a=1 b=2\n"
        "#   (add --param x=... for more)\nname: p  # metaser inline is not a command\n"
    )
    got = yaml_commands(y, tmp_path)
    assert got == [
        DocCommand("p.yaml", 2, "bash", "metaser cv configs/p.yaml model.x=1"),
        DocCommand("p.yaml", 3, "bash", "metaser cv configs/p.yaml model.x=1 a=1 b=2"),
    ]


def test_the_docs_show_the_commands_the_issue_names():
    texts = {normalise(c.text) for c in all_commands()}
    for enc in ("wav2vec2-base", "hubert-base", "wavlm-base"):
        assert any(t.startswith(f"metaser cv configs/iemocap/{enc}.yaml") and "bucketing" in t for t in texts)
    assert any(t.startswith("from metaser import EmotionRecognizer") for t in texts)
