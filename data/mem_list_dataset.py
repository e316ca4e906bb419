"""MemListDataset: the same samples as ListDataset, decoded once into memory when it is built.
Worth it when decoding costs more than the training step and the dataset fits in RAM."""
from data.list_dataset import ListDataset


class MemListDataset(ListDataset):
    def __init__(self, args, is_train):
        super().__init__(args, is_train)
        # (img, label) arrays
        self.cache = [ListDataset.load(self, i) for i in range(len(self.samples))]

    def load(self, index):
        return self.cache[index]
