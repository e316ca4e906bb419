"""Every bad input of the list in README "Reproducibility" exits non-zero with one clear message
and no traceback, naming the file (and line), the value and the fix. What can be checked before
training is, so it leaves no folder; what only shows while training marks the run failed and keeps
its checkpoints. Earlier runs are never touched."""
import errno
import json
import os
import shutil
import subprocess

import cv2
import numpy as np
import pytest
import torch

import eval as evaluate
import train
import utils.checkpoint
from model.model_entry import select_model
from tests.conftest import make_args
from tests.test_checkpoint import damage_a_tensor, full_disk
from utils import runs
from utils.checkpoint import save_checkpoint
from utils.errors import run_cli
from utils.run_dir import close_logging
from utils.run_status import read_status


@pytest.fixture
def data(shapes, tmp_path):
    """A copy of the tiny dataset that a test may break."""
    return shutil.copytree(shapes, tmp_path / 'data')


@pytest.fixture
def checkpoints(tmp_path):
    """A checkpoints folder holding an earlier run, which no failure may touch."""
    earlier = tmp_path / 'checkpoints' / 'base_earlier'
    earlier.mkdir(parents=True)
    (earlier / 'best.pth').write_bytes(b'earlier')
    (tmp_path / 'checkpoints' / 'latest').write_text('base_earlier\n')
    return tmp_path / 'checkpoints'


def snapshot(folder):
    return {
        os.path.join(d, f): open(os.path.join(d, f), 'rb').read()
        for d, _, fs in os.walk(folder)
        for f in fs
    }


def fails(main, argv, capsys, code=1):
    """Runs an entry point as its command line would; returns its stderr after checking the exit
    status."""
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: main(argv))
    err = capsys.readouterr().err
    assert e.value.code == code, err
    assert 'Traceback' not in err
    return err


def train_argv(data, checkpoints, *extra):
    return [
        '--train_list', str(data / 'train.txt'),
        '--val_list', str(data / 'val.txt'),
        '--checkpoints_dir', str(checkpoints),
        '--epochs', '2',
        '--batch_size', '4',
        *extra,
    ]


def sample_path(data, kind, n):
    """The image or label of the n-th training sample (line n of train.txt)."""
    line = (data / 'train.txt').read_text().splitlines()[n - 1].split()
    return data / line[0 if kind == 'image' else 1]


def break_list(data, text, encoding='utf-8'):
    (data / 'train.txt').write_text(text, encoding=encoding)


def break_label(data, array):
    cv2.imwrite(str(sample_path(data, 'label', 2)), array)


