"""Stopping and resuming in-process, at every kind of point: the stop request that SIGTERM or
Ctrl-C makes is set directly on the Trainer (tests/test_resume.py sends the real signals to real
processes)."""
import os
import shutil
import signal

import pytest
import torch

import train
from task.task_entry import type2task
from tests.conftest import run_name
from tests.test_resume import EPOCHS, assert_same_run, flags
from utils.errors import ConfigError, run_cli
from utils.run_status import read_status


def stop_after(monkeypatch, method, n, effect=None):
    """After the n-th call of Trainer.<method> (counted over every Trainer of the test),
    `effect(trainer)`; by default it asks for a stop as SIGTERM would."""
    original = getattr(train.Trainer, method)
    calls = []

    def counted(self, *a):
        out = original(self, *a)
        calls.append(method)
        if len(calls) == n:
            (effect or (lambda t: setattr(t.stop, 'received', signal.SIGTERM)))(self)
        return out

    monkeypatch.setattr(train.Trainer, method, counted)


def spy_loader_states(monkeypatch):
    """{epoch: the train loader generator's state as the epoch starts} (it seeds the loader
    workers)."""
    states = {}
    original = train.Trainer.train_per_epoch

    def spied(self, epoch, skip=0):
        states[epoch] = self.train_loader.generator.get_state().clone()
        return original(self, epoch, skip)

    monkeypatch.setattr(train.Trainer, 'train_per_epoch', spied)
    return states


def stopped_position(run):
    ckpt = torch.load(os.path.join(run, 'last.pth'), weights_only=True)
    return ckpt['epoch'], ckpt['step']


@pytest.mark.parametrize('task', list(type2task))
def test_stops_mid_epoch_twice_then_finishes_as_the_uninterrupted_run(tiny_data, tmp_path,
                                                                      monkeypatch, task):
    straight_states = spy_loader_states(monkeypatch)
    train.main(flags(tiny_data[task], tmp_path / 'straight', task=task))
    straight_states = dict(straight_states)
    monkeypatch.undo()
    run = tmp_path / 'stopped' / run_name(task)
    stop_after(monkeypatch, 'optimize', 4)  # 3 steps an epoch: epoch 2, step 1
    with pytest.raises(SystemExit) as stop:
        train.main(flags(tiny_data[task], tmp_path / 'stopped', task=task))
    assert stop.value.code == 128 + signal.SIGTERM and stopped_position(run) == (1, 1)
    assert (
        read_status(run)['status'] == 'stopped'
        and f'--resume {run}' in read_status(run)['message']
    )
    monkeypatch.undo()
    stop_after(monkeypatch, 'optimize', 1)  # the resumed run's first step: epoch 2, step 2
    with pytest.raises(SystemExit):
        train.main(['--resume', str(run)])
    assert stopped_position(run) == (1, 2)
    monkeypatch.undo()
    resumed_states = spy_loader_states(monkeypatch)
    train.main(['--resume', str(run)])
    assert_same_run(run, tmp_path / 'straight' / run_name(task))
    # the workers of the resumed epoch get the seeds they would have had: drawn from the same
    # generator state
    assert set(resumed_states) == {2, 3}
    assert all(torch.equal(resumed_states[e], straight_states[e]) for e in resumed_states)
    assert read_status(run)['status'] == 'finished'


def test_stop_during_validation_or_at_the_last_step_saves_the_whole_epoch(
        shapes, tmp_path, monkeypatch):
    # 3 training steps, then the first validation batch of epoch 1
    stop_after(monkeypatch, 'compute_loss', 4)
    with pytest.raises(SystemExit):
        train.main(flags(shapes, tmp_path / 'in_val'))
    run = tmp_path / 'in_val' / 'base_exp'
    assert (
        stopped_position(run) == (1, 0)
        and os.path.isfile(run / 'best.pth')
        and os.path.isfile(run / 'epoch_1.pth')
    )
    assert (tmp_path / 'in_val' / 'latest').read_text().strip() == 'base_exp'
    monkeypatch.undo()
    # the last training step of epoch 1: validation still runs
    stop_after(monkeypatch, 'optimize', 3)
    with pytest.raises(SystemExit):
        train.main(flags(shapes, tmp_path / 'last_step'))
    ckpt = torch.load(tmp_path / 'last_step' / 'base_exp' / 'last.pth', weights_only=True)
    assert (
        (ckpt['epoch'], ckpt['step']) == (1, 0)
        and {'train/mIoU', 'val/mIoU'} <= set(ckpt['metrics'])
    )


def test_a_stop_in_the_first_epoch_does_not_make_the_run_latest(shapes, tmp_path, monkeypatch):
    """eval.py reads best.pth of the `latest` run: a run stopped before any epoch ended has none."""
    stop_after(monkeypatch, 'optimize', 1)
    with pytest.raises(SystemExit):
        train.main(flags(shapes, tmp_path))
    assert stopped_position(tmp_path / 'base_exp') == (0, 1)
    assert (
        not os.path.exists(tmp_path / 'latest')
        and not os.path.exists(tmp_path / 'base_exp' / 'best.pth')
    )


