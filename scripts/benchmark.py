"""Is the Trainer as fast as a hand-written loop? Compares the Trainer's training epochs (its
logging, metrics and progress bar on, validation left out) with a minimal loop with the same
model, data order, optimizer and seed, two ways: whole epochs alternated, and steps alternated
on the same batches (Lockstep), which cancels the machine's drift and resolves a 1 % cost where
epochs on a shared machine spread by 20 %. Then the loader alone; on a GPU also fp32 vs --amp vs
--amp --channels_last. Then the data pipeline on VOC- and Cityscapes-like files against
torchvision and albumentations (scripts/benchmark_data.py).
Run: python scripts/benchmark.py [--pairs 7] [--step_epochs 7] [--out checkpoints/benchmark.json]
       [train.py flags, e.g. --task cls, --model_type]
     python scripts/benchmark.py --data_only [--data_rounds 3]: the data table alone"""
import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time

# the repository root
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import train  # noqa: E402
from data.data_entry import select_train_loader  # noqa: E402
from loss import select_loss  # noqa: E402
from model.model_entry import select_model  # noqa: E402
from options import make_parser, parse_train_args, prepare_train_args, task_defaults  # noqa: E402
from scripts import benchmark_data  # noqa: E402
from utils.torch_utils import get_device, set_seed  # noqa: E402

# The flags whose default the raw loop matches; others (e.g. --model_type, --batch_size, --lr)
# apply to both loops.
RAW_LOOP_DEFAULTS = {
    'optimizer': 'adam',
    'scheduler': 'none',
    'warmup_epochs': 0,
    'accum_steps': 1,
    'clip_grad': 0,
    'ema': 0,
    'amp': False,
    'channels_last': False,
    'compile': False,
    'overfit_batches': 0,
}


def timed(device, fn):
    """(seconds that fn() took, its result), waiting for the GPU before and after; resets the
    peak memory."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    out = fn()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out


def peak_mib(device):
    return torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == 'cuda' else None


def trainer_epoch(argv):
    """The Trainer's first training epoch, as train.py runs it: (seconds, final weights, peak
    GPU MiB)."""
    trainer = train.Trainer(prepare_train_args(argv))
    seconds, _ = timed(trainer.device, lambda: trainer.train_per_epoch(1))
    trainer.logger.close()
    return seconds, trainer.raw_model.state_dict(), peak_mib(trainer.device)


def train_args(argv):
    """train.py's args for `argv`, with the defaults that --task decides filled in."""
    return task_defaults(parse_train_args(make_parser('')).parse_args(argv), is_train=True)


class RawLoop:
    """What a researcher would write by hand: the same loader, model, loss and Adam, nothing
    else."""

    def __init__(self, argv):
        args = train_args(argv)
        # the Trainer seeds, builds its loaders (no random draw), then the model: the same
        # weights
        set_seed(args.seed)
        self.device = get_device(args)
        self.loader = select_train_loader(args)
        self.model = select_model(args).to(self.device).train()
        self.criterion = select_loss(args)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=args.lr,
            betas=(args.momentum, args.beta),
            weight_decay=args.weight_decay,
        )

    def step(self, img, label):
        img = img.to(self.device, non_blocking=True)
        label = label.to(self.device, non_blocking=True)
        loss = self.criterion(self.model(img), label)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def raw_epoch(argv):
    """The raw loop's first epoch: (seconds, final weights, peak GPU MiB)."""
    raw = RawLoop(argv)
    raw.loader.sampler.set_epoch(1)

    def epoch():
        for img, label in raw.loader:
            raw.step(img, label)

    seconds, _ = timed(raw.device, epoch)
    return seconds, raw.model.state_dict(), peak_mib(raw.device)


class Lockstep:
    """Stands in for the Trainer's training loader: the raw loop takes each batch too, one
    step of it before the Trainer's step on even steps, after it on odd ones (the second of
    two steps ran about 0.5 % slower). The time between two batches is the Trainer's, but for
    the raw steps run then; the loader's own time is counted in both loops, as both wait for
    it."""

    def __init__(self, loader, raw):
        self.loader, self.raw = loader, raw
        self.sampler = loader.sampler  # the Trainer sets its epoch
        self.seconds = {'trainer': 0.0, 'raw': 0.0}
        self.mark = None  # when the Trainer's time last started

    def __len__(self):
        return len(self.loader)

    def clock(self):
        """perf_counter(), once the GPU (if any) has done the work queued so far."""
        if self.raw.device.type == 'cuda':
            torch.cuda.synchronize(self.raw.device)
        return time.perf_counter()

    def raw_step(self, batch, start):
        """One raw step on `batch` from time `start`; returns when it ended."""
        self.raw.step(*batch)
        end = self.clock()
        self.seconds['raw'] += end - start
        return end

    def __iter__(self):
        batches = iter(self.loader)
        after = None  # the batch whose raw step comes after the Trainer's
        for step in itertools.count():
            start = self.clock()
            self.seconds['trainer'] += start - self.mark  # its step since the last batch
            if after is not None:
                start = self.raw_step(after, start)
            batch = next(batches, None)
            fetched = self.clock()
            for kind in self.seconds:
                self.seconds[kind] += fetched - start
            if batch is None:
                self.mark = fetched
                return
            even = step % 2 == 0
            self.mark = self.raw_step(batch, fetched) if even else fetched
            after = None if even else batch
            yield batch


