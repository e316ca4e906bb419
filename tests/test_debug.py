"""Debugging flags of train.py: --fast_dev_run, --overfit_batches, --limit_*_batches,
--detect_anomaly, --profile."""
import json
import os
import re
import shutil

import pytest
import torch

import options
import train
from data.list_dataset import ListDataset
from utils import prepare
from utils.errors import ConfigError

FAST_DEV_PREFIX = 'torchbase_fast_dev_run_'


def spy_steps(monkeypatch):
    """['train' or 'val' for each call of Trainer.step, in order] (validation steps run the model
    in eval mode)."""
    calls = []
    original = train.Trainer.step

    def counted(self, data, model):
        calls.append('train' if model.training else 'val')
        return original(self, data, model)

    monkeypatch.setattr(train.Trainer, 'step', counted)
    return calls


def spy_trainers(monkeypatch):
    """Every Trainer built while the spy is on, in order."""
    trainers = []
    original = train.Trainer.__init__

    def init(self, args):
        trainers.append(self)
        original(self, args)

    monkeypatch.setattr(train.Trainer, '__init__', init)
    return trainers


def spy_samples(monkeypatch):
    """{'train': {epoch: [index, ...]}, 'val': [(list_path, index), ...]}: the samples the loaders
    actually read."""
    read = {'train': {}, 'val': []}
    original = ListDataset.__getitem__

    def getitem(self, index):
        if self.is_train:
            read['train'].setdefault(index.epoch, []).append(int(index))
        else:
            read['val'].append((self.list_path, int(index)))
        return original(self, index)

    monkeypatch.setattr(ListDataset, '__getitem__', getitem)
    return read


def spy_mkdtemp(monkeypatch):
    """The folders tempfile.mkdtemp made with the --fast_dev_run prefix (the real mkdtemp makes
    them)."""
    made = []
    real = prepare.tempfile.mkdtemp

    def mkdtemp(*a, **kw):
        path = real(*a, **kw)
        if os.path.basename(path).startswith(FAST_DEV_PREFIX):
            made.append(path)
        return path

    monkeypatch.setattr(prepare.tempfile, 'mkdtemp', mkdtemp)
    return made


def train_order(trainer, epoch):
    """The training samples of `epoch`, as the run's sampler yields them."""
    trainer.train_loader.sampler.set_epoch(epoch)
    return [int(i) for i in trainer.train_loader.sampler]


def assert_model_summary(run, model):
    """model_summary.txt begins with the parameter count of `model` (also logged in train.log),
    then its layers."""
    text = (run / 'model_summary.txt').read_text()
    first = text.splitlines()[0]
    found = re.fullmatch(
        r'(\w+): ([\d,]+) parameters \(([\d,]+) trainable\), ([\d.]+) MiB of weights and buffers',
        first,
    )
    assert found, first
    params = list(model.parameters())
    assert found[1] == type(model).__name__
    assert int(found[2].replace(',', '')) == sum(p.numel() for p in params) > 0
    assert int(found[3].replace(',', '')) == sum(p.numel() for p in params if p.requires_grad)
    size = sum(t.numel() * t.element_size() for t in params + list(model.buffers())) / 2 ** 20
    assert float(found[4]) == pytest.approx(size, abs=0.005)
    assert str(model) in text
    assert first in (run / 'train.log').read_text()


@pytest.fixture
def restore_anomaly_mode():
    yield
    # --detect_anomaly sets it process-wide; it slows every later backward
    torch.autograd.set_detect_anomaly(False)


def test_fast_dev_run_runs_one_step_of_each_in_a_temporary_folder_then_removes_it(
        train_argv, tmp_path, monkeypatch):
    made = spy_mkdtemp(monkeypatch)
    steps = spy_steps(monkeypatch)
    trainers = spy_trainers(monkeypatch)
    seen = []  # the run folder's files while the run goes on (at its validation step)
    original = train.Trainer.val_per_epoch
    monkeypatch.setattr(
        train.Trainer,
        'val_per_epoch',
        lambda self, epoch: seen.extend(os.listdir(self.args.model_dir)) or original(self, epoch),
    )

    # returns normally, after --epochs 2 is overridden
    assert train.main(train_argv + ['--fast_dev_run']) is None
    assert steps == ['train', 'val']
    assert len(made) == 1 and len(trainers) == 1
    args = trainers[0].args
    assert args.checkpoints_dir == made[0] and os.path.dirname(args.model_dir) == made[0]
    assert args.epochs == 1 and {'args.json', 'train.log', 'model_summary.txt'} <= set(seen)
    assert not os.path.exists(made[0])  # the temporary folder is gone...
    checkpoints = tmp_path / 'checkpoints'
    # ... and nothing went to --checkpoints_dir
    assert not checkpoints.exists() or not os.listdir(checkpoints)
    assert os.listdir(tmp_path) in ([], ['checkpoints'])


