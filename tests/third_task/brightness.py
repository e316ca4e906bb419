"""BrightnessDataset (--data_type brightness): noisy grey images, each labelled with its mean
brightness in [0, 1]. The samples are made in memory from --seed, so there is no file to read.
tests/test_new_task.py copies this file to data/brightness.py to add a third task."""
import numpy as np
import torch
from torch.utils.data import Dataset

SIZES = {True: 24, False: 8}  # training and validation images: tiny, for a fast test
IMAGE_SIZE = 16


class BrightnessDataset(Dataset):
    @staticmethod
    def check_inputs(args, is_train):
        """Nothing to check before a run: the samples are made from --seed, not read from
        --train_list / --val_list (which only name the split)."""

    def __init__(self, args, is_train):
        split = 0 if is_train else 1
        self.samples = [make_sample(np.random.default_rng([args.seed, split, i]))
                        for i in range(SIZES[is_train])]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]


def make_sample(rng):
    """(image (3, H, W) float in [0, 1], its mean brightness () float): one random grey level
    with noise."""
    level = rng.uniform(30, 225)
    pixels = level + rng.normal(0, 20, (IMAGE_SIZE, IMAGE_SIZE, 1))  # (H, W, 1)
    img = np.clip(pixels, 0, 255).round().astype(np.uint8).repeat(3, axis=2)  # (H, W, 3)
    img = torch.from_numpy(img).permute(2, 0, 1).float() / 255  # (3, H, W)
    return img, img.mean()
