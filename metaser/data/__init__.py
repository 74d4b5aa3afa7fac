"""Corpus layer: recipes -> lhotse manifests, folds, augmentation, sampling, collation.

Lower layer: imports nothing from models / training / experiments / inference.
"""
