"""The Lightning data module of one fold: train / valid / test loaders built per process."""

from __future__ import annotations

import pytorch_lightning as pl
from lhotse import CutSet

from metaser.data.dataset import make_dataloader
from metaser.data.labels import LabelSpace
from metaser.training.config import RunConfig

__all__ = ["FoldData"]


class FoldData(pl.LightningDataModule):
    """Builds loaders lazily, inside each (DDP) process, so lhotse samplers shard by rank."""

    def __init__(
        self,
        cfg: RunConfig,
        labels: LabelSpace,
        tasks: list[str],
        train: CutSet,
        valid: CutSet,
        test: CutSet,
        store=None,
    ):
        super().__init__()
        self.cfg, self.labels, self.tasks = cfg, labels, tasks
        self.cuts = {"train": train, "valid": valid, "test": test}
        self.store = store  # a FeatureStore of the frozen prefix (metaser.training.frozen), or None

    def _loader(self, split: str, epoch: int = 0):
        # Lightning calls set_epoch on the lhotse sampler at every epoch (resume included).
        # Shard by the trainer asking for the loader, not by whether a process group exists:
        # the single-device trainers that evaluate after a DDP fit must see every utterance.
        trainer = getattr(self, "trainer", None)
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return make_dataloader(
            self.cuts[split],
            self.labels,
            self.tasks,
            self.cfg.data,
            train=split == "train",
            epoch_seed=epoch,
            world_size=world,
            rank=rank,
            store=self.store,
        )

    def train_dataloader(self):
        # Lightning creates the first iterator (and prefetches a batch) before it calls
        # set_epoch; on resume that would replay epoch 0's shuffle. Start the sampler at the
        # epoch the fit loop is about to run (0 on a fresh fit).
        trainer = getattr(self, "trainer", None)
        epoch = int(trainer.fit_loop.epoch_progress.current.processed) if trainer is not None else 0
        return self._loader("train", epoch)

    def val_dataloader(self):
        return self._loader("valid")

    def test_dataloader(self):
        return self._loader("test")
