"""Corpus layer: recipes -> lhotse manifests (+ summaries), folds, augmentation, sampling,
collation, and the synthetic demo corpus (:mod:`metaser.data.demo`).

Lower layer: imports nothing from models / training / experiments / inference.
"""
