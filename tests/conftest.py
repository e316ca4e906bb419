"""Shared fixtures: a tiny generated dataset, argument lists and Namespaces for fast CPU runs
under tmp_path."""
import argparse
import subprocess

import cv2
import pytest

from data.make_shapes import make_shapes
from data.make_shapes_cls import make_shapes_cls
from model.model_entry import select_model
from options import RUN_ARGS, parse_test_args, parse_train_args, task_defaults
from task.task_entry import type2task
from utils.errors import ConfigError


@pytest.fixture(scope='session')
def shapes(tmp_path_factory):
    """12 training and 6 validation 32x32 samples of the demo task, written once per test
    session."""
    root = tmp_path_factory.mktemp('data') / 'shapes'
    make_shapes(str(root), n_train=12, n_val=6, size=32, seed=0)
    return root


@pytest.fixture(scope='session')
def shapes_cls(tmp_path_factory):
    """12 training and 6 validation 32x32 images of the classification demo, written once."""
    root = tmp_path_factory.mktemp('data') / 'shapes_cls'
    make_shapes_cls(str(root), n_train=12, n_val=6, size=32, seed=0)
    return root


@pytest.fixture(scope='session')
def shapes_mixed(shapes, tmp_path_factory):
    """The tiny demo data with its images (and labels) rescaled to three sizes, 32 x 32,
    40 x 24 and 24 x 40 (W x H) in turn, as a real dataset's come: train.txt and val.txt."""
    root = tmp_path_factory.mktemp('data') / 'shapes_mixed'
    for folder in ('images', 'labels'):
        (root / folder).mkdir(parents=True)
    sizes = [(32, 32), (40, 24), (24, 40)]
    for split in ('train', 'val'):
        lines = (shapes / f'{split}.txt').read_text().split()
        pairs = list(zip(lines[::2], lines[1::2], strict=True))
        for n, (image, label) in enumerate(pairs):
            size = sizes[n % len(sizes)]
            img = cv2.imread(str(shapes / image))
            cv2.imwrite(str(root / image), cv2.resize(img, size, interpolation=cv2.INTER_AREA))
            gt = cv2.imread(str(shapes / label), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(root / label), cv2.resize(gt, size, interpolation=cv2.INTER_NEAREST))
        (root / f'{split}.txt').write_text('\n'.join(f'{i} {g}' for i, g in pairs) + '\n')
    return root


@pytest.fixture(scope='session')
def tiny_data(shapes, shapes_cls):
    """{--task: the folder of its tiny dataset}: 12 training and 6 validation samples each, as the
    tests parametrized over type2task count steps by them. EDIT ME: a new task's tiny dataset
    (tests/test_train_eval.py fails until it has one)."""
    return {'seg': shapes, 'cls': shapes_cls}


@pytest.fixture(scope='session')
def task_lists(tiny_data):
    """task -> `--task task` and the lists of its tiny dataset: what a test of every task starts
    from."""
    def lists(task):
        assert task in tiny_data, f'tests/conftest.py: tiny_data has no dataset for --task {task}'
        root = tiny_data[task]
        return ['--task', task, '--train_list', str(root / 'train.txt'),
                '--val_list', str(root / 'val.txt')]
    return lists


def run_name(task, prefix='exp'):
    """The run folder's name that train.py gives a run of `task` with its default --model_type."""
    return f"{type2task[task].defaults['model_type']}_{prefix}"


def monitor(task):
    """The task's --monitor without its `val/` (e.g. `mIoU`): its name in eval.main's scores."""
    return type2task[task].defaults['monitor'].split('/', 1)[1]


@pytest.fixture
def task_argv(task_lists, tmp_path):
    """task -> the flags of a two-epoch training run of `task` on its tiny dataset (train_argv's,
    for any task), every output under tmp_path."""
    return lambda task: task_lists(task) + [
        '--checkpoints_dir', str(tmp_path / 'checkpoints'),
        '--epochs', '2',
        '--batch_size', '4',
        '--num_workers', '0',
    ]


@pytest.fixture
def train_argv(shapes, tmp_path):
    """Flags for a two-epoch training run on the tiny dataset, every output under tmp_path."""
    return [
        '--train_list', str(shapes / 'train.txt'),
        '--val_list', str(shapes / 'val.txt'),
        '--checkpoints_dir', str(tmp_path / 'checkpoints'),
        '--epochs', '2',
        '--batch_size', '4',
        '--num_workers', '0',
    ]


def make_args(is_train=True, **overrides):
    """The real parser's defaults (every declared flag), with `overrides` applied."""
    parser = parse_train_args if is_train else parse_test_args
    args = parser(argparse.ArgumentParser()).parse_args([])
    for k, v in overrides.items():
        assert hasattr(args, k), f'{k} is not a declared flag'
        setattr(args, k, v)
    for name in ('task',) + RUN_ARGS:  # eval.py takes these from the checkpoint
        if getattr(args, name) is None:
            setattr(args, name, parse_train_args(argparse.ArgumentParser()).get_default(name))
    return task_defaults(args, is_train)


def select_or_skip(args):
    """select_model(args), or the test skipped when the model needs a package that is not
    installed (smp_fpn: segmentation_models_pytorch; CI installs it: requirements-dev.txt)."""
    try:
        return select_model(args)
    except ConfigError as e:
        if isinstance(e.__cause__, ModuleNotFoundError):
            pytest.skip(str(e))
        raise


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 64 KiB filesystem (needs root and permission to mount; skipped otherwise)."""
    folder = tmp_path / 'tiny'
    folder.mkdir()
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', str(folder)],
                      capture_output=True).returncode:
        pytest.skip('cannot mount a tmpfs here')
    yield folder
    subprocess.run(['umount', str(folder)], check=True)
