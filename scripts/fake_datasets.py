"""Realistic stand-ins for VOC and Cityscapes, written into a folder for scripts/benchmark.py:
images of their size whose files are about their size (decoding costs what it costs on the real
ones), with label maps of their kind. Nothing is downloaded."""
import os

import cv2
import numpy as np

# name -> (width, height, image format, classes, grain, files written). The grain (the noise's
# standard deviation) is set so that the files are as large as the real ones (VOC's JPEGs about
# 100 KB, Cityscapes' PNGs about 2.2 MB). The loader cycles over the files: a file costs as much
# to decode each time as a new one would.
KINDS = {
    'voc': (500, 375, 'jpg', 21, 24, 24),
    'cityscapes': (2048, 1024, 'png', 34, 1.6, 4),
}
# JPEG quality 90, as Flickr's photos (VOC); PNG at zlib's usual level 6 (Cityscapes)
ENCODING = {'jpg': [cv2.IMWRITE_JPEG_QUALITY, 90], 'png': [cv2.IMWRITE_PNG_COMPRESSION, 6]}


def scene(rng, width, height, classes, grain):
    """An (H, W, 3) uint8 image of smooth light, objects and sensor noise, and its (H, W) uint8
    label (0 the background, 255 the objects' outlines, as VOC marks them)."""
    # light that varies slowly over the image: a few random values, upsampled smoothly
    coarse = rng.uniform(40, 220, (4, 6, 3)).astype(np.float32)
    img = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    label = np.zeros((height, width), np.uint8)
    for _ in range(40):
        colour = rng.uniform(0, 255, 3).tolist()
        cls = int(rng.integers(1, classes))
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        axes = (int(rng.integers(width // 40, width // 6)),
                int(rng.integers(height // 40, height // 6)))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(img, centre, axes, angle, 0, 360, colour, -1, cv2.LINE_AA)
        cv2.ellipse(label, centre, axes, angle, 0, 360, cls, -1)
        cv2.ellipse(label, centre, axes, angle, 0, 360, 255, 3)
    # texture: noise blurred a little, as a lens and demosaicing leave it
    noise = cv2.GaussianBlur(rng.normal(0, grain, img.shape).astype(np.float32), (0, 0), 0.5)
    return np.clip(img + noise, 0, 255).astype(np.uint8), label


def write(root, kind, seed=0):
    """Writes `kind`'s files under root/kind; returns [(image_path, label_path)] and the mean
    image file size in KB."""
    width, height, ext, classes, grain, count = KINDS[kind]
    folder = os.path.join(root, kind)
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        img, label = scene(rng, width, height, classes, grain)
        img_path = os.path.join(folder, f'{i}.{ext}')
        label_path = os.path.join(folder, f'{i}_label.png')
        cv2.imwrite(img_path, img[:, :, ::-1], ENCODING[ext])  # cv2 writes BGR
        cv2.imwrite(label_path, label)
        samples.append((img_path, label_path))
    kb = np.mean([os.path.getsize(path) for path, _ in samples]) / 1024
    return samples, kb
