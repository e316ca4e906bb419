"""data/augment.py: the crop's size and padding, exact pixels where nothing is resampled, labels
that keep their values, a function of the rng alone, and to_tensor's normalization."""
import numpy as np
import pytest
import torch

from data.augment import MEAN, STD, augment, scale_and_crop, to_tensor
from data.data_entry import type2data


def sample(h, w, seed=0, values=(0, 3, 7)):
    """A random (h, w, 3) uint8 image and an (h, w) uint8 label holding only `values`."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return img, rng.choice(np.array(values, np.uint8), (h, w))


def bgr_view(img):
    """The same RGB pixels as data/image_io.py returns them: a view of a BGR array."""
    return np.ascontiguousarray(img[:, :, ::-1])[:, :, ::-1]


@pytest.mark.parametrize('size, crop, scales', [
    ((40, 30), (16, 24), (0.5, 2.0)),  # larger than the crop
    ((10, 12), (16, 24), (0.5, 2.0)),  # smaller: padded
    ((20, 20), (20, 20), (1.0, 1.0)),
])
def test_output_has_the_crop_size(size, crop, scales):
    img, label = sample(*size)
    for seed in range(5):
        out, out_label = scale_and_crop(img, label, np.random.default_rng(seed), crop, scales, 255)
        assert out.shape == (*crop, 3) and out.dtype == np.uint8
        assert out_label.shape == crop


@pytest.mark.parametrize('ignore_index', [255, -100])
@pytest.mark.parametrize('view', [np.ascontiguousarray, bgr_view])
def test_padding_is_ignored_in_the_label_and_zero_once_normalized(ignore_index, view):
    img, label = sample(6, 9)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        out, out_label = scale_and_crop(view(img), label, rng, (16, 20), (1.0, 1.0), ignore_index)
        pad = out_label == ignore_index
        assert pad.sum() == 16 * 20 - 6 * 9  # every input pixel once, the rest padding
        # the padding is exactly the ignore index: nothing else is outside label's values
        assert set(np.unique(out_label[~pad])) <= {0, 3, 7}
        normalized = to_tensor(out, out_label)[0].numpy()  # (3, H, W)
        assert np.abs(normalized[:, pad]).max() < 0.01  # the mean colour, rounded to uint8
        ys, xs = np.nonzero(~pad)
        y0, x0 = ys.min(), xs.min()
        assert np.array_equal(out[y0:y0 + 6, x0:x0 + 9], img)
        assert np.array_equal(out_label[y0:y0 + 6, x0:x0 + 9], label)


@pytest.mark.parametrize('view', [np.ascontiguousarray, bgr_view])
def test_scale_one_crops_an_exact_slice_of_the_input(view):
    img, label = sample(40, 50)
    rows, cols = np.mgrid[:40, :50]
    img[:, :, 0], img[:, :, 1] = rows, cols  # each pixel says where it came from
    corners = set()
    for seed in range(8):
        rng = np.random.default_rng(seed)
        out, out_label = scale_and_crop(view(img), label, rng, (16, 24), (1.0, 1.0), 255)
        y0, x0 = out[0, 0, :2]
        assert np.array_equal(out, img[y0:y0 + 16, x0:x0 + 24])
        assert np.array_equal(out_label, label[y0:y0 + 16, x0:x0 + 24])
        corners.add((y0, x0))
    assert len(corners) > 1  # the crop's place is random


def test_a_rescaled_label_holds_only_its_own_values():
    img, label = sample(37, 53, values=(0, 3, 7, 255))
    for seed in range(20):
        rng = np.random.default_rng(seed)
        _, out_label = scale_and_crop(img, label, rng, (32, 32), (0.5, 2.0), 255)
        assert set(np.unique(out_label)) <= {0, 3, 7, 255}  # nearest, never a blend


def test_the_same_seed_gives_the_same_sample():
    img, label = sample(30, 40)
    runs = [augment(img, label, np.random.default_rng(seed), (24, 24), (0.5, 2.0))
            for seed in (3, 3, 4)]
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[2][0])


# augment without crop_size: the flips its two draws decide, (horizontal, vertical)
FLIPPED = {
    (False, False): [[0, 1, 2], [3, 4, 5]],
    (True, False): [[2, 1, 0], [5, 4, 3]],
    (False, True): [[3, 4, 5], [0, 1, 2]],
    (True, True): [[5, 4, 3], [2, 1, 0]],
}


def test_without_crop_size_only_flips():
    label = np.array([[0, 1, 2], [3, 4, 5]], np.uint8)
    img = (label[:, :, None] * np.array([1, 10, 40])).astype(np.uint8)  # (2, 3, 3)
    seen = set()
    for seed in range(16):
        flips = tuple(np.random.default_rng(seed).random(2) < 0.5)
        out, out_label = augment(img, label, np.random.default_rng(seed))
        expected = np.array(FLIPPED[flips], np.uint8)
        assert np.array_equal(out_label, expected)
        assert np.array_equal(out, expected[:, :, None] * np.array([1, 10, 40], np.uint8))
        seen.add(flips)
    assert len(seen) == 4  # every case was checked


@pytest.mark.parametrize('flip', [(1, 1), (1, -1), (-1, 1), (-1, -1)])
@pytest.mark.parametrize('view', [np.ascontiguousarray, bgr_view])
def test_to_tensor_normalizes_any_view(flip, view):
    img, label = sample(5, 7)
    img, label = view(img)[::flip[0], ::flip[1]], label[::flip[0], ::flip[1]]
    out, out_label = to_tensor(img, label)
    expected = ((img.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)
    assert out.is_contiguous() and np.array_equal(out.numpy(), expected)
    assert out_label.dtype == torch.int64
    assert np.array_equal(out_label.numpy(), label)


def test_photos_are_never_turned_upside_down():
    """vflip=False (the photo layouts' datasets): a horizontal flip at most, whatever the draw;
    the draws that follow are the same as with vflip=True."""
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    label = np.arange(24, dtype=np.uint8).reshape(4, 6)
    flipped = set()
    for seed in range(16):
        out, out_label = augment(img, label, np.random.default_rng(seed), vflip=False)
        assert np.array_equal(out_label, label) or np.array_equal(out_label, label[:, ::-1])
        assert np.array_equal(out[:, :, 0] // 3, out_label)  # the image moved with its label
        flipped.add(np.array_equal(out_label, label[:, ::-1]))
        rng, again = np.random.default_rng(seed), np.random.default_rng(seed)
        augment(img, label, rng, vflip=False)
        augment(img, label, again, vflip=True)
        assert rng.random() == again.random()
    assert flipped == {True, False}
    assert not any(type2data[name].vflip for name in ('voc', 'cityscapes', 'ade20k', 'folder'))
