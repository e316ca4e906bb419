"""Augmentations shared by every dataset (training samples only) and the image <-> tensor
conversion.
EDIT ME: add your augmentations to `augment`; keep them joint for image and label."""
import cv2
import numpy as np
import torch

# ImageNet statistics: the usual choice for RGB inputs, and what pretrained backbones expect.
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
# image padding: the mean colour, which to_tensor turns into 0
PAD = tuple(MEAN.round().tolist())
# to_tensor's look-up tables: channel c's normalized value of each uint8, as (x - MEAN) / STD
# computes it in float32
NORMALIZED = np.ascontiguousarray(((np.arange(256, dtype=np.float32)[:, None] - MEAN) / STD).T)


def augment(img, label, rng, crop_size=None, scale_range=(1.0, 1.0), ignore_index=255,
            vflip=True):
    """A training sample's random geometry: with crop_size (H, W), a rescale by a factor drawn
    from scale_range and a crop of crop_size at a random place, padded where the rescaled image
    is smaller (the label with ignore_index, so padding is never scored); then a horizontal
    flip and, with vflip, a vertical one (photos have an up: their datasets turn it off).
    (H, W, 3) uint8 image, (H, W) label or None (classification).
    `rng` is a numpy Generator, so the caller decides what the randomness depends on."""
    if crop_size:
        img, label = scale_and_crop(img, label, rng, crop_size, scale_range, ignore_index)
    if rng.random() < 0.5:
        img = img[:, ::-1]
        label = None if label is None else label[:, ::-1]
    if rng.random() < 0.5 and vflip:  # drawn either way: the same draws follow
        img = img[::-1]
        label = None if label is None else label[::-1]
    return img, label


def scale_and_crop(img, label, rng, crop_size, scale_range, ignore_index):
    """Rescale, crop and pad in one affine warp per array: only the crop's pixels are computed,
    not the whole rescaled image (a 2048 x 1024 frame rescaled by 2 is 8 M pixels, its crop of
    512 x 512 is 0.26 M)."""
    (ch, cw), (h, w) = crop_size, img.shape[:2]
    scale = rng.uniform(*scale_range)
    sh, sw = round(h * scale), round(w * scale)
    # the crop's corner in the rescaled image; negative where it is smaller than the crop
    y0 = rng.integers(min(0, sh - ch), max(0, sh - ch) + 1)
    x0 = rng.integers(min(0, sw - cw), max(0, sw - cw) + 1)
    # output pixel (x, y) samples the input at ((x + x0 + 0.5) / sx - 0.5, ...), as cv2.resize
    sy, sx = sh / h, sw / w
    warp = np.float32([[sx, 0, 0.5 * sx - 0.5 - x0], [0, sy, 0.5 * sy - 0.5 - y0]])
    # cv2 copies a whole array whose strides it cannot take (10 ms for a 2048 x 1024 frame), as
    # data/image_io.py's RGB view of the BGR array it decodes: warp that array, reverse the crop
    bgr = img.strides[2] < 0
    img = cv2.warpAffine(img[:, :, ::-1] if bgr else img, warp, (cw, ch),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=PAD[::-1] if bgr else PAD)
    img = img[:, :, ::-1] if bgr else img
    if label is not None:
        if not np.can_cast(np.min_scalar_type(ignore_index), label.dtype):
            label = label.astype(np.int32)  # e.g. --ignore_index -100 with uint8 labels
        label = cv2.warpAffine(label, warp, (cw, ch), flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=ignore_index)
    return img, label


def to_tensor(img, label):
    """(H, W, 3) uint8 RGB image -> normalized (3, H, W) float32; label -> int64 class
    indices. A uint8 has 256 values: each channel is one table look-up, written straight into
    its plane of the output (6x faster than numpy's four passes, with the same float32 values)."""
    out = np.empty((3,) + img.shape[:2], np.float32)  # (3, H, W)
    img, bgr = unflipped(img)
    planes = cv2.split(img)
    for c, plane in enumerate(planes[::-1] if bgr else planes):
        cv2.LUT(plane, NORMALIZED[c], dst=out[c])  # dst has the size and type cv2 needs: kept
    return torch.from_numpy(out), torch.from_numpy(label.astype(np.int64))


def unflipped(img):
    """(H, W, C) `img` as an array without negative strides, and whether its channels are
    reversed. cv2 copies a view with negative strides (augment's flips, image_io's RGB view of
    BGR) element by element: 2 ms for a 512 x 512 crop, where cv2.flip takes 0.04 ms."""
    bgr = img.strides[2] < 0
    img = img[:, :, ::-1] if bgr else img
    rows, cols = img.strides[0] < 0, img.strides[1] < 0
    if rows or cols:  # flip code: 0 the rows, 1 the columns, -1 both
        img = cv2.flip(img[::-1 if rows else 1, ::-1 if cols else 1],
                       -1 if rows and cols else int(cols))
    return img, bgr


def denormalize(img):
    """Inverse of `to_tensor` for one image: (3, H, W) float tensor -> (H, W, 3) uint8 numpy
    array."""
    img = img.detach().float().cpu().numpy().transpose(1, 2, 0) * STD + MEAN
    return np.clip(img, 0, 255).round().astype(np.uint8)
