"""Resume, exactly: real training processes are killed (SIGKILL), preempted (SIGTERM) or
interrupted (Ctrl-C to the whole process group) at a known step, resumed with --resume, and must
end with weights torch.equal to an uninterrupted run's. Each run: 12 training samples in batches
of 4 (3 steps), 6 validation samples (2 steps), of a task's tiny dataset (tests/conftest.py
tiny_data)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from options import prepare_train_args
from task.task_entry import type2task
from tests.conftest import run_name
from utils.errors import ConfigError
from utils.run_status import current_status, read_status
from utils.train_state import RandomState

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 3
STEPS = 5  # Trainer.step calls per epoch: 3 training, 2 validation


def flags(data, checkpoints, workers=0, task='seg'):
    """A run of `task` on its tiny dataset in the folder `data`."""
    return [
        '--task', task,
        '--train_list', str(data / 'train.txt'),
        '--val_list', str(data / 'val.txt'),
        '--checkpoints_dir', str(checkpoints),
        '--epochs', str(EPOCHS),
        '--batch_size', '4',
        '--num_workers', str(workers),
    ]


def start_paused(tmp_path, pause_at, argv, **popen):
    """A training subprocess that pauses before its `pause_at`-th step; returns it once it is
    there."""
    progress = tmp_path / 'progress'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'tests.paused_train', str(progress), str(pause_at), *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )
    deadline = time.time() + 120
    while not (progress.exists() and progress.read_text().endswith('paused')):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, 'the run never reached its pause'
        time.sleep(0.02)
    return proc


def train_cli(*argv):
    return subprocess.run(
        [sys.executable, 'train.py', *argv], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def final(run):
    ckpt = torch.load(run / 'last.pth', weights_only=True)
    return ckpt['epoch'], ckpt['model'], ckpt['metrics']


def assert_same_run(run, reference):
    (epoch, model, metrics), (ref_epoch, ref_model, ref_metrics) = final(run), final(reference)
    assert epoch == ref_epoch == EPOCHS
    assert model.keys() == ref_model.keys() and all(
        torch.equal(model[k], ref_model[k]) for k in model
    )
    # the resumed epoch's curves too: partial sums were saved and restored
    assert metrics == ref_metrics
    for name in [f'epoch_{e}.pth' for e in range(1, EPOCHS + 1)] + ['best.pth']:
        ckpt, ref = (torch.load(r / name, weights_only=True) for r in (run, reference))
        assert (
            (ckpt['epoch'], ckpt['metrics'], ckpt['best_metric'], ckpt['best_epoch'])
            == (ref['epoch'], ref['metrics'], ref['best_metric'], ref['best_epoch'])
        ), name
        assert all(torch.equal(v, ref['model'][k]) for k, v in ckpt['model'].items()), name


@pytest.fixture(scope='module')
def reference(tiny_data, tmp_path_factory):
    """task -> the uninterrupted run of it, in a subprocess like the runs it is compared with
    (made once a task)."""
    runs = {}

    def run(task):
        if task not in runs:
            checkpoints = tmp_path_factory.mktemp(f'reference_{task}')
            p = train_cli(*flags(tiny_data[task], checkpoints, task=task))
            assert p.returncode == 0, p.stderr
            runs[task] = checkpoints / run_name(task)
        return runs[task]
    return run


# Each case costs two process starts (~6 s each, mostly importing torch), so the cases are paired,
# not crossed: every task is killed in training without loader workers; the segmentation task also
# in validation, with workers.
@pytest.mark.slow
@pytest.mark.parametrize('task, workers, pause_at',
                         [(t, 0, STEPS + 2) for t in type2task] + [('seg', 2, STEPS + 4)],
                         ids=[f'{t}-no_workers_mid_training' for t in type2task]
                         + ['seg-two_workers_in_validation'])
def test_sigkill_at_any_step_then_resume_equals_uninterrupted(tiny_data, tmp_path, reference, task,
                                                              workers, pause_at):
    argv = flags(tiny_data[task], tmp_path / 'checkpoints', workers, task)
    proc = start_paused(tmp_path, pause_at, argv)
    run = tmp_path / 'checkpoints' / run_name(task)
    assert current_status(read_status(run)) == 'running'
    with pytest.raises(ConfigError, match=f'the run is still running \\(pid {proc.pid} on'):
        # not while it runs: two processes would write one folder
        prepare_train_args(['--resume', str(run)])
    proc.kill()  # SIGKILL: no handler runs, nothing more is written
    proc.wait()
    assert current_status(read_status(run)) == 'killed'
    assert torch.load(run / 'last.pth', weights_only=True)['epoch'] == 1  # epoch 2 never finished
    p = train_cli('--resume', str(run))
    assert p.returncode == 0, p.stderr
    assert_same_run(run, reference(task))
    assert read_status(run)['status'] == 'finished'


# every task is preempted without loader workers; the segmentation task also by signals to the
# process group, with workers
@pytest.mark.slow
@pytest.mark.parametrize('task, how, workers', [(t, 'sigterm_to_process', 0) for t in type2task]
                         + [('seg', 'sigint_to_group', 2), ('seg', 'sigterm_to_group', 2)])
def test_stop_signal_saves_mid_epoch_and_resume_equals_uninterrupted(tiny_data, tmp_path, reference,
                                                                     task, workers, how):
    argv = flags(tiny_data[task], tmp_path / 'checkpoints', workers, task)
    proc = start_paused(tmp_path, STEPS + 2, argv,
                        start_new_session=True)  # its own process group, as a shell gives a command
    if how == 'sigterm_to_process':
        proc.send_signal(signal.SIGTERM)
    else:
        # Ctrl-C in a terminal, or torchrun's or SLURM's SIGTERM: every process, loader workers
        # included
        os.killpg(proc.pid, signal.SIGINT if how == 'sigint_to_group' else signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    signum = signal.SIGINT if how == 'sigint_to_group' else signal.SIGTERM
    assert proc.returncode == 128 + signum, err
    assert 'Traceback' not in err
    run = tmp_path / 'checkpoints' / run_name(task)
    assert f'train.py --resume {run}' in out + err  # the exact command to go on
    ckpt = torch.load(run / 'last.pth', weights_only=True)
    # epoch 1 done, and the step it was in when signalled
    assert (ckpt['epoch'], ckpt['step']) == (1, 2)
    assert read_status(run)['status'] == 'stopped'
    p = train_cli('--resume', str(run))
    assert p.returncode == 0, p.stderr
    assert 'Resumed at epoch 2, step 2/3' in p.stdout
    assert_same_run(run, reference(task))


def test_resume_may_train_longer_but_not_change_the_experiment(shapes, tmp_path):
    import train
    argv = flags(shapes, tmp_path)
    argv[argv.index('--epochs') + 1] = '2'
    train.main(argv)
    run = str(tmp_path / 'base_exp')
    with pytest.raises(
        ConfigError, match=r'all the 2 epochs it had planned \(--epochs 2\); pass --epochs N'
    ):
        prepare_train_args(['--resume', run])
    with pytest.raises(
        ConfigError, match=r'--loss dice \(the run has ce\), --lr 0.1 \(the run has 0.003\)'
    ):
        prepare_train_args(['--resume', run, '--epochs', '3', '--lr', '0.1', '--loss', 'dice'])
    # same value: allowed
    train.main(['--resume', run, '--epochs', '3', '--num_workers', '1', '--lr', '0.003'])
    longer = torch.load(os.path.join(run, 'last.pth'), weights_only=True)
    assert (
        longer['epoch'] == 3
        and longer['args']['epochs'] == 3
        and longer['args']['num_workers'] == 1
    )
    assert os.path.isfile(os.path.join(run, 'epoch_3.pth'))
    commands = open(os.path.join(run, 'command.txt')).read().splitlines()
    assert len(commands) == 2 and commands[1].endswith(
        f'--resume {run} --epochs 3 --num_workers 1 --lr 0.003'
    )
    # 2 epochs, then one more, is the 3-epoch run
    train.main(flags(shapes, tmp_path / 'straight'))
    straight = final(tmp_path / 'straight' / 'base_exp')[1]
    assert all(torch.equal(v, straight[k]) for k, v in longer['model'].items())


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match='not a run folder'):
        prepare_train_args(['--resume', str(tmp_path / 'nope')])
    (tmp_path / 'args.json').write_text('{}')
    with pytest.raises(
        ConfigError, match=f'is a file; pass the run folder that holds it: --resume {tmp_path}$'
    ):
        prepare_train_args(['--resume', str(tmp_path / 'args.json')])
    torch.save({'model': {}}, tmp_path / 'last.pth')
    with pytest.raises(ConfigError, match='not a resumable TorchBase checkpoint'):
        prepare_train_args(['--resume', str(tmp_path)])
    (tmp_path / 'last.pth').write_bytes(b'PK\x03\x04 cut short')
    with pytest.raises(ConfigError, match='truncated or corrupt'):
        prepare_train_args(['--resume', str(tmp_path)])
    assert sorted(os.listdir(tmp_path)) == ['args.json', 'last.pth']


def test_a_run_that_stopped_before_its_first_checkpoint_resumes_from_epoch_1(shapes, tmp_path):
    import train
    argv = flags(shapes, tmp_path)
    # the folder, args.json and log of a run killed in its first epoch
    run = prepare_train_args(argv).model_dir
    train.main(['--resume', run])
    assert 'training it again from epoch 1' in open(os.path.join(run, 'train.log')).read()
    assert read_status(run)['status'] == 'finished'
    train.main(flags(shapes, tmp_path / 'straight'))
    assert_same_run(Path(run), tmp_path / 'straight' / 'base_exp')


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    import random
    loader_generator = torch.Generator().manual_seed(5)
    torch.save(RandomState(loader_generator).state_dict(), tmp_path / 'rng.pth')

    def draw():
        return (random.random(), np.random.rand(), np.random.randn(), torch.rand(3),
                torch.rand(3, generator=loader_generator))

    first = draw()
    RandomState(loader_generator).load_state_dict(
        torch.load(tmp_path / 'rng.pth', weights_only=True)
    )
    again = draw()
    assert (
        first[:3] == again[:3]
        and torch.equal(first[3], again[3])
        and torch.equal(first[4], again[4])
    )


@pytest.mark.slow
@pytest.mark.parametrize('workers', [0, 2], ids=['no_workers', 'two_workers'])
def test_random_crops_of_mixed_sizes_resume_exactly(shapes_mixed, tmp_path, workers):
    """--crop_size and --scale_range draw from (seed, epoch, index) only: killed mid-epoch and
    resumed, with or without loader workers, the run equals an uninterrupted one."""
    crops = ['--crop_size', '24', '28', '--scale_range', '0.5', '2']
    uninterrupted = tmp_path / 'reference'
    p = train_cli(*flags(shapes_mixed, uninterrupted, workers), *crops)
    assert p.returncode == 0, p.stderr
    argv = flags(shapes_mixed, tmp_path / 'checkpoints', workers) + crops
    proc = start_paused(tmp_path, STEPS + 2, argv)
    proc.kill()
    proc.wait()
    run = tmp_path / 'checkpoints' / 'base_exp'
    p = train_cli('--resume', str(run))
    assert p.returncode == 0, p.stderr
    assert_same_run(run, uninterrupted / 'base_exp')
