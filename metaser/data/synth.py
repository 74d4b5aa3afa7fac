"""Compatibility name: the demo corpus lives in :mod:`metaser.data.demo`.

``from metaser.data.synth import synthesize_demo_corpus`` keeps working (``metaser demo``
and the test fixtures use it); new code imports from :mod:`metaser.data.demo`.
"""

from __future__ import annotations

from metaser.data.demo import *  # noqa: F401,F403  (re-export)
from metaser.data.demo import __all__  # noqa: F401
