"""Samplers whose order is a function of (seed, epoch) alone, so a resumed run sees the same
batches as an uninterrupted one, whatever the number of loader workers; under torchrun each
process takes its share. Each training index also carries its epoch (EpochIndex), so a dataset
can draw its augmentation from (seed, epoch, index) even inside persistent loader workers,
which never see a set_epoch call."""
import math

import numpy as np
from torch.utils.data import DistributedSampler, Sampler

from utils.dist import rank, world_size
from utils.errors import ConfigError


class EpochIndex(int):
    """An int (indexes a list like any int) that also knows the epoch it was drawn in."""

    def __new__(cls, index, epoch):
        self = super().__new__(cls, index)
        self.epoch = epoch
        return self

    def __reduce__(self):  # keeps .epoch on the way to a loader worker
        return EpochIndex, (int(self), self.epoch)


class EpochSampler(DistributedSampler):
    """The training order: a permutation drawn from (seed, epoch), padded as DistributedSampler
    pads it (repeating its first samples) so that every process gets as many, then shared out
    (one process gets it whole). set_epoch(epoch, skip) chooses the epoch and skips its first
    `skip` samples of this process's share: resuming mid-epoch is skipping the batches already
    trained on."""

    def __init__(self, n, seed, num_replicas=1, rank=0, limit=0):
        super().__init__(range(n), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.skip = 0
        # --limit_train_batches: samples per epoch
        self.limit = min(limit or self.num_samples, self.num_samples)

    def set_epoch(self, epoch, skip=0):
        super().set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        # (seed, epoch) seeds numpy's generator; DistributedSampler's own seed + epoch would
        # give seed 1 the orders of seed 0 shifted by one epoch
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.dataset)).tolist()
        order = (order * math.ceil(self.total_size / len(order)))[:self.total_size]
        share = order[self.rank::self.num_replicas][self.skip:self.limit]
        return (EpochIndex(i, self.epoch) for i in share)

    def __len__(self):
        return self.limit - self.skip


class ShardSampler(Sampler):
    """Evaluation order: samples rank, rank + N, rank + 2N, ... of N processes, without
    padding, so that every sample is counted exactly once when the processes add up their
    metrics."""

    def __init__(self, n, num_replicas=1, rank=0, limit=0):
        if n < num_replicas:  # a process without a sample would have no metrics to add up
            raise ConfigError(
                f'{n} samples to evaluate for {num_replicas} processes: each needs one at least; '
                'start fewer processes (torchrun --nproc_per_node) or evaluate a longer list'
            )
        self.indices = list(range(rank, n, num_replicas))[:limit or None]  # --limit_val_batches

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class SizeBatchSampler(Sampler):
    """Evaluation batches, each of images of one size: validation and eval.py score every image
    at its own size, so any --batch_size gives the same predictions (a batch padded to its
    largest image would change them near the padding, through the model's receptive field).
    `size(index)`: (H, W) of a sample; None when they all have one size. `batches` is public:
    eval.py reads which samples a batch holds."""

    def __init__(self, indices, batch_size, size=None, limit=0):
        groups = {}  # by size, in the order of their first sample
        for i in indices:
            groups.setdefault(size(i) if size else None, []).append(i)
        self.batches = [group[k:k + batch_size] for group in groups.values()
                        for k in range(0, len(group), batch_size)][:limit or None]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def make_sampler(n, args, is_train):
    """The training or the evaluation order of n samples; under torchrun, this process's share
    of it. The debug flags shorten it: --overfit_batches N keeps the first N batches of samples
    (the same ones every epoch; the Trainer validates on them too), --limit_train_batches /
    --limit_val_batches N the first N batches of an epoch."""
    overfit = args.overfit_batches * args.batch_size * world_size()
    n = min(n, overfit or n)
    limit = args.limit_train_batches if is_train else args.limit_val_batches
    shard = dict(num_replicas=world_size(), rank=rank(), limit=limit * args.batch_size)
    return EpochSampler(n, args.seed, **shard) if is_train else ShardSampler(n, **shard)
