"""Benchmarks (``metaser bench``): speed and memory are measured here, never by timed unit tests.

:mod:`.train` (training throughput: reference vs tuned), :mod:`.infer` (inference speed per
backend and batch size), :mod:`.serve` (the HTTP service under load), :mod:`.common` (what the
inference benchmarks share).
"""
