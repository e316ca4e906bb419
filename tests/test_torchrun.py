"""scripts/torchrun.py: torchrun (gloo, 2 processes, the tiny data of tests/test_ddp.py) that ends a
stop or a process's one-line error with the exit status of the shell and no traceback of its
own."""
import json
import os
import runpy
import signal
import subprocess
import sys
import time

import pytest
import torch

from data.sampler import EpochSampler
from tests.test_ddp import ROOT, flags, run
from utils.run_status import read_status


def wrapped(*argv):
    """The command line of scripts/torchrun.py for 2 processes on this machine."""
    return [
        sys.executable,
        os.path.join(ROOT, 'scripts', 'torchrun.py'),
        '--standalone',
        '--nproc_per_node', '2',
        *argv,
    ]


def start_paused(tmp_path, pause_at, argv):
    """As tests/test_ddp.py's start_paused, through scripts/torchrun.py and in a process group of
    its own (as a shell starts a command), so that the test can send it a terminal's Ctrl-C."""
    progress = tmp_path / 'progress'
    proc = subprocess.Popen(
        wrapped('-m', 'tests.paused_train', str(progress), str(pause_at), *argv),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    files = [tmp_path / f'progress.rank{r}' for r in (0, 1)]
    deadline = time.time() + 120
    while not all(f.exists() and f.read_text().endswith('paused') for f in files):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    return proc


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_exits_130_after_the_save(shapes, tmp_path):
    # both processes at epoch 1's second step
    proc = start_paused(tmp_path, 2, flags(shapes, tmp_path))
    # Ctrl-C reaches torchrun's group only (its processes run in sessions of their own); it passes
    # it on
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and 'Traceback' not in err and 'terminate called' not in err, err
    run_dir = tmp_path / 'base_exp'
    ckpt = torch.load(run_dir / 'last.pth', weights_only=True)
    assert (ckpt['epoch'], ckpt['step'], ckpt['world_size']) == (0, 2, 2)
    assert read_status(run_dir)['status'] == 'stopped'
    assert f'train.py --resume {run_dir}' in out.splitlines()[-1]


def bad_list(shapes, tmp_path, lines):
    """A copy of the training list whose lines `lines` name a text file instead of an image."""
    text = tmp_path / 'notes.txt'
    text.write_text('not an image\n')
    rows = []
    for i, row in enumerate((shapes / 'train.txt').read_text().splitlines()):
        image, label = row.split()
        rows.append(f'{text if i in lines else shapes / image} {shapes / label}')
    (tmp_path / 'train.txt').write_text('\n'.join(rows) + '\n')
    return tmp_path / 'train.txt'


@pytest.mark.slow
def test_a_bad_sample_in_every_process_ends_with_its_error_and_one_line(shapes, tmp_path):
    argv = flags(shapes, tmp_path)
    # each process fails at its first sample
    argv[argv.index('--train_list') + 1] = str(bad_list(shapes, tmp_path, range(12)))
    p = run(wrapped('train.py', *argv))
    assert p.returncode == 1 and 'Traceback' not in p.stderr, p.stderr
    assert '[rank 0] error: ' in p.stderr and f'{tmp_path / "notes.txt"}: not an image' in p.stderr
    summary = [line for line in p.stderr.splitlines() if line.startswith('torchrun: ')]
    assert summary in (
        ['torchrun: rank 0 failed first, exit code 1'],
        ['torchrun: rank 1 failed first, exit code 1'],
    )


@pytest.mark.slow
def test_a_bad_sample_in_one_process_is_named_as_the_first_failure(shapes, tmp_path):
    sampler = EpochSampler(12, 0, num_replicas=2, rank=0)
    sampler.set_epoch(1)
    argv = flags(shapes, tmp_path)
    first = int(list(sampler)[0])  # process 0's first sample
    argv[argv.index('--train_list') + 1] = str(bad_list(shapes, tmp_path, [first]))
    p = run(wrapped('train.py', *argv))
    assert p.returncode == 1 and '[rank 0] error: ' in p.stderr, p.stderr
    assert p.stderr.splitlines()[-1] == 'torchrun: rank 0 failed first, exit code 1'
    # torchrun's traceback and failure table are gone (process 1 may still print gloo's
    # 'Connection closed by peer' traceback: train.py's, not torchrun's)
    assert 'ChildFailedError' not in p.stderr and 'Root Cause' not in p.stderr, p.stderr


@pytest.mark.parametrize('exitcode, error_file, line, status', [
    (1, None, 'torchrun: rank 3 failed first, exit code 1', 1),
    (-9, None, 'torchrun: rank 3 failed first, killed by SIGKILL (exit code 137)', 137),
    # under @record
    (1, 'error.json', 'torchrun: rank 3 failed first, exit code 1; its traceback: {}', 1),
])
def test_the_failure_line_and_exit_status(tmp_path, exitcode, error_file, line, status):
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure
    # its functions, without running it
    torchrun = runpy.run_path(os.path.join(ROOT, 'scripts', 'torchrun.py'))
    path = tmp_path / (error_file or 'none.json')
    if error_file:  # as @record writes it in the failed process
        path.write_text(json.dumps({
            'message': {'message': 'ValueError: x', 'extraInfo': {'timestamp': '1'}},
        }))
    error = ChildFailedError('train.py', {3: ProcessFailure(1, 100, exitcode, str(path))})
    assert torchrun['failure_line'](error) == line.format(path)
    assert torchrun['exit_status'](exitcode) == status