def test_fast_dev_run_checks_a_run_with_warmup_and_a_cosine_schedule(train_argv, monkeypatch):
    # scripts/demo.sh's flags: --fast_dev_run's one epoch must not be all warmup (cosine / 0)
    made = spy_mkdtemp(monkeypatch)
    steps = spy_steps(monkeypatch)
    flags = ['--fast_dev_run', '--scheduler', 'cosine', '--warmup_epochs', '1']
    assert train.main(train_argv + flags) is None
    assert steps == ['train', 'val'] and not os.path.exists(made[0])


def test_fast_dev_run_refuses_resume(train_argv, tmp_path, monkeypatch):
    # a run folder (args.json) that stopped before its first epoch
    run = options.prepare_train_args(train_argv)
    before = sorted(os.listdir(run.model_dir))
    made = spy_mkdtemp(monkeypatch)
    steps = spy_steps(monkeypatch)
    with pytest.raises(ConfigError, match='--fast_dev_run'):
        train.main(['--resume', run.model_dir, '--fast_dev_run'])
    assert made == [] and steps == []
    assert sorted(os.listdir(run.model_dir)) == before


def test_fast_dev_run_that_cannot_start_leaves_no_temporary_folder(
        train_argv, tmp_path, monkeypatch):
    made = spy_mkdtemp(monkeypatch)
    try:
        with pytest.raises(ConfigError, match='missing.txt does not exist'):
            train.main(
                train_argv + ['--fast_dev_run', '--train_list', str(tmp_path / 'missing.txt')]
            )
        assert not any(os.path.exists(path) for path in made)
    finally:
        for path in made:  # do not leave a leak in the system's temporary folder
            shutil.rmtree(path, ignore_errors=True)


def test_overfit_batches_trains_and_validates_on_the_same_first_batch(
        shapes, train_argv, tmp_path, monkeypatch):
    steps = spy_steps(monkeypatch)
    trainers = spy_trainers(monkeypatch)
    samples = spy_samples(monkeypatch)
    train.main(train_argv + ['--overfit_batches', '1'])
    train_list = str(shapes / 'train.txt')

    # one batch of 4 (of 12 training, 6 validation samples) each
    assert steps == ['train', 'val'] * 2
    trainer = trainers[0]
    assert len(trainer.train_loader) == len(trainer.val_loader) == 1
    first, second = set(train_order(trainer, 1)), set(train_order(trainer, 2))
    assert first == second and len(first) == 4
    val = trainer.val_loader.dataset
    # the training samples, without augmentation
    assert val.list_path == train_list and val.is_train is False
    assert {i for batch in trainer.val_loader.batch_sampler for i in batch} == first
    # what the loaders read in the run: the same 4 training samples in both epochs, validated as
    # they are
    assert set(samples['train']) == {1, 2}
    assert set(samples['train'][1]) == set(samples['train'][2]) == first
    assert len(samples['train'][1]) == len(samples['train'][2]) == 4
    assert (
        len(samples['val']) == 8
        and {s for s in samples['val']} == {(train_list, i) for i in first}
    )

    run = tmp_path / 'checkpoints' / 'base_exp'
    saved = json.loads((run / 'args.json').read_text())
    assert saved['val_list'] == saved['train_list'] == train_list and saved['overfit_batches'] == 1
    assert not (run / 'trace.json').exists()  # no --profile
    assert_model_summary(run, trainer.raw_model)


def test_limit_batches_cut_each_epoch_short(shapes, train_argv, tmp_path, monkeypatch):
    steps = spy_steps(monkeypatch)
    trainers = spy_trainers(monkeypatch)
    samples = spy_samples(monkeypatch)
    train.main(train_argv + ['--limit_train_batches', '2', '--limit_val_batches', '1'])

    assert steps == ['train', 'train', 'val'] * 2  # of 3 training and 2 validation batches
    trainer = trainers[0]
    assert len(trainer.train_loader) == 2 and len(trainer.val_loader) == 1
    first, second = train_order(trainer, 1), train_order(trainer, 2)
    assert len(first) == len(second) == 8
    assert set(first) != set(second)  # each epoch's shuffled order cut short, not a fixed subset
    assert samples['train'] == {1: first, 2: second}
    # the first batch, each epoch
    assert samples['val'] == [(str(shapes / 'val.txt'), i) for i in range(4)] * 2
    run = tmp_path / 'checkpoints' / 'base_exp'
    assert torch.load(run / 'last.pth', weights_only=True)['epoch'] == 2
    assert_model_summary(run, trainer.raw_model)


