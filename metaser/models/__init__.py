"""Model layer: SSL encoder, layer fusion (ARI), task heads, co-attention, the composed model.

Knows nothing of stages, folds or corpora: it maps waveforms to per-task outputs.
"""
