"""Augmentations shared by every dataset (training samples only) and the image <-> tensor
conversion.
EDIT ME: add your augmentations to `augment`; keep them joint for image and label."""
import numpy as np
import torch

# ImageNet statistics: the usual choice for RGB inputs, and what pretrained backbones expect.
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def augment(img, label, rng):
    """Random horizontal and vertical flips of an (H, W, 3) image and its (H, W) label.
    `rng` is a numpy Generator, so the caller decides what the randomness depends on."""
    if rng.random() < 0.5:
        img, label = img[:, ::-1], label[:, ::-1]
    if rng.random() < 0.5:
        img, label = img[::-1], label[::-1]
    return img, label


def to_tensor(img, label):
    """(H, W, 3) uint8 RGB image -> normalized (3, H, W) float32; (H, W) label -> int64 class
    indices."""
    img = (img.astype(np.float32) - MEAN) / STD
    return torch.from_numpy(img.transpose(2, 0, 1).copy()), torch.from_numpy(label.astype(np.int64))


def denormalize(img):
    """Inverse of `to_tensor` for one image: (3, H, W) float tensor -> (H, W, 3) uint8 numpy
    array."""
    img = img.detach().float().cpu().numpy().transpose(1, 2, 0) * STD + MEAN
    return np.clip(img, 0, 255).round().astype(np.uint8)