def test_detect_anomaly_names_the_nan_of_the_backward_pass(
        train_argv, tmp_path, monkeypatch, restore_anomaly_mode):
    losses, anomaly_mode = [], []

    # 0 forward, but d sqrt(x)/dx at 0 is inf, and inf * 0 is nan
    def nan_gradient_loss(self, pred, gt):
        loss = (pred * 0).sqrt().sum()
        losses.append(loss.item())
        anomaly_mode.append(torch.is_anomaly_enabled())
        return loss

    monkeypatch.setattr(train.Trainer, 'compute_loss', nan_gradient_loss)
    trainers = spy_trainers(monkeypatch)
    argv = train_argv + ['--epochs', '1']
    with pytest.raises(RuntimeError, match='returned nan'):
        train.main(argv + ['--detect_anomaly', '--save_prefix', 'anomaly'])
    assert losses == [0.0] and anomaly_mode == [True]  # stopped at the first backward

    # Without the flag the backward passes, the update writes NaN into the weights, and the next
    # loss is NaN: the run stops at the end of the epoch, before any checkpoint.
    losses.clear(), anomaly_mode.clear()
    with pytest.raises(ConfigError, match=r'the loss is not finite at epoch 1, step 2/3'):
        train.main(argv)
    assert anomaly_mode == [False] * 3 and losses[0] == 0.0 and all(v != v for v in losses[1:])
    assert any(p.isnan().any() for p in trainers[-1].raw_model.parameters())
    assert not (tmp_path / 'checkpoints' / 'base_exp' / 'last.pth').exists()


def test_profile_writes_a_trace_of_training_steps(train_argv, tmp_path, monkeypatch):
    trainers = spy_trainers(monkeypatch)
    # batches of 2: 6 steps an epoch, so the trace (steps 3-5) ends before the first validation
    train.main(train_argv + ['--profile', '--save_prefix', 'prof', '--batch_size', '2'])
    run = tmp_path / 'checkpoints' / 'base_prof'
    trace = json.loads((run / 'trace.json').read_text())
    events = trace['traceEvents']
    assert isinstance(events, list) and events
    assert any(str(e.get('name', '')).startswith('aten::') for e in events)
    assert sorted(
        {e['name'] for e in events if str(e.get('name', '')).startswith('ProfilerStep#')}
    ) == ['ProfilerStep#2', 'ProfilerStep#3', 'ProfilerStep#4']
    assert_model_summary(run, trainers[0].raw_model)

    # 3 steps an epoch: too few, no trace
    train.main(train_argv + ['--profile', '--save_prefix', 'short'])
    assert not (tmp_path / 'checkpoints' / 'base_short' / 'trace.json').exists()
    assert '--profile needs 5 training steps in an epoch, this run has 3' in (
        tmp_path / 'checkpoints' / 'base_short' / 'train.log').read_text()
    train.main(train_argv + ['--save_prefix', 'plain'])
    assert not (tmp_path / 'checkpoints' / 'base_plain' / 'trace.json').exists()
    assert (tmp_path / 'checkpoints' / 'base_plain' / 'last.pth').exists()


def test_model_summary_counts_the_parameters_of_the_model_trained(
        train_argv, tmp_path, monkeypatch):
    trainers = spy_trainers(monkeypatch)
    train.main(train_argv + [
        '--model_type', 'better',
        '--epochs', '1',
        '--limit_train_batches', '1',
        '--limit_val_batches', '1',
    ])
    model = trainers[0].raw_model
    assert type(model).__name__ == 'BetterModel'
    assert_model_summary(tmp_path / 'checkpoints' / 'better_exp', model)


@pytest.mark.parametrize('flag', ['overfit_batches', 'limit_train_batches', 'limit_val_batches'])
def test_negative_batch_counts_are_refused(train_argv, tmp_path, monkeypatch, flag):
    steps = spy_steps(monkeypatch)
    with pytest.raises(ConfigError, match=f'--{flag} must be 0 or more, got -1'):
        train.main(train_argv + [f'--{flag}', '-1'])
    assert steps == [] and not (tmp_path / 'checkpoints').exists()


def test_a_fast_dev_run_run_cannot_be_resumed(train_argv, monkeypatch):
    """A --fast_dev_run killed before its end leaves its temporary folder; resuming it must not run
    (and remove) anything."""
    made = spy_mkdtemp(monkeypatch)
    try:
        # the folder a killed run leaves
        args = options.prepare_train_args(train_argv + ['--fast_dev_run'])
        before = sorted(os.listdir(args.model_dir))
        with pytest.raises(
            ConfigError, match='a --fast_dev_run run is a check, not a run to go on with'
        ):
            train.main(['--resume', args.model_dir])
        assert sorted(os.listdir(args.model_dir)) == before and 'args.json' in before
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
