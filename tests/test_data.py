"""Contract of every registered dataset, the list format, augmentation and the demo data
generator."""
import filecmp
import os
import pickle

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data.augment import to_tensor
from data.cls_list_dataset import ClsListDataset
from data.data_entry import (
    get_dataset_by_type,
    make_loader,
    select_eval_loader,
    select_train_loader,
    type2data,
)
from data.make_shapes import CLASS_NAMES, make_shapes
from data.sampler import EpochIndex, EpochSampler, ShardSampler
from tests.conftest import make_args
from tests.test_layouts import LAYOUTS, layout_args
from utils.errors import ConfigError


def args_for(shapes, **kw):
    return make_args(train_list=str(shapes / 'train.txt'), val_list=str(shapes / 'val.txt'), **kw)


def is_cls(data_type):
    return issubclass(type2data[data_type], ClsListDataset)


def data_args(shapes, shapes_cls, data_type, tmp_path):
    """Flags for `data_type` on the tiny demo of its task (a cls dataset reads a cls list), or
    on a tiny copy of its layout (tests/test_layouts.py), in crops of one size."""
    if data_type in LAYOUTS:
        return layout_args(data_type, LAYOUTS[data_type](tmp_path), crop_size=[24])
    if is_cls(data_type):
        return args_for(shapes_cls, data_type=data_type, task='cls')
    return args_for(shapes, data_type=data_type)


@pytest.mark.parametrize('data_type', list(type2data))
def test_dataset_items(shapes, shapes_cls, data_type, tmp_path):
    for is_train in (True, False):
        ds = get_dataset_by_type(data_args(shapes, shapes_cls, data_type, tmp_path), is_train)
        assert len(ds) > 0
        img, label = ds[len(ds) - 1]
        assert img.dtype == torch.float32 and img.dim() == 3
        per_sample = () if is_cls(data_type) else img.shape[1:]  # a class per image, or per pixel
        assert label.dtype == torch.int64 and label.shape == per_sample


def epoch_items(ds, epoch):
    """Every sample of `ds` as the training sampler would index it in `epoch`."""
    return torch.stack([ds[EpochIndex(i, epoch)][0] for i in range(len(ds))])


@pytest.mark.parametrize('data_type', list(type2data))
def test_augmentation_depends_on_seed_epoch_and_index_only(shapes, shapes_cls, data_type, tmp_path):
    ds = get_dataset_by_type(data_args(shapes, shapes_cls, data_type, tmp_path), True)
    epochs = [epoch_items(ds, epoch) for epoch in range(6)]
    assert torch.equal(epoch_items(ds, 3), epochs[3])  # repeatable
    assert any(not torch.equal(epochs[0], e) for e in epochs[1:])  # but varies between epochs


def test_demo_items(shapes):
    ds = get_dataset_by_type(args_for(shapes), True)
    assert len(ds) == 12
    img, label = ds[0]
    assert img.shape == (3, 32, 32) and label.shape == (32, 32)
    assert 0 <= label.min() and label.max() < len(CLASS_NAMES)


def test_augmentation_depends_on_the_seed(shapes):
    def epoch_1(seed):
        return epoch_items(get_dataset_by_type(args_for(shapes, seed=seed), True), 1)

    assert not torch.equal(epoch_1(0), epoch_1(1))


def test_eval_samples_are_not_augmented(shapes):
    ds = get_dataset_by_type(args_for(shapes), False)
    for i in range(len(ds)):
        assert all(
            torch.equal(a, b)
            for a, b in zip(ds[EpochIndex(i, 5)], to_tensor(*ds.load(i)), strict=True)
        )


def test_mem_list_matches_list(shapes):
    a = get_dataset_by_type(args_for(shapes, data_type='list'), True)
    b = get_dataset_by_type(args_for(shapes, data_type='mem_list'), True)
    for i in range(len(a)):
        assert all(torch.equal(x, y) for x, y in zip(a[i], b[i], strict=True))


def test_list_paths_resolve_against_list_folder(shapes, tmp_path):
    lst = tmp_path / 'sub' / 'my.txt'
    lst.parent.mkdir()
    lst.write_text(f'# a comment\n\n{shapes}/images/val_0000.png {shapes}/labels/val_0000.png\n'
                   '../missing.png ../missing_label.png\n')
    ds = get_dataset_by_type(make_args(val_list=str(lst)), False)
    assert len(ds) == 2
    assert ds.samples[1][0] == str(tmp_path / 'sub' / '../missing.png')
    with pytest.raises(ConfigError, match=r'my.txt:4: cannot read .*missing.png'):
        ds[1]


def test_malformed_line_names_file_and_line(tmp_path):
    lst = tmp_path / 'bad.txt'
    lst.write_text('a.png b.png\nonly_one_path.png\n')
    with pytest.raises(ConfigError, match=r'bad.txt:2: expected `image_path label_path`'):
        get_dataset_by_type(make_args(val_list=str(lst)), False)


@pytest.mark.parametrize('value, ok', [(1, True), (255, True), (2, False)])
def test_label_outside_the_classes_names_file_and_line(tmp_path, value, ok):
    label = np.zeros((4, 4), np.uint8)
    label[0, 0] = value
    cv2.imwrite(str(tmp_path / 'img.png'), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'label.png'), label)
    (tmp_path / 'l.txt').write_text('# one sample\nimg.png label.png\n')
    ds = get_dataset_by_type(
        make_args(val_list=str(tmp_path / 'l.txt'), num_classes=2, class_names=['a', 'b']),
        False,
    )
    if ok:
        assert ds[0][1][0, 0] == value
    else:
        with pytest.raises(
            ConfigError,
            match=(
                r'l.txt:2: label .* holds class 2, expected 0..1 \(--num_classes\) '
                r'or 255 \(--ignore_index\)'
            ),
        ):
            ds[0]