def lockstep_loops(argv, epochs):
    """The Trainer and the raw loop alternated step by step (see Lockstep), for `epochs`
    epochs after an untimed one: the two steps of a pair run within milliseconds, so the
    machine's drift over seconds cancels. Each epoch gives a pair of times; the weights of
    the two loops are compared after each."""
    trainer = train.Trainer(prepare_train_args(argv))
    raw = RawLoop(argv)
    lockstep = Lockstep(trainer.train_loader, raw)
    trainer.train_loader = lockstep
    runs = []
    for epoch in range(1, epochs + 2):
        lockstep.seconds = {'trainer': 0.0, 'raw': 0.0}
        lockstep.mark = lockstep.clock()
        trainer.train_per_epoch(epoch)
        lockstep.seconds['trainer'] += lockstep.clock() - lockstep.mark  # its epoch's end
        weights = raw.model.state_dict()
        equal = all(torch.equal(v, weights[k]) for k, v in trainer.raw_model.state_dict().items())
        if epoch > 1:  # the first epoch of a process is slower
            runs.append((lockstep.seconds['trainer'], lockstep.seconds['raw'], equal))
    trainer.logger.close()
    return {
        'trainer_s': spread([t for t, _, _ in runs]),
        'raw_s': spread([r for _, r, _ in runs]),
        'ratio': spread([t / r for t, r, _ in runs]),
        'weights_equal': [e for _, _, e in runs],
    }


