"""``python -m metaser.paper``: print the paper's tables as Markdown.

``python -m metaser.paper --write docs/paper.md`` rewrites the generated block of that file.
"""

from __future__ import annotations

import sys

from metaser.errors import MetaserError
from metaser.paper.markdown import render_markdown, write_into


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if not args:
            sys.stdout.write(render_markdown())
            return 0
        if len(args) == 2 and args[0] == "--write":
            write_into(args[1])
            return 0
        raise MetaserError("usage: python -m metaser.paper [--write FILE.md]")
    except MetaserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
