"""Faults at the edges of a run, each as a user meets it: a bad sample read by loader workers, two processes on
one run folder, a checkpoint rewritten or deleted while it is evaluated, kills that leave temporary files, and
interrupts during start-up. Each must end in one line and a folder that is complete or gone, never a hang."""
import os
import subprocess
import sys

import pytest
import torch

from data.make_shapes import make_shapes
from model.model_entry import select_model
from tests.conftest import make_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *argv, timeout=60):
    """A fresh process, as a user starts it; a hang fails the test at `timeout` seconds."""
    return subprocess.run([sys.executable, script, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope='module')
def lists(tmp_path_factory):
    """40 training and 6 validation 16 px samples, and lists whose line 37 (training) or 5 (validation) names a
    file that is not an image."""
    root = tmp_path_factory.mktemp('faults') / 'shapes'
    make_shapes(str(root), n_train=40, n_val=6, size=16, seed=0)
    (root / 'notes.txt').write_text('not an image\n')
    for name, n in (('train', 37), ('val', 5)):
        lines = (root / f'{name}.txt').read_text().splitlines()
        lines[n - 1] = 'notes.txt ' + lines[n - 1].split()[1]
        (root / f'bad_{name}.txt').write_text('\n'.join(lines) + '\n')
    return root


@pytest.mark.slow
@pytest.mark.parametrize('script, bad', [('train.py', 'train'), ('train.py', 'val'), ('eval.py', 'val')])
def test_bad_sample_with_loader_workers_exits_at_once(lists, tmp_path, script, bad):
    """The workers ignore stop signals sent to the whole process group; after an error, the main process must
    end them itself, or it waits for them forever at exit."""
    val_list = lists / ('bad_val.txt' if bad == 'val' else 'val.txt')
    common = ['--val_list', str(val_list), '--batch_size', '2', '--num_workers', '2']
    if script == 'train.py':
        train_list = lists / ('bad_train.txt' if bad == 'train' else 'train.txt')
        argv = ['--train_list', str(train_list), '--epochs', '1', '--checkpoints_dir', str(tmp_path / 'ck'), *common]
    else:
        weights = tmp_path / 'weights.pth'
        torch.save(select_model(make_args()).state_dict(), weights)
        argv = ['--load_model_path', str(weights), *common]
    p = run(script, *argv)
    line = 37 if bad == 'train' else 5
    assert p.returncode == 1, p.stderr
    assert f'error: {lists}/bad_{bad}.txt:{line}: cannot read {lists}/notes.txt: not an image' in p.stderr
    assert 'Traceback' not in p.stderr
