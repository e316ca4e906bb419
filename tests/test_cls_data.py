"""The classification data: the demo generator (data/make_shapes_cls.py) and ClsListDataset, its
`image_path class_index` list format, its flips and the errors a bad list or image gives."""
import collections
import filecmp
import functools
import os
import re

import cv2
import numpy as np
import pytest
import torch

import data.make_shapes_cls
from data.augment import to_tensor
from data.cls_list_dataset import ClsListDataset, read_cls_list
from data.data_entry import get_dataset_by_type, select_train_loader
from data.make_shapes import DEMO_DIR, ensure_demo_data
from data.make_shapes_cls import CLS_CLASS_NAMES, CLS_DEMO_DIR, make_shapes_cls
from data.sampler import EpochIndex
from tests.conftest import make_args
from utils.errors import ConfigError


def cls_args(list_path, **kw):
    """--task cls flags (3 classes, --ignore_index -100) reading `list_path` for both splits."""
    return make_args(task='cls', train_list=str(list_path), val_list=str(list_path), **kw)


def test_make_shapes_cls_is_deterministic_and_never_overwrites(tmp_path):
    for name, seed in (('a', 7), ('b', 7), ('c', 8)):
        assert make_shapes_cls(str(tmp_path / name), n_train=6, n_val=3, size=24, seed=seed)
    same = filecmp.dircmp(tmp_path / 'a' / 'images', tmp_path / 'b' / 'images')
    assert len(same.same_files) == 9 and not same.diff_files
    other = filecmp.dircmp(tmp_path / 'a' / 'images', tmp_path / 'c' / 'images')
    assert other.diff_files  # another seed, other images
    for split in ('train.txt', 'val.txt'):
        assert (tmp_path / 'a' / split).read_text() == (tmp_path / 'b' / split).read_text()
    assert sorted(os.listdir(tmp_path)) == ['a', 'b', 'c'], 'a temporary folder was left behind'
    with pytest.raises(FileExistsError, match='delete it'):
        make_shapes_cls(str(tmp_path / 'a'), n_train=1, n_val=1)


@pytest.mark.parametrize('split, n', [('train', 12), ('val', 6)])
def test_demo_lists_name_every_image_with_balanced_classes(shapes_cls, split, n):
    lines = (shapes_cls / f'{split}.txt').read_text().splitlines()
    assert len(lines) == n
    for i, line in enumerate(lines):
        assert re.fullmatch(rf'images/{split}_{i:04d}\.png [0-2]', line)
        img = cv2.imread(str(shapes_cls / line.split()[0]), cv2.IMREAD_UNCHANGED)
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    counts = collections.Counter(line.split()[1] for line in lines)
    assert len(counts) == len(CLS_CLASS_NAMES) and max(counts.values()) - min(counts.values()) <= 1


def test_ensure_demo_data_makes_the_demo_its_list_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small = functools.partial(make_shapes_cls, n_train=3, n_val=3)  # the real size takes longer
    monkeypatch.setattr(data.make_shapes_cls, 'make_shapes_cls', small)
    ensure_demo_data(os.path.join('elsewhere', 'train.txt'))
    assert not os.path.exists('demo_data')
    ensure_demo_data(os.path.join(CLS_DEMO_DIR, 'train.txt'))
    assert len(read_cls_list(os.path.join(CLS_DEMO_DIR, 'val.txt'), 3, -100)) == 3
    assert not os.path.exists(DEMO_DIR)  # the segmentation demo is not made for it
    ensure_demo_data(os.path.join(CLS_DEMO_DIR, 'val.txt'))  # made once: kept as it is
    assert os.listdir('demo_data') == ['shapes_cls']


def test_item_is_a_normalized_image_and_its_class(shapes_cls):
    ds = get_dataset_by_type(cls_args(shapes_cls / 'val.txt', data_type='cls_list'), False)
    assert isinstance(ds, ClsListDataset) and len(ds) == 6
    path, cls, _ = ds.samples[1]
    img, label = ds[1]
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32
    assert label.shape == () and label.dtype == torch.int64 and label == cls == 1
    rgb = cv2.imread(path)[:, :, ::-1]
    assert torch.equal(img, to_tensor(rgb, np.zeros(rgb.shape[:2]))[0])  # as the seg data is