def write_checkpoint(tmp_path, kind):
    path = tmp_path / f'{kind}.pth'
    if kind == 'other_model':
        torch.save(select_model(make_args(model_type='better')).state_dict(), path)
    elif kind == 'resnet18':  # a state dict of which no key is the demo model's
        torchvision = pytest.importorskip('torchvision')
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    elif kind == 'damaged':  # a tensor changed inside a zip that torch loads without a complaint
        save_checkpoint({'model': select_model(make_args()).state_dict()}, str(path))
        damage_a_tensor(path)
    elif kind == 'empty':  # as a full disk can leave a file written by a tool without atomic saves
        path.write_bytes(b'')
    else:
        torch.save({'model': select_model(make_args()).state_dict()}, path)
        data = path.read_bytes()
        path.write_bytes(
            data[:len(data) // 2] if kind == 'truncated' else b'not a checkpoint at all'
        )
    return path


# name -> (what breaks the input, extra flags, what the message must say); all are found before
# the run folder.
BEFORE_START = {
    'missing_list': (
        None,
        ['--val_list', 'nope/val.txt'],
        ['list file nope/val.txt does not exist', '--val_list'],
    ),
    'malformed_line': (
        lambda d, t: break_list(d, (d / 'train.txt').read_text() + 'only_one_path.png\n'),
        [],
        ['train.txt:13: expected `image_path label_path`', "'only_one_path.png'"],
    ),
    'empty_dataset': (
        lambda d, t: break_list(d, '# nothing yet\n'),
        [],
        ['train.txt lists no samples'],
    ),
    'missing_image': (
        lambda d, t: sample_path(d, 'image', 2).unlink(),
        ['--check_data'],
        [
            '1 of 12 samples cannot be used',
            'train.txt:2: cannot read',
            'train_0001.png: no such file',
        ],
    ),
    'corrupt_image': (
        lambda d, t: sample_path(d, 'image', 2).write_bytes(b'\x89PNG garbage'),
        ['--check_data'],
        ['train.txt:2: cannot read', 'not an image, or a corrupt one'],
    ),
    'missing_label': (
        lambda d, t: sample_path(d, 'label', 3).unlink(),
        ['--check_data'],
        ['train.txt:3: cannot read', 'labels/train_0002.png: no such file'],
    ),
    'label_size': (
        lambda d, t: break_label(d, np.zeros((5, 7), np.uint8)),
        ['--check_data'],
        [
            'train.txt:2: label',
            'is 7 x 5, its image', '32 x 32: they must be the same size',
        ],
    ),
    'label_value': (
        lambda d, t: break_label(d, np.full((32, 32), 9, np.uint8)),
        ['--check_data'],
        [
            'train.txt:2: label',
            'holds class 9, expected 0..3 (--num_classes) or 255 (--ignore_index)',
        ],
    ),
    'missing_checkpoint': (
        None,
        ['--load_model_path', 'nope.pth'],
        ['checkpoint nope.pth does not exist'],
    ),
    'truncated_checkpoint': (
        lambda d, t: write_checkpoint(t, 'truncated'),
        ['--load_model_path', '{tmp}/truncated.pth'],
        ['truncated.pth is not a readable checkpoint (truncated or corrupt?)'],
    ),
    'corrupt_checkpoint': (
        lambda d, t: write_checkpoint(t, 'corrupt'),
        ['--load_model_path', '{tmp}/corrupt.pth'],
        ['corrupt.pth is not a readable checkpoint'],
    ),
    'empty_checkpoint': (
        lambda d, t: write_checkpoint(t, 'empty'),
        ['--load_model_path', '{tmp}/empty.pth'],
        ['empty.pth is not a readable checkpoint (empty: 0 bytes, not a torch.save zip file)'],
    ),
    'damaged_checkpoint': (
        lambda d, t: write_checkpoint(t, 'damaged'),
        ['--load_model_path', '{tmp}/damaged.pth'],
        [
            'damaged.pth is damaged: its tensors differ from the checksum '
            'written when it was saved',
            'use another checkpoint (e.g. epoch_N.pth)',
        ],
    ),
    'checkpoint_is_a_folder': (
        None,
        ['--load_model_path', '{tmp}/data'],
        ['data is a directory, not a file; pass a .pth file with --load_model_path'],
    ),
    'partial_load_matching_nothing': (
        lambda d, t: write_checkpoint(t, 'resnet18'),
        ['--load_not_strict', '--load_model_path', '{tmp}/resnet18.pth'],
        [
            'resnet18.pth matches nothing in the model (BaseModel)',
            'the file has conv1.weight, bn1.weight',
            'the model has encoder.',
        ],
    ),
    'binary_list': (
        lambda d, t: (d / 'train.txt').write_bytes(sample_path(d, 'image', 1).read_bytes()),
        [],
        ['train.txt:1: not a text file of `image_path label_path` lines (byte 0x89 at offset 0'],
    ),
    'latin1_list': (
        lambda d, t: break_list(d, (d / 'train.txt').read_text() + '# caf\xe9\n', 'latin-1'),
        [],
        ['train.txt:13: not a text file', '(byte 0xe9 at offset'],
    ),
    'list_is_a_folder': (
        None,
        ['--train_list', '{tmp}/data'],
        ['list file', 'data is a directory, not a file'],
    ),
    'list_line_names_a_folder': (
        lambda d, t: break_list(d, 'images labels/train_0000.png\n'),
        ['--check_data'],
        ['train.txt:1: cannot read', 'images: it is a directory, not a file'],
    ),
    'checkpoints_dir_is_a_file': (
        lambda d, t: (t / 'a_file').write_text('x'),
        ['--checkpoints_dir', '{tmp}/a_file/runs'],
        ['--checkpoints_dir', 'a_file/runs', 'a_file is a file, not a folder'],
    ),
    'strict_load_of_other_model': (
        lambda d, t: write_checkpoint(t, 'other_model'),
        ['--load_model_path', '{tmp}/other_model.pth'],
        ['does not fit the model (BaseModel)', 'missing, e.g. encoder.', '--load_not_strict'],
    ),
    'non_positive_numbers': (
        None,
        ['--batch_size', '0', '--epochs', '-1', '--lr', '0'],
        [
            '--batch_size must be positive, got 0',
            '--epochs must be positive, got -1',
            '--lr must be positive, got 0.0',
        ],
    ),
    'resume_not_a_run': (
        None,
        ['--resume', '{tmp}'],
        ['not a run folder (no last.pth, no args.json)'],
    ),
}


@pytest.mark.parametrize('case', list(BEFORE_START))
def test_bad_input_is_one_clear_error_before_any_folder(case, data, checkpoints, tmp_path, capsys):
    breaks, extra, expected = BEFORE_START[case]
    if breaks:
        breaks(data, tmp_path)
    before = snapshot(checkpoints)
    flags = [a.replace('{tmp}', str(tmp_path)) for a in extra]
    err = fails(train.main, train_argv(data, checkpoints, *flags), capsys)
    for text in expected:
        assert text in err, err
    assert snapshot(checkpoints) == before  # no new folder, the earlier run untouched


def test_gpus_that_are_not_there(data, checkpoints, capsys):
    if torch.cuda.device_count() >= 8:
        pytest.skip('this machine has 8 GPUs')
    err = fails(train.main, train_argv(data, checkpoints, '--gpus', '7'), capsys)
    assert 'GPU 7 is not there' in err and 'leave out --gpus' in err
    assert sorted(os.listdir(checkpoints)) == ['base_earlier', 'latest']


@pytest.mark.parametrize(
    'flag, value', [('--model_type', 'nope'), ('--data_type', 'nope'), ('--loss', 'nope')]
)
def test_unknown_registry_name_lists_the_valid_ones(flag, value, data, checkpoints, capsys):
    err = fails(train.main, train_argv(data, checkpoints, flag, value), capsys, code=2)
    assert f"argument {flag}: invalid choice: 'nope' (choose from" in err
    assert sorted(os.listdir(checkpoints)) == ['base_earlier', 'latest']


@pytest.mark.parametrize('kind', ['truncated', 'corrupt', 'other_model'])
def test_eval_of_a_bad_checkpoint_leaves_no_result_folder(kind, tmp_path, data, capsys):
    path = write_checkpoint(tmp_path, kind)
    argv = ['--load_model_path', str(path), '--val_list', str(data / 'val.txt')]
    err = fails(evaluate.main, argv, capsys)
    assert str(path) in err
    assert not (tmp_path / kind).exists()


def test_image_that_breaks_while_training_marks_the_run_failed_and_keeps_its_checkpoints(
        data, checkpoints, monkeypatch, capsys):
    end_epoch = train.Trainer.end_epoch

    def end_epoch_then_break_an_image(self, epoch):
        end_epoch(self, epoch)
        sample_path(data, 'image', 5).write_bytes(b'')  # found unreadable in epoch 2

    monkeypatch.setattr(train.Trainer, 'end_epoch', end_epoch_then_break_an_image)
    err = fails(train.main, train_argv(data, checkpoints), capsys)
    assert 'train.txt:5: cannot read' in err and 'train_0004.png' in err
    run = checkpoints / 'base_exp'
    status = read_status(run)
    assert status['status'] == 'failed' and 'train.txt:5: cannot read' in status['message']
    assert (
        status['epochs_done'] == 1
        and torch.load(run / 'last.pth', weights_only=True)['epoch'] == 1
    )


def test_non_finite_loss_stops_with_epoch_and_step_keeping_the_last_good_checkpoint(
        data, checkpoints, monkeypatch, capsys):
    compute_loss = train.Trainer.compute_loss
    calls = []

    def nan_at_epoch_2_step_2(self, pred, gt):
        calls.append(self.model.training)
        loss = compute_loss(self, pred, gt)
        # training steps: 3 per epoch
        return loss * float('nan') if calls.count(True) == 5 else loss

    monkeypatch.setattr(train.Trainer, 'compute_loss', nan_at_epoch_2_step_2)
    err = fails(train.main, train_argv(data, checkpoints, '--print_freq', '100'), capsys)
    assert 'the loss is not finite at epoch 2, step 2/3' in err and 'Lower --lr' in err
    run = checkpoints / 'base_exp'
    ckpt = torch.load(run / 'last.pth', weights_only=True)
    assert ckpt['epoch'] == 1 and all(
        v.isfinite().all() for v in ckpt['model'].values() if v.is_floating_point()
    )
    assert read_status(run)['status'] == 'failed'


class Payload:
    """Unpickling this creates a file: what a malicious checkpoint could do if it were loaded with
    pickle."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def test_pickled_payload_is_refused_everywhere_and_never_runs(data, checkpoints, tmp_path, capsys):
    marker = tmp_path / 'payload_ran'
    evil = tmp_path / 'evil'
    evil.mkdir()
    torch.save(
        {'model': Payload(str(marker)), 'args': {}, 'epoch': 1, 'rng': {}},
        evil / 'last.pth',
    )
    (evil / 'args.json').write_text(json.dumps({}))
    for main, argv in (
        (train.main, train_argv(data, checkpoints, '--load_model_path', str(evil / 'last.pth'))),
        (train.main, ['--resume', str(evil)]),
        (evaluate.main, ['--load_model_path', str(evil / 'last.pth')]),
    ):
        err = fails(main, argv, capsys)
        assert (
            'holds more than tensors and plain values, so it was not loaded (it could run code)'
            in err
        )
    assert not marker.exists()
    assert (
        sorted(os.listdir(checkpoints)) == ['base_earlier', 'latest']
        and sorted(os.listdir(evil)) == ['args.json', 'last.pth']
    )


def test_full_disk_while_saving_a_checkpoint_fails_the_run_in_one_line(
        data, checkpoints, monkeypatch, capsys):
    full_disk(monkeypatch)  # every checkpoint write fails as torch.save fails on a full disk
    err = fails(train.main, train_argv(data, checkpoints), capsys)
    run = checkpoints / 'base_exp'
    lines = [
        line for line in err.replace('\r', '\n').splitlines()
        if 'error' in line or 'space' in line
    ]
    assert lines == [
        f'error: No space left on device while writing {run / "epoch_1.pth"}: '
        f'free space on that disk, then go on with: python train.py --resume {run} '
        '(--keep_last N keeps only the newest N epoch_N.pth)'
    ]
    status = read_status(run)
    assert (
        status['status'] == 'failed'
        and status['message'].startswith('No space left on device while writing')
    )
    assert not [f for f in os.listdir(run) if f.endswith('.tmp') or f.endswith('.pth')]


def read_only(monkeypatch, folder, code=errno.EROFS):
    """Makes `folder` act as one on a read-only disk (EROFS) or one whose permission bits refuse
    (EACCES; bits alone do not stop root, who runs these tests here): making a file or folder in it
    fails, however it is made; reading still works."""
    inside = os.path.abspath(folder) + os.sep

    def refuse(path, writes):
        if writes and os.path.abspath(path).startswith(inside):
            raise OSError(code, os.strerror(code), path)

    real_mkdir, real_open = os.mkdir, os.open
    monkeypatch.setattr(
        os, 'mkdir', lambda path, *a, **k: refuse(path, True) or real_mkdir(path, *a, **k)
    )
    monkeypatch.setattr(os, 'open', lambda path, flags, *a, **k: refuse(
        path, flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)) or real_open(path, flags, *a, **k))
    monkeypatch.setattr(utils.checkpoint, 'open', lambda path, mode='r', *a, **k: refuse(
        path, set(mode) & set('wxa+')) or open(path, mode, *a, **k), raising=False)


@pytest.mark.parametrize(
    'code, reason', [(errno.EROFS, 'Read-only file system'), (errno.EACCES, 'Permission denied')]
)
def test_checkpoints_dir_that_cannot_be_written_is_found_before_anything_starts(
        code, reason, data, checkpoints, monkeypatch, capsys):
    read_only(monkeypatch, checkpoints, code)
    err = fails(train.main, train_argv(data, checkpoints), capsys)
    assert (
        f'error: --checkpoints_dir {checkpoints}: cannot make files in {checkpoints} '
        f'({reason}); pass --checkpoints_dir a folder you can write to'
    ) in err
    assert sorted(os.listdir(checkpoints)) == ['base_earlier', 'latest']


def test_resume_and_eval_of_a_read_only_run_are_found_before_anything_starts(
        data, checkpoints, monkeypatch, capsys):
    train.main(train_argv(data, checkpoints, '--epochs', '1'))
    run = checkpoints / 'base_exp'
    before = snapshot(checkpoints)
    read_only(monkeypatch, run)
    err = fails(train.main, ['--resume', str(run), '--epochs', '2'], capsys)
    assert (
        f'error: --resume {run}: cannot make files in {run} (Read-only file system); '
        'a resumed run'
    ) in err
    err = fails(evaluate.main, ['--load_model_path', str(run / 'best.pth')], capsys)
    assert (
        f'cannot make files in {run} (Read-only file system); '
        'eval.py makes its result folder'
    ) in err
    assert '--result_dir' in err and snapshot(checkpoints) == before


@pytest.fixture
def mounted(tmp_path):
    """A real tmpfs at tmp_path/disk, and a function that makes it read-only (skipped where mount
    fails)."""
    disk = tmp_path / 'disk'
    disk.mkdir()
    mount = ['mount', '-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', str(disk)]
    if subprocess.run(mount, capture_output=True).returncode:
        pytest.skip('cannot mount a tmpfs here (needs root)')
    def make_read_only():
        close_logging()  # the run's log file, still open, would keep the disk busy
        subprocess.run(['mount', '-o', 'remount,ro', str(disk)], check=True)

    yield disk, make_read_only
    subprocess.run(['umount', str(disk)], check=True)


def test_a_real_read_only_disk(mounted, data, tmp_path, capsys):
    disk, make_read_only = mounted
    train.main(train_argv(data, disk, '--epochs', '1'))
    make_read_only()
    run = disk / 'base_exp'
    assert 'Read-only file system' in fails(train.main, train_argv(data, disk), capsys)
    err = fails(train.main, ['--resume', str(run), '--epochs', '2'], capsys)
    assert str(run) in err and 'Read-only file system' in err
    best = str(run / 'best.pth')
    assert '--load_model_path' in fails(evaluate.main, ['--load_model_path', best], capsys)
    evaluate.main(['--load_model_path', best, '--result_dir', str(tmp_path / 'results')])
    assert (tmp_path / 'results' / 'result.txt').is_file()


def test_damaged_status_json_neither_hides_runs_nor_blocks_resume(data, checkpoints, capsys):
    train.main(train_argv(data, checkpoints, '--epochs', '1'))
    run = checkpoints / 'base_exp'
    (run / 'status.json').write_text('')
    (checkpoints / 'base_earlier' / 'args.json').write_text('{"model_type": "base"}')
    (checkpoints / 'base_earlier' / 'status.json').write_text('{"status": 3}')
    close_logging()  # as in a new process: warnings go to stderr
    capsys.readouterr()
    runs.main(['--checkpoints_dir', str(checkpoints)])
    out = capsys.readouterr()
    rows = {line.split()[0]: line for line in out.out.splitlines()[1:]}
    assert set(rows) == {'base_exp', 'base_earlier'}
    assert all(row.endswith('damaged status.json') for row in rows.values())
    assert f'{run / "status.json"} is damaged (empty)' in out.err
    train.main(['--resume', str(run), '--epochs', '2'])
    assert read_status(run)['status'] == 'finished' and read_status(run)['epochs_done'] == 2


def test_eval_of_a_damaged_checkpoint_leaves_no_result_folder(tmp_path, data, capsys):
    path = write_checkpoint(tmp_path, 'damaged')
    argv = ['--load_model_path', str(path), '--val_list', str(data / 'val.txt')]
    err = fails(evaluate.main, argv, capsys)
    assert f'error: {path} is damaged: its tensors differ from the checksum' in err
    assert not (tmp_path / 'damaged').exists()