@pytest.mark.parametrize('task', list(type2task))
def test_a_second_ctrl_c_exits_130_and_leaves_a_resumable_run(tiny_data, tmp_path, monkeypatch,
                                                              task):
    def interrupted(trainer):
        raise KeyboardInterrupt  # what StopSignals raises at a second Ctrl-C

    stop_after(monkeypatch, 'optimize', 5, interrupted)  # epoch 2, step 2: last.pth is epoch 1's
    with pytest.raises(SystemExit) as stop:
        run_cli(lambda: train.main(flags(tiny_data[task], tmp_path / 'stopped', task=task)))
    run = tmp_path / 'stopped' / run_name(task)
    assert stop.value.code == 130 and stopped_position(run) == (1, 0)
    assert read_status(run)['status'] == 'stopped'
    assert 'second Ctrl-C' in (run / 'train.log').read_text()
    monkeypatch.undo()
    train.main(['--resume', str(run)])
    train.main(flags(tiny_data[task], tmp_path / 'straight', task=task))
    assert_same_run(run, tmp_path / 'straight' / run_name(task))


def test_a_non_finite_loss_fails_the_run_and_says_so_in_its_log(shapes, tmp_path, monkeypatch):
    compute_loss, calls = train.Trainer.compute_loss, []

    # in one step, a NaN loss and a stop request: the NaN wins, nothing is saved
    def nan_and_stop(self, pred, gt):
        calls.append(1)
        # epoch 1's 3 training and 2 validation batches, then epoch 2, step 2
        if len(calls) == 3 + 2 + 2:
            self.stop.received = signal.SIGTERM
            return compute_loss(self, pred, gt) * float('nan')
        return compute_loss(self, pred, gt)

    monkeypatch.setattr(train.Trainer, 'compute_loss', nan_and_stop)
    handlers, update = [], train.RunStatus.update

    def spied_update(self, **fields):  # which SIGTERM handler is in place while `failed` is written
        if fields.get('status') == 'failed':
            handlers.append(signal.getsignal(signal.SIGTERM))
        return update(self, **fields)

    monkeypatch.setattr(train.RunStatus, 'update', spied_update)
    with pytest.raises(SystemExit) as stop:
        run_cli(lambda: train.main(flags(shapes, tmp_path)))
    run = tmp_path / 'base_exp'
    assert stop.value.code == 1 and stopped_position(run) == (1, 0)
    assert read_status(run)['status'] == 'failed'
    # still the Trainer's: under torchrun, the SIGTERM that stops the other processes after a
    # failure must not kill one before its status.json says `failed`
    assert (
        len(handlers) == 1
        and getattr(handlers[0], '__func__', None) is train.StopSignals.handle
    )
    log = (run / 'train.log').read_text()
    assert 'error: the loss is not finite at epoch 2, step 2/3' in log


def test_resume_of_a_moved_run_and_from_another_folder(shapes, tmp_path, monkeypatch):
    argv = flags(shapes, 'checkpoints')  # a relative --checkpoints_dir, as by default
    argv[argv.index('--epochs') + 1] = '1'
    monkeypatch.chdir(tmp_path)
    train.main(argv)
    moved = tmp_path / 'archive' / 'base_exp'
    shutil.move(tmp_path / 'checkpoints' / 'base_exp', moved)
    os.mkdir(tmp_path / 'elsewhere')
    monkeypatch.chdir(tmp_path / 'elsewhere')
    train.main(['--resume', str(moved), '--epochs', str(EPOCHS)])
    assert stopped_position(moved) == (EPOCHS, 0)
    # beside the run, not in elsewhere/
    assert (tmp_path / 'archive' / 'latest').read_text().strip() == 'base_exp'
    assert os.listdir(tmp_path / 'elsewhere') == []


def test_an_error_before_the_run_folder_is_made_goes_to_stderr_only(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        run_cli(lambda: train.main(['--train_list', str(tmp_path / 'missing.txt')]))
    assert stop.value.code == 1
    assert capsys.readouterr().err.startswith(f'error: list file {tmp_path / "missing.txt"}')
    with pytest.raises(ConfigError):
        train.main(['--train_list', str(tmp_path / 'missing.txt')])


def test_a_signal_handled_during_the_agreement_is_agreed_on_next_time(monkeypatch):
    """Under torchrun, a signal whose handler runs as the collective returns must not be lost: it
    is not part of that agreement (the others voted without it), so the processes stop together at
    the next one."""
    import utils.stop
    stop = utils.stop.StopSignals()

    # the other processes voted 0; this one's SIGTERM handler runs as it returns
    def all_reduce(tensor, op):
        stop.received = signal.SIGTERM
        return tensor.clone()

    monkeypatch.setattr(utils.stop, 'world_size', lambda: 2)
    monkeypatch.setattr(utils.stop, 'all_reduce', all_reduce)
    assert not stop.agreed(0) and stop.received == signal.SIGTERM
    monkeypatch.setattr(utils.stop, 'all_reduce', lambda tensor, op: tensor.clone())
    assert stop.agreed(1) and stop.received == signal.SIGTERM