def test_missing_list_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match='does not exist'):
        get_dataset_by_type(make_args(val_list=str(tmp_path / 'nope.txt')), False)


def test_shuffle_order_follows_the_seed():
    def order(seed):
        loader = make_loader(list(range(12)), make_args(batch_size=12, seed=seed), is_train=True)
        return next(iter(loader)).tolist()

    assert order(0) == order(0) != order(1)
    assert sorted(order(0)) == list(range(12)) != order(0)


def test_loaders_batch_and_shuffle_by_seed(shapes):
    args = args_for(shapes, batch_size=5, num_workers=0)
    first = [label for _, label in select_train_loader(args)]
    again = [label for _, label in select_train_loader(args)]
    assert [len(b) for b in first] == [5, 5, 2]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert [len(label) for _, label in select_eval_loader(args)] == [5, 1]


def test_make_shapes_is_deterministic_readable_and_never_overwrites(tmp_path):
    for name in ('a', 'b'):
        assert make_shapes(str(tmp_path / name), n_train=3, n_val=2, size=24, seed=7)
    cmp = filecmp.dircmp(tmp_path / 'a' / 'images', tmp_path / 'b' / 'images')
    assert len(cmp.same_files) == 5 and not cmp.diff_files
    assert (tmp_path / 'a' / 'train.txt').read_text() == (tmp_path / 'b' / 'train.txt').read_text()
    ds = get_dataset_by_type(make_args(val_list=str(tmp_path / 'a' / 'val.txt')), False)
    labels = torch.stack([ds[i][1] for i in range(len(ds))])
    assert set(np.unique(labels.numpy())) - {0} and labels.max() < len(CLASS_NAMES)
    assert sorted(os.listdir(tmp_path)) == ['a', 'b'], 'a temporary build folder was left behind'
    umask = os.umask(0)
    os.umask(umask)
    # not private like a tempfile folder
    assert os.stat(tmp_path / 'a').st_mode & 0o777 == 0o777 & ~umask
    with pytest.raises(FileExistsError, match='delete it'):
        make_shapes(str(tmp_path / 'a'), n_train=1, n_val=1)
    assert len((tmp_path / 'a' / 'train.txt').read_text().splitlines()) == 3


def test_sampler_order_is_a_function_of_seed_and_epoch_and_skips_for_resume():
    def order(seed, epoch, skip=0):
        sampler = EpochSampler(10, seed)
        sampler.set_epoch(epoch, skip)
        items = list(sampler)
        assert len(sampler) == len(items) and all(i.epoch == epoch for i in items)
        return [int(i) for i in items]

    assert sorted(order(0, 1)) == list(range(10))
    assert order(0, 1) == order(0, 1) != order(0, 2) and order(0, 1) != order(1, 1)
    assert order(1, 1) != order(0, 2)  # not a function of seed + epoch
    # the order runs were saved with
    assert order(0, 1) == np.random.default_rng([0, 1]).permutation(10).tolist()
    assert order(0, 3, skip=4) == order(0, 3)[4:]  # resuming after 4 samples


def test_samplers_share_the_data_out_between_processes():
    whole = [int(i) for i in EpochSampler(10, 0)]
    shares = [[int(i) for i in EpochSampler(10, 0, num_replicas=3, rank=r)] for r in range(3)]
    # 10 samples padded to 12: each process takes as many steps
    assert [len(s) for s in shares] == [4, 4, 4]
    padded = whole + whole[:2]
    assert all(shares[r] == padded[r::3] for r in range(3))
    evaluated = [ShardSampler(10, num_replicas=3, rank=r).indices for r in range(3)]
    # evaluation: every sample once, none padded
    assert sorted(sum(evaluated, [])) == list(range(10))
    assert list(ShardSampler(4)) == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match='1 samples to evaluate for 2 processes'):
        ShardSampler(1, num_replicas=2, rank=1)  # process 1 would have nothing to add up


def test_epoch_index_keeps_its_epoch_through_pickle():
    i = pickle.loads(pickle.dumps(EpochIndex(7, 3)))
    assert i == 7 and i.epoch == 3 and [10, 11, 12, 13, 14, 15, 16, 17][i] == 17


@pytest.mark.parametrize('num_workers, persistent', [(2, False), (2, True)])
def test_loader_workers_persistent_or_not_give_the_batches_of_the_main_process(
        shapes, num_workers, persistent):
    def epochs(loader):
        out = []
        for epoch in (1, 2):
            loader.sampler.set_epoch(epoch)
            out += [img for img, _ in loader]
        return out

    args = args_for(shapes, batch_size=4, num_workers=0)
    expected = epochs(select_train_loader(args))
    loader = select_train_loader(args_for(shapes, batch_size=4, num_workers=num_workers))
    # workers that live across epochs never see a call made in the main process after they start
    if persistent:
        loader = DataLoader(
            loader.dataset,
            batch_size=4,
            sampler=loader.sampler,
            num_workers=num_workers,
            persistent_workers=True,
        )
    got = epochs(loader)
    assert len(got) == len(expected) == 6 and all(
        torch.equal(a, b) for a, b in zip(got, expected, strict=True)
    )
    # the two epochs do differ
    assert not torch.equal(torch.cat(expected[:3]), torch.cat(expected[3:]))
