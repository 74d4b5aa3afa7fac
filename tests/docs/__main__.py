"""``python -m tests.docs``: every command of the docs and how the docs tests run it (markdown)."""

from __future__ import annotations

from tests.docs.extract import all_commands
from tests.docs.rules import normalise, rule_for


def main() -> None:
    seen: dict[str, list[str]] = {}
    first = {}
    for cmd in all_commands():
        key = normalise(cmd.text)
        seen.setdefault(key, []).append(cmd.where)
        first.setdefault(key, cmd)
    print("| where | command | how it runs |")
    print("|---|---|---|")
    for key, where in seen.items():
        rules = rule_for(key)
        if len(rules) != 1:
            how = f"**{len(rules)} rules**"
        else:
            r = rules[0]
            if r.how == "skip":
                how = f"not run: {r.reason}"
            else:
                parts = [r.how]
                if r.subs:
                    parts.append("subs " + ", ".join(f"`{a}`→`{b}`" for a, b in r.subs))
                if r.append:
                    parts.append("+ `" + " ".join(r.append) + "`")
                if r.needs:
                    parts.append("needs " + ", ".join(r.needs))
                if r.xfail:
                    parts.append(f"**xfail**: {r.xfail}")
                if r.reason:
                    parts.append(f"({r.reason})")
                how = "; ".join(parts)
        text = key.splitlines()[0] + (" ..." if "\n" in key else "")
        shown = text.replace("|", "\\|")
        print(f"| {', '.join(where)} | `{shown}` | {how.replace('|', '/')} |")


if __name__ == "__main__":
    main()