def loader_rate(argv, data_type):
    """Images per second of the training loader alone (one epoch), and the seconds its dataset
    took to build."""
    args = train_args(argv + ['--data_type', data_type])
    build, loader = timed(torch.device('cpu'), lambda: select_train_loader(args))
    loader.sampler.set_epoch(1)
    seconds, n = timed(torch.device('cpu'), lambda: sum(img.shape[0] for img, _ in loader))
    return n / seconds, build


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            names = (line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
            return next(names)
    except (OSError, StopIteration):  # not Linux
        return platform.processor() or platform.machine()


def spread(values):
    return {
        'median': statistics.median(values),
        'min': min(values),
        'max': max(values),
        'all': values,
    }


def compare_loops(argv, pairs):
    """Alternates whole Trainer and raw epochs, each from a new process state (which goes
    first alternates too, so drift favours neither)."""
    # untimed warm-up: the first epoch of a process is slower
    raw_epoch(argv + ['--limit_train_batches', '10'])
    runs = {'trainer': [], 'raw': []}
    for pair in range(pairs):
        for kind in (('trainer', 'raw') if pair % 2 == 0 else ('raw', 'trainer')):
            runs[kind].append((trainer_epoch if kind == 'trainer' else raw_epoch)(argv))
    paired = list(zip(runs['trainer'], runs['raw'], strict=True))
    equal = [all(torch.equal(t[1][k], r[1][k]) for k in r[1]) for t, r in paired]
    return {
        'trainer_s': spread([t[0] for t in runs['trainer']]),
        'raw_s': spread([r[0] for r in runs['raw']]),
        'ratio': spread([t[0] / r[0] for t, r in paired]),
        'weights_equal': equal,
        'trainer_peak_mib': runs['trainer'][-1][2],
        'raw_peak_mib': runs['raw'][-1][2],
    }


def measure(argv, pairs, step_epochs):
    """Every figure of the table, for the train.py flags `argv`."""
    args = train_args(argv)
    loops = compare_loops(argv, pairs)
    steps = lockstep_loops(argv, step_epochs)
    # an epoch's (--limit_train_batches may shorten it)
    samples = len(select_train_loader(args).sampler)
    rates = {}
    for _ in range(3):  # alternated, medians kept
        for kind in (args.data_type,) + (('mem_list',) if args.data_type == 'list' else ()):
            rates.setdefault(kind, []).append(loader_rate(argv, kind))
    loader = {
        kind: {
            'img_per_s': statistics.median(r[0] for r in v),
            'build_s': statistics.median(r[1] for r in v),
        }
        for kind, v in rates.items()
    }
    gpu = {}
    precisions = (
        ('fp32', []),
        ('amp', ['--amp']),
        ('amp_channels_last', ['--amp', '--channels_last']),
    )
    for name, extra in precisions:
        if torch.cuda.is_available():
            seconds = [trainer_epoch(argv + extra) for _ in range(3)]
            median = statistics.median(s[0] for s in seconds)
            gpu[name] = {'s_per_epoch': median, 'peak_mib': seconds[-1][2]}
    machine = {
        'cpu': cpu_name(),
        'cores': os.cpu_count(),
        'torch_threads': torch.get_num_threads(),
        'torch': torch.__version__,
        'gpu': torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    return {'machine': machine, 'task': args.task, 'model_type': args.model_type,
            'samples': samples, 'batch_size': args.batch_size, 'num_workers': args.num_workers,
            'epochs': loops, 'steps': steps,
            'train_img_per_s': samples / loops['raw_s']['median'],
            'loader': loader, 'gpu': gpu}


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        '--pairs', type=int, default=7, help='alternating Trainer / raw loop epoch pairs'
    )
    parser.add_argument('--step_epochs', type=int, default=7,
                        help='epochs of the Trainer and raw loop alternated step by step')
    parser.add_argument('--data_only', action='store_true',
                        help='only the data pipeline table (a minute or two)')
    parser.add_argument('--data_rounds', type=int, default=3,
                        help="the data table's rounds, each timing every pipeline in turn")
    parser.add_argument('--out', help='the figures as JSON (default: checkpoints/benchmark.json, '
                        'with --data_only checkpoints/benchmark_data.json)')
    own, argv = parser.parse_known_args()
    if own.data_only and argv:
        parser.error(f'--data_only times the data pipeline alone: leave out {" ".join(argv)}')
    figures = {} if own.data_only else compare(parser, argv, own.pairs, own.step_epochs)
    figures['data'] = data_figures(own.data_rounds)
    if not own.data_only:
        print_table(figures)
    benchmark_data.print_table(figures['data'])
    name = 'benchmark_data.json' if own.data_only else 'benchmark.json'
    out = own.out or os.path.join('checkpoints', name)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(figures, f, indent=2)
    print(f'\nfigures: {out}')


def compare(parser, argv, pairs, step_epochs):
    """The Trainer / raw loop figures for the train.py flags `argv`."""
    args = train_args(argv)
    changed = [k for k in RAW_LOOP_DEFAULTS if getattr(args, k) != RAW_LOOP_DEFAULTS[k]]
    # the raw loop would compute something else, and the comparison would mean nothing
    if changed:
        parser.error(f'the raw loop is plain Adam in fp32: leave out --{", --".join(changed)}')
    with tempfile.TemporaryDirectory() as runs:
        run_flags = ['--checkpoints_dir', runs, '--save_prefix', 'benchmark']
        return measure(run_flags + argv, pairs, step_epochs)


def data_figures(rounds):
    """The data table's figures, its files in a temporary folder; the loader is compared with
    the base model's training step on 21 classes (VOC's)."""
    args = train_args(['--task', 'seg', '--model_type', 'base', '--num_classes', '21'])
    with tempfile.TemporaryDirectory() as root:
        return benchmark_data.measure(args, rounds, root)


def print_table(f):
    m = f['machine']
    print(f"\n--task {f['task']}, {f['model_type']} model, {f['samples']} samples an epoch, "
          f"batch {f['batch_size']}, --num_workers {f['num_workers']}; {m['gpu'] or m['cpu']}, "
          f"{m['cores']} cores, {m['torch_threads']} torch threads, torch {m['torch']}")
    rows = [('', 's/epoch', 'img/s', 'note')]
    loops = (('epochs', 'whole epochs alternated'), ('steps', 'steps alternated (Lockstep)'))
    for key, title in loops:
        rows.append((title, '', '', ''))
        rows += loop_rows(f[key], f['samples'])
    for kind, v in f['loader'].items():
        rows.append((
            f'loader {kind}',
            '',
            f"{v['img_per_s']:.1f}",
            f"{v['img_per_s'] / f['train_img_per_s']:.1f}x the training step; "
            f"built in {v['build_s']:.2f} s",
        ))
    for name, v in f['gpu'].items():
        rows.append((
            f'GPU {name}',
            f"{v['s_per_epoch']:.3f}",
            f"{f['samples'] / v['s_per_epoch']:.1f}",
            f"peak {v['peak_mib']:.0f} MiB",
        ))
    if f['gpu']:
        e = f['epochs']
        peaks = f"Trainer {e['trainer_peak_mib']:.0f}, raw loop {e['raw_peak_mib']:.0f}"
        rows.append(('GPU peak MiB', '', '', peaks))
    for row in rows:
        print(f'{row[0]:<22}{row[1]:>10}{row[2]:>10}   {row[3]}')


def loop_rows(f, samples):
    """The table's rows for one comparison of the Trainer and the raw loop."""
    rows = []
    for kind in ('raw', 'trainer'):
        s = f[f'{kind}_s']
        rows.append((
            '  raw loop' if kind == 'raw' else '  Trainer',
            f"{s['median']:.3f}",
            f"{samples / s['median']:.1f}",
            f"median of {len(s['all'])}, {s['min']:.3f}-{s['max']:.3f}",
        ))
    r = f['ratio']
    pairs = f"pairs {r['min']:.4f}-{r['max']:.4f}"
    rows.append(('  Trainer / raw', f"{r['median']:.4f}", '', pairs))
    equal = f"{sum(f['weights_equal'])}/{len(f['weights_equal'])}"
    rows.append(('  weights equal', equal, '', 'torch.equal, by pair'))
    return rows


if __name__ == '__main__':
    main()
