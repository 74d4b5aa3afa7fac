"""Corpus layer: recipes -> lhotse manifests (+ summaries), folds, augmentation, sampling,
collation and the frozen-prefix feature store.

Lower layer: imports nothing from models / training / experiments / inference. (The synthetic
demo corpus is demo tooling: :mod:`metaser.experiments.demo.corpus`.)
"""
