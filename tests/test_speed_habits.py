"""What keeps the Trainer as fast as a hand-written loop: no host read of a device value between
print points, and memory that does not grow with the steps. (The timings themselves: python
scripts/benchmark.py.)"""
import gc
import warnings

import pytest
import torch
from torch.overrides import TorchFunctionMode

import train
from data.make_shapes import make_shapes
from options import prepare_train_args


class HostReads(TorchFunctionMode):
    """Counts the reads of a tensor's value by the host (item, tolist, bool(), int(), float(),
    .cpu(), .numpy()): on a GPU each one waits for the device to finish its queued work. The
    optimizer's step counts, which torch keeps on the host on purpose, are not device values and
    are not counted."""
    READS = {'item', 'tolist', '__bool__', '__int__', '__float__', '__index__', 'cpu', 'numpy'}

    def __init__(self, optimizer):
        super().__init__()
        self.optimizer, self.count = optimizer, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, '__name__', '') in self.READS and args and torch.is_tensor(args[0]):
            steps = {id(state.get('step')) for state in self.optimizer.state.values()}
            self.count += id(args[0]) not in steps
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope='module')
def data_48(tmp_path_factory):
    root = tmp_path_factory.mktemp('data48') / 'shapes'
    make_shapes(str(root), n_train=48, n_val=4, size=16, seed=0)
    return root


def make_trainer(data, tmp_path, *flags):
    return train.Trainer(prepare_train_args([
        '--train_list', str(data / 'train.txt'),
        '--val_list', str(data / 'val.txt'),
        '--checkpoints_dir', str(tmp_path / 'runs'),
        '--batch_size', '4',
        *flags,
    ]))


def mark_steps(trainer, probe):
    """Calls probe() as each Trainer.step starts; returns the list of what it returned."""
    marks, step = [], trainer.step

    def marked(*a):
        marks.append(probe())
        return step(*a)

    trainer.step = marked
    return marks


@pytest.mark.parametrize('print_freq', [4, 1])
def test_one_host_read_per_print_freq_steps(data_48, tmp_path, print_freq):
    trainer = make_trainer(data_48, tmp_path, '--print_freq', str(print_freq))
    reads = HostReads(trainer.optimizer)
    marks = mark_steps(trainer, lambda: reads.count)
    with reads:
        trainer.train_per_epoch(1)
    steps = trainer.steps_per_epoch
    assert steps == 12 and len(marks) == steps
    # during step k and the loading of k + 1
    between = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    assert between == [1 if k % print_freq == 0 else 0 for k in range(steps - 1)]
    # the epoch's end: the last loss check, the epoch's metrics and pictures; a fixed cost, not one
    # per step
    assert reads.count - marks[-1] <= 12


def live_tensors():
    gc.collect()
    # looking at torch.distributed.reduce_op warns that it is deprecated
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        tensors = [o for o in gc.get_objects() if torch.is_tensor(o)]
    return len(tensors), sum(
        t.untyped_storage().nbytes() for t in tensors if t.device.type != 'meta'
    )


def test_memory_stays_flat_over_hundreds_of_steps(data_48, tmp_path):
    """The article's Recorder kept every step's loss tensor, graph included; this one keeps
    sums."""
    trainer = make_trainer(data_48, tmp_path, '--epochs', '25')
    marks = mark_steps(trainer, lambda: None)
    seen = {}
    original = trainer.optimize

    def probed(loss, epoch, i):
        original(loss, epoch, i)
        # after the first epochs' allocations; then after 240 more steps
        if len(marks) in (60, 300):
            seen[len(marks)] = live_tensors()

    trainer.optimize = probed
    for epoch in range(1, 26):  # 25 epochs of 12 steps
        trainer.train_per_epoch(epoch)
    assert len(marks) == 300
    assert seen[300] == seen[60]


@pytest.mark.parametrize('task', ['seg', 'cls'])
def test_benchmark_lockstep_feeds_both_loops_every_batch_in_turn(tiny_data, tmp_path, task,
                                                                monkeypatch):
    """scripts/benchmark.py's steps-alternated comparison: the raw loop takes each batch the
    Trainer takes, before it on even steps and after it on odd ones, and both loops end each
    epoch with the same weights."""
    from scripts import benchmark
    order = []
    raw_step = benchmark.RawLoop.step
    trainer_step = train.Trainer.step

    def raw(self, img, label):
        order.append(('raw', img.sum().item()))
        raw_step(self, img, label)

    def trainer(self, data, model):
        order.append(('trainer', data[0].sum().item()))
        return trainer_step(self, data, model)

    monkeypatch.setattr(benchmark.RawLoop, 'step', raw)
    monkeypatch.setattr(train.Trainer, 'step', trainer)
    argv = ['--task', task, '--train_list', str(tiny_data[task] / 'train.txt'),
            '--val_list', str(tiny_data[task] / 'val.txt'), '--batch_size', '4',
            '--checkpoints_dir', str(tmp_path), '--num_workers', '0']
    figures = benchmark.lockstep_loops(argv, 2)
    assert figures['weights_equal'] == [True, True]  # the untimed first epoch is left out
    assert len(figures['ratio']['all']) == 2 and min(figures['raw_s']['all']) > 0
    steps = [order[k:k + 2] for k in range(0, len(order), 2)]
    assert len(steps) == 3 * 3  # 3 epochs of 12 samples in batches of 4
    for n, pair in enumerate(steps):  # the same batch, the raw loop first on even steps
        first = 'raw' if n % 3 % 2 == 0 else 'trainer'
        assert pair[0][0] == first and pair[0][1] == pair[1][1] and pair[0][0] != pair[1][0]
