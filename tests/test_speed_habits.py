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


def cls_trainer(tiny_data, tmp_path, *flags):
    data = tiny_data['cls']
    return train.Trainer(prepare_train_args([
        '--task', 'cls', '--train_list', str(data / 'train.txt'),
        '--val_list', str(data / 'val.txt'), '--checkpoints_dir', str(tmp_path),
        '--num_workers', '0', *flags,
    ]))


def test_held_training_batches_add_up_to_the_same_counts(tiny_data, tmp_path):
    """Small training batches wait and go into the metric HELD_STEPS at a time; batches that
    cannot be joined to the held ones (another dtype), and big ones, go in on their own. The
    counts are those of updating the metric batch by batch."""
    trainer = cls_trainer(tiny_data, tmp_path)
    assert trainer.counts_only  # the confusion matrix counts in int64
    by_batch = trainer.task.make_metrics()
    classes = len(by_batch.class_names)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(4, classes, generator=gen), torch.randint(classes, (4,), generator=gen))
               for _ in range(37)]
    batches[20] = (batches[20][0].half(), batches[20][1])  # cannot be joined to float32 ones
    big = train.HELD_ELEMENTS // classes + 1  # one more element than held batches may have
    batches[30] = (torch.randn(big, classes, generator=gen), torch.randint(classes, (big,)))
    held = []
    for pred, label in batches:
        trainer.compute_metrics(pred, label, is_train=True)
        by_batch.update(pred, label)
        held.append(len(trainer.held))
    # 16 held: all go in; at 20 the float16 batch, at 21 the next float32 one, push out those
    # before them; 30, too big to hold, goes in at once and leaves the held ones waiting
    assert train.HELD_STEPS == 16
    assert held == [*range(1, 16), 0, 1, 2, 3, 4, 1, *range(1, 10), 9, *range(10, 16)]
    trainer.add_held()
    assert trainer.held == []
    assert torch.equal(trainer.metrics['train'].sums['confusion'], by_batch.sums['confusion'])


def test_a_metric_with_float_sums_takes_each_batch_at_once(tiny_data, tmp_path, monkeypatch):
    """Float sums depend on how the batches are grouped: they are not held, so a resumed run
    adds up the same batches in the same order as an uninterrupted one."""
    class Mean:
        def __init__(self):
            self.sums = {'total': torch.tensor(0.0)}

        def update(self, pred, target):
            self.sums['total'] += pred.sum()

        def compute(self):
            return {'top1': self.sums['total'].item()}  # the task's --monitor

    from task.cls import ClsTask
    monkeypatch.setattr(ClsTask, 'make_metrics', lambda self: Mean())
    trainer = cls_trainer(tiny_data, tmp_path)
    assert not trainer.counts_only
    trainer.compute_metrics(torch.ones(4, 3), torch.zeros(4, dtype=torch.int64), is_train=True)
    assert trainer.held == [] and trainer.metrics['train'].sums['total'] == 12


def test_the_epoch_logs_the_training_metric_of_all_its_batches(tiny_data, tmp_path):
    """The batches held at the epoch's end are in the scores it logs (6 steps: all held)."""
    trainer = cls_trainer(tiny_data, tmp_path, '--batch_size', '2')
    by_batch = trainer.task.make_metrics()
    step, record = trainer.step, trainer.logger.record_metrics
    logged = {}

    def counted_step(data, model):
        img, pred, label = step(data, model)
        by_batch.update(pred.detach(), label)
        return img, pred, label

    def recorded(phase, metric):
        logged[phase] = metric.sums['confusion'].clone()
        record(phase, metric)

    trainer.step, trainer.logger.record_metrics = counted_step, recorded
    trainer.train_per_epoch(1)
    assert by_batch.sums['confusion'].sum() == 12  # every training image, once
    assert torch.equal(logged['train'], by_batch.sums['confusion'])


def test_the_epoch_logs_the_mean_loss_of_its_images(tiny_data, tmp_path):
    """check_loss records the losses of the steps since its last call, each weighted by its
    batch size (12 images in batches of 5, 5 and 2); --print_freq 2 splits them in two calls."""
    trainer = cls_trainer(tiny_data, tmp_path, '--batch_size', '5', '--print_freq', '2')
    compute_loss, losses = trainer.compute_loss, []

    def kept(pred, label):
        loss = compute_loss(pred, label)
        losses.append((loss.item(), label.shape[0]))
        return loss

    trainer.compute_loss = kept
    trainer.train_per_epoch(1)
    assert [n for _, n in losses] == [5, 5, 2]
    mean = sum(value * n for value, n in losses) / 12
    assert trainer.logger.recorder.summary()['train/loss'] == pytest.approx(mean, rel=1e-6)
