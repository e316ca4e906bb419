"""MemListDataset: the same samples as ListDataset, decoded once into memory when it is built.
Worth it when decoding costs more than the training step and the dataset fits in RAM."""
from data.list_dataset import ListDataset
from utils.errors import ConfigError


class MemListDataset(ListDataset):
    def __init__(self, args, is_train):
        super().__init__(args, is_train)
        self.cache, bad = [], []  # (img, label) arrays; every bad sample, said at once
        for i in range(len(self.samples)):
            try:
                self.cache.append(ListDataset.load(self, i))
            except ConfigError as e:
                bad.append(str(e))
        if bad:
            raise ConfigError(f'{len(bad)} of {len(self.samples)} samples cannot be used:\n  '
                              + '\n  '.join(bad[:20]))

    def load(self, index):
        return self.cache[index]