def test_training_flips_depend_on_seed_epoch_and_index_only(shapes_cls):
    def epoch(seed, e):
        ds = ClsListDataset(cls_args(shapes_cls / 'train.txt', seed=seed), True)
        return [ds[EpochIndex(i, e)][0] for i in range(len(ds))]

    ds = ClsListDataset(cls_args(shapes_cls / 'train.txt'), True)
    plain = [to_tensor(*ds.load(i))[0] for i in range(len(ds))]
    flipped = 0
    for e in range(4):
        items = epoch(0, e)
        assert all(torch.equal(a, b) for a, b in zip(items, epoch(0, e), strict=True))
        for item, image in zip(items, plain, strict=True):
            assert torch.equal(item, image) or torch.equal(item, image.flip(2))  # mirrored or not
            flipped += not torch.equal(item, image)
    assert 0 < flipped < 4 * 12
    assert any(not torch.equal(a, b) for a, b in zip(epoch(0, 1), epoch(1, 1), strict=True))
    val = ClsListDataset(cls_args(shapes_cls / 'train.txt'), False)
    assert all(torch.equal(val[EpochIndex(i, 3)][0], plain[i]) for i in range(12))  # no flips


def test_loader_batches_classes(shapes_cls):
    args = cls_args(shapes_cls / 'train.txt', batch_size=5, num_workers=0)
    labels = [label for _, label in select_train_loader(args)]
    assert [tuple(b.shape) for b in labels] == [(5,), (5,), (2,)]


@pytest.mark.parametrize('text, message', [
    ('a.png\n', r'l.txt:1: expected `image_path class_index`, got'),
    ('a.png 1 2\n', r'l.txt:1: expected `image_path class_index`, got'),
    ('# a comment\n\na.png x\n', r"l.txt:3: class index 'x' is not an integer; expected 0..2 "
                                 r'\(--num_classes\) or -100 \(--ignore_index\)'),
    ('a.png 1.0\n', r"l.txt:1: class index '1.0' is not an integer"),
    ('a.png 1\nb.png 3\n', r'l.txt:2: class index 3, expected 0..2 \(--num_classes\) or -100'),
    ('a.png -1\n', r'l.txt:1: class index -1, expected'),
    ('# only a comment\n', r'lists no samples; add lines of `image_path class_index`'),
])
def test_bad_line_names_file_line_and_value(tmp_path, text, message):
    (tmp_path / 'l.txt').write_text(text)
    with pytest.raises(ConfigError, match=message):
        get_dataset_by_type(cls_args(tmp_path / 'l.txt'), False)
    with pytest.raises(ConfigError, match=message):  # the check made before a run starts
        ClsListDataset.check_inputs(cls_args(tmp_path / 'l.txt'), True)


def test_list_is_read_without_its_images(tmp_path):
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'sub' / 'l.txt').write_bytes(b'\xef\xbb\xbfa.png 2\r\n../b.png -100 # ignored\r\n')
    samples = read_cls_list(str(tmp_path / 'sub' / 'l.txt'), 3, -100)  # a BOM, CRLF: still text
    where = str(tmp_path / 'sub' / 'l.txt')
    assert samples == [(str(tmp_path / 'sub' / 'a.png'), 2, f'{where}:1'),
                       (str(tmp_path / 'sub' / '../b.png'), -100, f'{where}:2')]


def test_binary_list_file_is_a_clear_error(tmp_path):
    cv2.imwrite(str(tmp_path / 'l.txt.png'), np.zeros((4, 4, 3), np.uint8))
    os.rename(tmp_path / 'l.txt.png', tmp_path / 'l.txt')
    with pytest.raises(ConfigError, match=r'l.txt:1: not a text file of `image_path class_index`'):
        read_cls_list(str(tmp_path / 'l.txt'), 3, -100)


@pytest.mark.parametrize('name, message', [
    ('missing.png', r'l.txt:2: cannot read .*missing.png: no such file'),
    ('folder', r'l.txt:2: cannot read .*folder: it is a directory, not a file \(a line holds '
               '`image_path class_index`'),
    ('corrupt.png', r'l.txt:2: cannot read .*corrupt.png: not an image, or a corrupt one'),
])
def test_unreadable_image_names_file_and_line(tmp_path, name, message):
    cv2.imwrite(str(tmp_path / 'ok.png'), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / 'folder').mkdir()
    (tmp_path / 'corrupt.png').write_bytes(b'not a png')
    (tmp_path / 'l.txt').write_text(f'ok.png 0\n{name} 1\n')
    ds = get_dataset_by_type(cls_args(tmp_path / 'l.txt'), False)
    assert ds[0][1] == 0
    with pytest.raises(ConfigError, match=message):
        ds[1]
