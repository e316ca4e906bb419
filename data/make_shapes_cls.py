"""Writes the classification demo: RGB images of one circle, rectangle or triangle each, on noisy
gradient backgrounds, and train.txt / val.txt lists of `image_path class_index` lines; the same
seed gives the same files. Run: python -m data.make_shapes_cls --out demo_data/shapes_cls
(data.make_shapes.ensure_demo_data calls it on first use of the default lists of this demo)
"""
import argparse
import os

import cv2
import numpy as np

from data.make_shapes import background, build_atomically, draw_shape, noisy, visible_colour

CLS_CLASS_NAMES = ('circle', 'rectangle', 'triangle')  # class i is draw_shape's class i + 1
CLS_DEMO_DIR = os.path.join('demo_data', 'shapes_cls')  # holds the default cls lists


def make_cls_sample(rng, cls, size):
    """An (H, W, 3) RGB uint8 image of one shape of class `cls` (an index of CLS_CLASS_NAMES), of
    random size, place, angle and colour. EDIT ME: the knobs of how hard the demo is."""
    img, bg = background(rng, size)
    r = int(rng.uniform(0.2, 0.4) * size)
    center = tuple(int(c) for c in rng.integers(r, size - r, 2))  # the shape lies inside the image
    mask = np.zeros((size, size), np.uint8)
    draw_shape(mask, cls + 1, center, r, rng)
    img[mask > 0] = visible_colour(rng, bg, contrast=120)
    return noisy(img, rng, sigma=16)


def write_split(out_dir, split, n, size, seed):
    lines = []
    split_id = ('train', 'val').index(split)
    for i in range(n):
        cls = i % len(CLS_CLASS_NAMES)  # as many samples of each class
        # each sample from its own (seed, split, index) stream: any n gives the same first samples
        img = make_cls_sample(np.random.default_rng([seed, split_id, i]), cls, size)
        name = f'{split}_{i:04d}.png'
        cv2.imwrite(os.path.join(out_dir, 'images', name), img[:, :, ::-1])  # cv2 writes BGR
        lines.append(f'images/{name} {cls}\n')
    with open(os.path.join(out_dir, f'{split}.txt'), 'w') as f:
        f.writelines(lines)


def make_shapes_cls(out_dir, n_train=1500, n_val=300, size=32, seed=0):
    """Writes the dataset into `out_dir`, which must not exist (see build_atomically)."""
    def write(tmp):
        os.makedirs(os.path.join(tmp, 'images'))
        write_split(tmp, 'train', n_train, size, seed)
        write_split(tmp, 'val', n_val, size, seed)

    return build_atomically(out_dir, write)


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default=CLS_DEMO_DIR)
    parser.add_argument('--n_train', type=int, default=1500)
    parser.add_argument('--n_val', type=int, default=300)
    parser.add_argument('--size', type=int, default=32)
    parser.add_argument('--seed', type=int, default=0)
    a = parser.parse_args()
    try:
        make_shapes_cls(a.out, a.n_train, a.n_val, a.size, a.seed)
    except FileExistsError as e:
        raise SystemExit(f'error: {e}') from None
    print(f'Wrote {a.n_train} training and {a.n_val} validation images to {a.out}/')
