"""Writes the demo dataset: RGB images of circles, rectangles and triangles on noisy backgrounds,
their label PNGs (class index per pixel) and train.txt / val.txt lists; the same seed gives the same
files. Run: python -m data.make_shapes --out demo_data/shapes   (train.py calls it on first use of
the default lists; ensure_demo_data also makes the classification demo of data/make_shapes_cls.py)
"""
import argparse
import os
import shutil
import uuid

import cv2
import numpy as np

CLASS_NAMES = ('background', 'circle', 'rectangle', 'triangle')
DEMO_DIR = os.path.join('demo_data', 'shapes')  # the default --train_list / --val_list live here


def draw_shape(mask, cls, center, r, rng):
    """Fills one shape of class `cls` with radius about `r` into `mask`, in place."""
    if cls == 1:
        cv2.circle(mask, center, r, cls, thickness=-1)
        return
    if cls == 2:  # a rotated rectangle, neither too thin nor a square
        size = (2 * r * rng.uniform(0.8, 1.0), 2 * r * rng.uniform(0.5, 0.8))
        corners = cv2.boxPoints((center, size, rng.uniform(0, 180)))
    else:  # a roughly equilateral triangle at a random angle
        angles = rng.uniform(0, 2 * np.pi) + np.deg2rad([0, 120, 240] + rng.uniform(-12, 12, 3))
        corners = np.stack([center[0] + r * np.cos(angles), center[1] + r * np.sin(angles)], 1)
    cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], cls)


def background(rng, size):
    """A (size, size, 3) float RGB image of one random colour under a soft gradient, and the
    colour."""
    bg = rng.uniform(0, 255, 3)
    ramp = np.linspace(-1, 1, size)[None, :, None] * rng.uniform(-40, 40, 3)  # (1, size, 1) * (3,)
    return np.broadcast_to(bg + ramp, (size, size, 3)).copy(), bg


def visible_colour(rng, bg, contrast=150):
    """A random RGB colour that differs from `bg` by `contrast` at least (sum over R, G, B)."""
    colour = rng.uniform(0, 255, 3)
    while np.abs(colour - bg).sum() < contrast:
        colour = rng.uniform(0, 255, 3)
    return colour


def noisy(img, rng, sigma=12):
    """`img` with Gaussian noise of std `sigma` added, as uint8."""
    img = img + rng.normal(0, sigma, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_sample(rng, size):
    """One (image (H, W, 3) RGB uint8, label (H, W) uint8) pair with 1 to 3 shapes that do not
    touch."""
    img, bg = background(rng, size)
    label = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(1, 4)):
        for _attempt in range(20):  # re-draw a shape that would touch another
            r = int(rng.uniform(0.12, 0.24) * size)
            center = tuple(int(c) for c in rng.integers(r, size - r, 2))
            shape = np.zeros_like(label)
            draw_shape(shape, int(rng.integers(1, len(CLASS_NAMES))), center, r, rng)
            if not ((cv2.dilate(label, np.ones((3, 3), np.uint8)) > 0) & (shape > 0)).any():
                break
        else:
            continue
        img[shape > 0] = visible_colour(rng, bg)
        label = np.maximum(label, shape)
    return noisy(img, rng), label


def write_split(out_dir, split, n, size, seed):
    lines = []
    split_id = ('train', 'val').index(split)
    # each sample from its own (seed, split, index) stream: any n gives the same first samples
    for i in range(n):
        img, label = make_sample(np.random.default_rng([seed, split_id, i]), size)
        name = f'{split}_{i:04d}.png'
        cv2.imwrite(os.path.join(out_dir, 'images', name), img[:, :, ::-1])  # cv2 writes BGR
        cv2.imwrite(os.path.join(out_dir, 'labels', name), label)
        lines.append(f'images/{name} labels/{name}\n')
    with open(os.path.join(out_dir, f'{split}.txt'), 'w') as f:
        f.writelines(lines)


def make_shapes(out_dir, n_train=800, n_val=200, size=48, seed=0):
    """Writes the dataset into `out_dir`, which must not exist (see build_atomically)."""
    def write(tmp):
        for sub in ('images', 'labels'):
            os.makedirs(os.path.join(tmp, sub))
        write_split(tmp, 'train', n_train, size, seed)
        write_split(tmp, 'val', n_val, size, seed)

    return build_atomically(out_dir, write)


def build_atomically(out_dir, write):
    """Calls write(folder) on a new temporary folder, then renames it to `out_dir`, which must not
    exist, so a crash never leaves a half-written dataset; returns False when another process
    finished the same dataset first (its copy is kept). Every demo writes a val.txt."""
    if os.path.exists(out_dir):
        raise FileExistsError(f'{out_dir} exists; delete it to make the dataset again')
    # os.makedirs, unlike tempfile, leaves it readable to others
    tmp = f'{out_dir}.tmp-{uuid.uuid4().hex[:8]}'
    try:
        os.makedirs(tmp)
        write(tmp)
        os.rename(tmp, out_dir)
        return True
    except OSError:
        if os.path.isfile(os.path.join(out_dir, 'val.txt')):  # a concurrent writer won the rename
            return False
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_demo_data(list_path):
    """Makes a demo dataset when `list_path` is one of its lists and it does not exist yet: the
    segmentation demo in DEMO_DIR, the classification demo in CLS_DEMO_DIR."""
    from data.make_shapes_cls import CLS_DEMO_DIR, make_shapes_cls  # here: it imports this module
    for demo_dir, make in ((DEMO_DIR, make_shapes), (CLS_DEMO_DIR, make_shapes_cls)):
        in_demo = os.path.dirname(os.path.abspath(list_path)) == os.path.abspath(demo_dir)
        if in_demo and not os.path.exists(demo_dir):
            print(f'Making the demo dataset in {demo_dir}/ (once)')
            try:
                make(demo_dir)
            except FileExistsError:  # another process made it since the check above
                pass


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default=DEMO_DIR)
    parser.add_argument('--n_train', type=int, default=800)
    parser.add_argument('--n_val', type=int, default=200)
    parser.add_argument('--size', type=int, default=48)
    parser.add_argument('--seed', type=int, default=0)
    a = parser.parse_args()
    try:
        make_shapes(a.out, a.n_train, a.n_val, a.size, a.seed)
    except FileExistsError as e:
        raise SystemExit(f'error: {e}') from None
    print(f'Wrote {a.n_train} training and {a.n_val} validation samples to {a.out}/')
