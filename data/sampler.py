"""EpochSampler: the training order as a function of (seed, epoch) alone, so a resumed run sees the same
batches as an uninterrupted one, whatever the number of loader workers.
Each index it yields also carries the epoch (EpochIndex), so a dataset can draw its augmentation from
(seed, epoch, index) even inside persistent loader workers, which never see a set_epoch call."""
import numpy as np
from torch.utils.data import Sampler


class EpochIndex(int):
    """An int (indexes a list like any int) that also knows the epoch it was drawn in."""

    def __new__(cls, index, epoch):
        self = super().__new__(cls, index)
        self.epoch = epoch
        return self

    def __reduce__(self):  # keeps .epoch on the way to a loader worker
        return EpochIndex, (int(self), self.epoch)


class EpochSampler(Sampler):
    """Yields a permutation of range(n) (or range(n) itself when shuffle is False) drawn from (seed, epoch).
    set_epoch(epoch, skip) chooses the epoch and skips its first `skip` samples: resuming mid-epoch is
    skipping the batches already trained on."""

    def __init__(self, n, seed, shuffle=True):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch, skip=0):
        self.epoch, self.skip = epoch, skip

    def order(self):
        if not self.shuffle:
            return list(range(self.n))
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist()

    def __iter__(self):
        return (EpochIndex(i, self.epoch) for i in self.order()[self.skip:])

    def __len__(self):
        return self.n - self.skip
