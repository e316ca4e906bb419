"""The data pipelines that scripts/benchmark_data.py times, each a callable
(img, label, index) -> ((3, CROP, CROP) float32 tensor, (CROP, CROP) int64 tensor) doing the same
work: rescale by a factor in SCALE_RANGE, crop CROP x CROP (padded), flip, normalize."""
import os

import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from data.augment import MEAN, PAD, STD, augment, to_tensor
from data.image_io import read_image, read_label

CROP, SCALE_RANGE, IGNORE = 512, (0.5, 2.0), 255


class Ours:
    """SegDataset's training sample: augment, then to_tensor."""
    name = 'ours'

    def __call__(self, img, label, index):
        # as SegDataset draws: a function of (seed, epoch, index)
        rng = np.random.default_rng([0, 1, index])
        return to_tensor(*augment(img, label, rng, (CROP, CROP), SCALE_RANGE, IGNORE))


class Torchvision:
    """The same with torchvision.transforms.v2, as its segmentation reference writes it."""
    name = 'torchvision'

    def __init__(self, short_side):
        lo, hi = (round(short_side * s) for s in SCALE_RANGE)
        fill = {tv_tensors.Image: [round(v) for v in PAD], tv_tensors.Mask: IGNORE}
        self.transform = v2.Compose([
            # the shorter side drawn between half and twice the images' own; no antialiasing,
            # which neither ours nor albumentations does (it would cost torchvision more)
            v2.RandomResize(lo, hi, antialias=False),
            v2.RandomCrop(CROP, pad_if_needed=True, fill=fill),
            v2.RandomHorizontalFlip(),
            v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64},
                       scale=True),
            v2.Normalize((MEAN / 255).tolist(), (STD / 255).tolist()),
        ])

    def __call__(self, img, label, index):
        # torch takes no negative strides (image_io's RGB view of a BGR decode): one copy
        img = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)  # (3, H, W)
        label = torch.from_numpy(np.array(label))  # a writable copy: torch warns of read-only
        return self.transform(tv_tensors.Image(img), tv_tensors.Mask(label))


class Albumentations:
    """The same with albumentations (2.x's argument names)."""
    name = 'albumentations'

    def __init__(self):
        import albumentations as A
        from albumentations.pytorch import ToTensorV2
        self.transform = A.Compose([
            A.RandomScale(scale_limit=(SCALE_RANGE[0] - 1, SCALE_RANGE[1] - 1), p=1),
            A.PadIfNeeded(CROP, CROP, border_mode=cv2.BORDER_CONSTANT, fill=PAD,
                          fill_mask=IGNORE),
            A.RandomCrop(CROP, CROP),
            A.HorizontalFlip(),
            A.Normalize(),  # ImageNet's mean and std, as ours
            ToTensorV2(),
        ], seed=0)

    def __call__(self, img, label, index):
        out = self.transform(image=img, mask=label)
        return out['image'], out['mask'].long()


def albumentations_version():
    """Its version, or None when it is not installed (not a requirement of TorchBase)."""
    # its import would otherwise ask the internet for a newer version
    os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
    try:
        import albumentations
    except ImportError:
        return None
    return albumentations.__version__


def make_pipelines(short_side):
    """Ours, torchvision's and, when it is installed, albumentations'."""
    others = [Albumentations()] if albumentations_version() else []
    return [Ours(), Torchvision(short_side)] + others


def decode(sample):
    """The step every pipeline shares: the project's decoding of an image and its label."""
    img_path, label_path = sample
    return read_image(img_path, img_path), read_label(label_path, label_path)
